//! Runs every classify conformance vector (`tests/vectors/classify*.json` at the workspace root)
//! through the core and reports each failing case by name.
//!
//! The schema and the rules the expectations follow are in `tests/vectors/README.md`. `kind` and
//! `retryable` are always compared; every other `expect` field only when present (`null` means
//! "absent"). A case may say `"skip": {"core": "reason"}`; it is then counted as skipped, never
//! silently dropped. The test fails when the files hold no case at all.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use llm_resilience::{Classification, ClassifyInput, classify};
use serde_json::{Map, Value};

fn vector_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("classify") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
}

/// Header values as the vectors write them: a string, a number, or a list (repeated header).
fn headers_of(input: &Map<String, Value>) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if let Some(Value::Object(map)) = input.get("headers") {
        for (name, value) in map {
            let values = match value {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            for value in values {
                let text = match value {
                    Value::String(s) => s,
                    Value::Null => continue,
                    other => other.to_string(),
                };
                headers.push((name.clone(), text));
            }
        }
    }
    headers
}

fn run_case(case: &Map<String, Value>) -> Result<(), String> {
    let empty = Map::new();
    let input = case
        .get("input")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let expect = case
        .get("expect")
        .and_then(Value::as_object)
        .ok_or("case has no \"expect\" object")?;

    let headers = headers_of(input);
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let status = match input.get("status") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| format!("bad status {v}"))?,
        ),
    };
    let body = input.get("body").and_then(Value::as_str).unwrap_or("");
    let transport = input.get("transport").and_then(Value::as_str);
    let wall_clock_ms = input.get("wall_clock_ms").and_then(Value::as_u64);

    let got = classify(&ClassifyInput {
        status,
        headers: &header_refs,
        body: body.as_bytes(),
        transport,
        wall_clock_ms,
    });
    compare(expect, &got)
}

fn compare(expect: &Map<String, Value>, got: &Classification) -> Result<(), String> {
    let mut problems = String::new();
    let mut check = |field: &str, want: &Value, have: Value| {
        if *want != have {
            let _ = write!(problems, "\n      {field}: expected {want}, got {have}");
        }
    };
    let kind = expect.get("kind").ok_or("expect has no \"kind\"")?;
    check("kind", kind, Value::from(got.kind.as_str()));
    let retryable = expect
        .get("retryable")
        .ok_or("expect has no \"retryable\"")?;
    check("retryable", retryable, Value::from(got.retryable));
    let optional: [(&str, Value); 6] = [
        (
            "retry_after_ms",
            got.retry_after_ms.map_or(Value::Null, Value::from),
        ),
        (
            "limit_tokens",
            got.limit_tokens.map_or(Value::Null, Value::from),
        ),
        (
            "requested_tokens",
            got.requested_tokens.map_or(Value::Null, Value::from),
        ),
        (
            "provider",
            got.provider.clone().map_or(Value::Null, Value::from),
        ),
        ("code", got.code.clone().map_or(Value::Null, Value::from)),
        (
            "error_type",
            got.error_type.clone().map_or(Value::Null, Value::from),
        ),
    ];
    for (field, have) in optional {
        if let Some(want) = expect.get(field) {
            check(field, want, have);
        }
    }
    for (field, must_contain) in [("message_contains", true), ("message_excludes", false)] {
        let Some(list) = expect.get(field) else {
            continue;
        };
        let needles = list
            .as_array()
            .ok_or_else(|| format!("{field} is not a list"))?;
        for needle in needles {
            let needle = needle
                .as_str()
                .ok_or_else(|| format!("{field} holds a non-string"))?;
            if got.message.contains(needle) != must_contain {
                let verb = if must_contain { "lacks" } else { "contains" };
                let _ = write!(problems, "\n      message {verb} {needle:?}");
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let _ = write!(problems, "\n      (message: {:?})", got.message);
        Err(problems)
    }
}

#[test]
fn classify_vectors() {
    let files = vector_files();
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    let mut report = String::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", file.display()));
        let cases = doc
            .get("cases")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{} has no \"cases\" list", file.display()));
        let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        for (index, case) in cases.iter().enumerate() {
            let Some(case) = case.as_object() else {
                failed += 1;
                let _ = write!(report, "\n  {file_name}#{index}: not an object");
                continue;
            };
            let name = case
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{index}"), str::to_string);
            if let Some(reason) = case.get("skip").and_then(|s| s.get("core")) {
                skipped += 1;
                println!("skip {file_name}:{name}: {reason}");
                continue;
            }
            match run_case(case) {
                Ok(()) => passed += 1,
                Err(problems) => {
                    failed += 1;
                    let _ = write!(report, "\n  {file_name}:{name}{problems}");
                }
            }
        }
    }
    if !report.is_empty() {
        println!("failing cases:{report}");
    }
    if skipped > 0 {
        println!("[core] classify vectors: {passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("[core] classify vectors: {passed} passed, {failed} failed");
    }
    assert!(
        passed + failed >= 1,
        "no classify vectors found in {} file(s): refusing to pass on nothing",
        files.len()
    );
    assert_eq!(failed, 0, "{failed} classify vector(s) failed:{report}");
}
