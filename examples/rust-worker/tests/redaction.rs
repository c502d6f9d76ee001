//! The API key never leaves the `Authorization` header: not in an event, not in the report,
//! not on stderr — checked on the built binary, on the scenario with the most kinds of failure.

use std::process::Command;

const FAKE_KEY: &str = "sk-or-v1-FAKE-not-a-real-key-0123456789abcdef-0123456789abcdef";

#[test]
fn the_key_appears_in_no_event_report_or_stderr() {
    let dir = std::env::temp_dir().join(format!("llmr-worker-redaction-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join("mixed.jsonl");
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/mixed.json");
    let out = Command::new(env!("CARGO_BIN_EXE_llmr-worker"))
        .args(["run", "--quiet", "--scenario"])
        .arg(&scenario)
        .arg("--events")
        .arg(&log)
        .env("OPENROUTER_API_KEY", FAKE_KEY)
        .output()
        .expect("the worker runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "worker failed: {stderr}");
    let events = std::fs::read_to_string(&log).expect("the event log");
    let parsed = llmr_worker::events::parse_log(&events).expect("a valid log");

    // The run met failures and logged their messages: the check is not vacuous.
    let messages = parsed
        .iter()
        .filter(|e| {
            matches!(&e.body, llmr_worker::events::EventBody::Response { message: Some(m), .. } if !m.is_empty())
        })
        .count();
    assert!(messages > 10, "only {messages} failure messages logged");

    let report = Command::new(env!("CARGO_BIN_EXE_llmr-worker"))
        .arg("report")
        .arg(&log)
        .env("OPENROUTER_API_KEY", FAKE_KEY)
        .output()
        .expect("the report runs");
    assert!(report.status.success());
    let report_text = String::from_utf8_lossy(&report.stdout);
    assert!(report_text.contains("mixed"), "{report_text}");

    for (what, text) in [
        ("events", events.as_str()),
        ("stderr", &stderr),
        ("stdout", &String::from_utf8_lossy(&out.stdout)),
        ("report", &report_text),
        ("report stderr", &String::from_utf8_lossy(&report.stderr)),
    ] {
        assert!(!text.contains(FAKE_KEY), "the key is in the {what}");
        assert!(
            !text.contains("FAKE-not-a-real-key"),
            "part of the key is in the {what}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
