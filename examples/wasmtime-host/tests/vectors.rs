//! The classify conformance vectors (`tests/vectors/classify*.json`) through the component, and
//! the component against the native core on every vector input.

mod common;

use std::path::{Path, PathBuf};

use llm_resilience::Classification;
use llmr_host::CallInput;
use serde_json::Value;

/// The surface name a vector uses to opt out of this host (`"skip": {"wasmtime": "reason"}`).
const SURFACE: &str = "wasmtime";

struct Case {
    file: String,
    name: String,
    input: CallInput,
    expect: serde_json::Map<String, Value>,
    skip: Option<String>,
}

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

/// Every case of every `classify*.json` file, in file-name order. Panics on a file that does not
/// follow the schema (a broken vector must not pass silently).
fn load_cases() -> Vec<Case> {
    let dir = vector_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("reading the vector directory").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("classify") && name.ends_with(".json")
        })
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: not JSON: {e}"));
        let list = doc["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: no \"cases\" array"));
        for (i, case) in list.iter().enumerate() {
            let name = case["name"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("#{i}"));
            let input = CallInput::from_value(case.get("input").cloned().unwrap_or(Value::Null))
                .unwrap_or_else(|e| panic!("{file} {name}: bad input: {e}"));
            let expect = case["expect"]
                .as_object()
                .unwrap_or_else(|| panic!("{file} {name}: no \"expect\" object"))
                .clone();
            let skip = case
                .get("skip")
                .and_then(|s| s.get(SURFACE))
                .map(|reason| reason.as_str().unwrap_or("").to_string());
            cases.push(Case {
                file: file.clone(),
                name,
                input,
                expect,
                skip,
            });
        }
    }
    cases
}

/// Compares a classification with a vector's `expect`; returns every difference.
fn check(got: &Classification, expect: &serde_json::Map<String, Value>) -> Vec<String> {
    let got_json = serde_json::to_value(got).expect("a classification serializes");
    let mut problems = Vec::new();
    for required in ["kind", "retryable"] {
        if !expect.contains_key(required) {
            problems.push(format!("expect has no \"{required}\""));
        }
    }
    for (key, want) in expect {
        match key.as_str() {
            "kind" | "retryable" | "retry_after_ms" | "limit_tokens" | "requested_tokens"
            | "provider" | "code" | "error_type" | "message" => {
                if got_json[key] != *want {
                    problems.push(format!("{key}: got {}, want {want}", got_json[key]));
                }
            }
            "message_contains" | "message_excludes" => {
                let must_contain = key == "message_contains";
                let Some(needles) = want.as_array() else {
                    problems.push(format!("{key} is not an array"));
                    continue;
                };
                for needle in needles {
                    let Some(needle) = needle.as_str() else {
                        problems.push(format!("{key} holds a non-string {needle}"));
                        continue;
                    };
                    if got.message.contains(needle) != must_contain {
                        let verb = if must_contain { "lacks" } else { "contains" };
                        problems.push(format!("message {verb} {needle:?}: {:?}", got.message));
                    }
                }
            }
            other => problems.push(format!("unknown expect field {other:?}")),
        }
    }
    problems
}

#[test]
fn classify_vectors_pass_through_the_component() {
    let plugin = common::plugin();
    let cases = load_cases();
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    for case in &cases {
        if let Some(reason) = &case.skip {
            skipped += 1;
            println!("skip {} {}: {reason}", case.file, case.name);
            continue;
        }
        let problems = match case.input.with_input(|input| plugin.classify(input)) {
            Ok(got) => check(&got, &case.expect),
            Err(e) => vec![format!("host error: {e}")],
        };
        if problems.is_empty() {
            passed += 1;
        } else {
            failed += 1;
            println!("FAIL {} {}:", case.file, case.name);
            for p in problems {
                println!("    {p}");
            }
        }
    }
    println!("[wasmtime] classify vectors: {passed} passed, {failed} failed");
    if skipped > 0 {
        println!("[wasmtime] classify vectors skipped (declared in the files): {skipped}");
    }
    assert!(
        !cases.is_empty(),
        "no classify cases found in {}/classify*.json",
        vector_dir().display()
    );
    assert!(passed > 0, "no classify case ran");
    assert_eq!(
        failed, 0,
        "{failed} classify vector(s) failed through the component"
    );
}

#[test]
fn component_and_native_core_agree_on_every_vector_input() {
    let plugin = common::plugin();
    let cases = load_cases();
    assert!(!cases.is_empty(), "no classify cases found");
    let mut differ = Vec::new();
    for case in cases.iter().filter(|c| c.skip.is_none()) {
        let (component, native) = case
            .input
            .with_input(|input| (plugin.classify(input), llm_resilience::classify(input)));
        let component =
            component.unwrap_or_else(|e| panic!("{} {}: host error: {e}", case.file, case.name));
        if component != native {
            differ.push(format!(
                "{} {}:\n  component {component:?}\n  native    {native:?}",
                case.file, case.name
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "component and core differ:\n{}",
        differ.join("\n")
    );
}
