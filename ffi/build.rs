//! Generates the version-named link check symbol `llmr_version_<major>_<minor>_<patch>`.
//!
//! The name is derived from the crate version, so a program (the Go package's cgo preamble)
//! that references the symbol of the version it was written for fails to link against a
//! library of another version instead of calling into an ABI it does not know.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let suffix: String = version
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let code = format!(
        "/// Link-time version check: the same string as [`llmr_version`], exported under a name\n\
         /// derived from the crate version ({version}). Programs reference it so that linking\n\
         /// against a library of another version fails at build time.\n\
         #[unsafe(no_mangle)]\n\
         pub extern \"C\" fn llmr_version_{suffix}() -> *const ::core::ffi::c_char {{\n    \
         crate::version::llmr_version()\n}}\n"
    );
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("version_symbol.rs"), code).expect("write version_symbol.rs");
}
