//! `cargo run -p xtask -- component [--out PATH]`: builds the llm-resilience component.
//!
//! Steps: compile `llm-resilience-plugin` for `wasm32-unknown-unknown` (profile `wasm`), wrap
//! the core module into a component with `wit-component`, check that the component imports
//! nothing (no WASI, no host functions: it provably cannot do IO), and write it to
//! `target/llm-resilience.wasm` (or `--out`). Prints the path and size.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("component") => {
            let out = match args.iter().position(|a| a == "--out") {
                Some(i) => PathBuf::from(args.get(i + 1).context("--out needs a path")?),
                None => workspace_root().join("target").join("llm-resilience.wasm"),
            };
            build_component(&out)
        }
        Some("check-imports") => {
            let path = args
                .get(1)
                .context("check-imports needs a component path")?;
            let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
            check_no_imports(&bytes)?;
            println!("{path}: imports nothing");
            Ok(())
        }
        _ => bail!("usage: xtask component [--out PATH] | xtask check-imports PATH"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn build_component(out: &Path) -> Result<()> {
    let root = workspace_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "rustc",
            "-p",
            "llm-resilience-plugin",
            "--lib",
            "--crate-type",
            "cdylib",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm",
        ])
        .status()
        .context("running cargo build for the plugin")?;
    if !status.success() {
        bail!("building the plugin failed");
    }
    let module_path = target_dir
        .join("wasm32-unknown-unknown")
        .join("wasm")
        .join("llm_resilience_plugin.wasm");
    let module = std::fs::read(&module_path)
        .with_context(|| format!("reading {}", module_path.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .context("reading the component type from the core module")?
        .validate(true)
        .encode()
        .context("encoding the component")?;
    check_no_imports(&component)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, &component).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "component: {} ({} bytes, {:.1} KiB), imports nothing",
        out.display(),
        component.len(),
        component.len() as f64 / 1024.0
    );
    Ok(())
}

/// Fails unless the component imports nothing at its top level (nested modules' imports are
/// satisfied inside the component and are fine).
fn check_no_imports(component: &[u8]) -> Result<()> {
    use wasmparser::{Parser, Payload};
    let mut depth = 0usize;
    let mut imports = Vec::new();
    for payload in Parser::new(0).parse_all(component) {
        match payload.context("parsing the component")? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    imports.push(import?.name.0.to_string());
                }
            }
            _ => {}
        }
    }
    if !imports.is_empty() {
        bail!("the component imports {imports:?}; it must import nothing");
    }
    Ok(())
}
