//! The `llmr` binary, run as a user would: arguments, stdin, stdout, exit code.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use llm_resilience::ClassifyInput;
use serde_json::Value;

/// The fields of one classification, in the order they are printed.
const FIELDS: [&str; 9] = [
    "kind",
    "retryable",
    "retry_after_ms",
    "limit_tokens",
    "requested_tokens",
    "provider",
    "code",
    "error_type",
    "message",
];

/// Runs `llmr` with the component under test and `stdin`.
fn llmr(args: &[&str], stdin: &[u8]) -> Output {
    llmr_with_component(&common::component_path().to_string_lossy(), args, stdin)
}

fn llmr_with_component(component: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmr"))
        .args(args)
        .env(llmr_host::COMPONENT_ENV, component)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting llmr");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin)
        .expect("writing llmr's stdin");
    child.wait_with_output().expect("waiting for llmr")
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("llmr prints UTF-8")
}

/// Checks that `line` is one classification object with exactly the nine fields, in order.
fn parse_classification(line: &str) -> Value {
    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {line}"))
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted_fields = FIELDS.to_vec();
    sorted_fields.sort_unstable();
    assert_eq!(keys, sorted_fields, "fields of {line}");
    let order: Vec<usize> = FIELDS
        .iter()
        .map(|f| line.find(&format!("\"{f}\":")).expect("field printed"))
        .collect();
    assert!(order.is_sorted(), "fields out of order in {line}");
    value
}

/// The JSON line the core gives for `input`: what every surface must print byte for byte.
fn native_line(input: &ClassifyInput<'_>) -> String {
    serde_json::to_string(&llm_resilience::classify(input)).unwrap()
}

#[test]
fn classify_a_real_openai_429_with_retry_after() {
    let args = ["classify", "--status", "429", "--header", "retry-after: 7"];
    let out = llmr(&args, common::OPENAI_429_BODY.as_bytes());
    assert!(out.status.success(), "{out:?}");
    let stdout = stdout_of(&out);
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    let line = stdout.trim_end();
    let value = parse_classification(line);
    let expected = native_line(&ClassifyInput {
        status: Some(429),
        headers: &[("retry-after", "7")],
        body: common::OPENAI_429_BODY.as_bytes(),
        ..ClassifyInput::default()
    });
    assert_eq!(line, expected, "component output differs from the core");
    // What the error means (README rules): throttling, wait the header's 7 s (the header wins
    // over the body's "try again in 6ms").
    assert_eq!(value["kind"], "rate-limited", "{line}");
    assert_eq!(value["retryable"], true, "{line}");
    assert_eq!(value["retry_after_ms"], 7000, "{line}");
    assert_eq!(value["code"], "rate_limit_exceeded", "{line}");
    assert!(
        value["message"]
            .as_str()
            .unwrap()
            .contains("Rate limit reached"),
        "{line}"
    );
}

#[test]
fn classify_a_transport_failure() {
    let message = "Post \"https://openrouter.ai/api/v1/chat/completions\": dial tcp 104.18.2.115:443: connect: connection refused";
    let out = llmr(
        &["classify", "--transport"],
        format!("{message}\n").as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = stdout_of(&out);
    let line = stdout.trim_end();
    let value = parse_classification(line);
    assert_eq!(
        line,
        native_line(&ClassifyInput {
            transport: Some(message),
            ..ClassifyInput::default()
        })
    );
    assert_eq!(value["kind"], "network", "{line}");
    assert_eq!(value["retryable"], true, "{line}");
    assert!(
        value["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{line}"
    );
}

#[test]
fn jsonl_keeps_going_past_a_malformed_line() {
    let good_429 = serde_json::json!({
        "status": 429,
        "headers": {"retry-after": "7"},
        "body": common::OPENAI_429_BODY,
    });
    let good_transport = serde_json::json!({"transport": "read tcp 10.0.0.2:51234->104.18.3.115:443: read: connection reset by peer"});
    let input = format!("{good_429}\n{{\"status\": 429, \"body\": \n{good_transport}\n");
    let out = llmr(&["classify", "--jsonl"], input.as_bytes());
    assert!(!out.status.success(), "a failed line must fail the run");
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "one output line per input line: {stdout}");

    assert_eq!(
        lines[0],
        native_line(&ClassifyInput {
            status: Some(429),
            headers: &[("retry-after", "7")],
            body: common::OPENAI_429_BODY.as_bytes(),
            ..ClassifyInput::default()
        })
    );
    assert_eq!(parse_classification(lines[0])["kind"], "rate-limited");

    let error: Value = serde_json::from_str(lines[1]).expect("the error line is JSON");
    let error = error.as_object().expect("an object");
    assert_eq!(error.len(), 2, "{error:?}");
    assert_eq!(error["line"], 2);
    assert!(!error["error"].as_str().unwrap().is_empty());

    assert_eq!(
        lines[2],
        native_line(&ClassifyInput {
            transport: good_transport["transport"].as_str(),
            ..ClassifyInput::default()
        })
    );
    assert_eq!(parse_classification(lines[2])["kind"], "network");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 of 3 lines failed"), "{stderr}");
}

#[test]
fn jsonl_with_only_good_lines_succeeds_and_skips_blank_lines() {
    let input = "{\"status\":503,\"body\":\"Service Unavailable\"}\n\n{\"status\":401}\n";
    let out = llmr(&["classify", "--jsonl"], input.as_bytes());
    assert!(out.status.success(), "{out:?}");
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        parse_classification(line);
    }
}

#[test]
fn native_gives_the_same_output_as_the_component() {
    let cases: [(&[&str], &[u8]); 3] = [
        (
            &["classify", "--status", "429", "--header", "retry-after: 7"],
            common::OPENAI_429_BODY.as_bytes(),
        ),
        (
            &["classify", "--transport"],
            b"net/http: request canceled (Client.Timeout exceeded while awaiting headers)",
        ),
        (
            &["classify", "--jsonl"],
            b"{\"status\":529,\"body\":\"{\\\"type\\\":\\\"error\\\",\\\"error\\\":{\\\"type\\\":\\\"overloaded_error\\\",\\\"message\\\":\\\"Overloaded\\\"}}\"}\nnot json\n{\"status\":400,\"body\":\"\\u00ff bad \\\\x\"}\n",
        ),
    ];
    for (args, stdin) in cases {
        let component = llmr(args, stdin);
        let mut native_args = args.to_vec();
        native_args.push("--native");
        let native = llmr(&native_args, stdin);
        assert_eq!(
            stdout_of(&component),
            stdout_of(&native),
            "llmr {}",
            args.join(" ")
        );
        assert_eq!(component.status.code(), native.status.code());
        assert!(!stdout_of(&component).is_empty());
    }
}

#[test]
fn native_works_without_a_component() {
    let out = llmr_with_component(
        "/nonexistent/llm-resilience.wasm",
        &["classify", "--native", "--status", "500"],
        b"Internal Server Error",
    );
    assert!(out.status.success(), "{out:?}");
    parse_classification(stdout_of(&out).trim_end());
}

#[test]
fn a_missing_component_names_the_build_command() {
    let out = llmr_with_component(
        "/nonexistent/llm-resilience.wasm",
        &["classify", "--status", "500"],
        b"Internal Server Error",
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/llm-resilience.wasm"),
        "{stderr}"
    );
    assert!(stderr.contains(llmr_host::BUILD_COMMAND), "{stderr}");
}

#[test]
fn component_flag_overrides_the_environment() {
    let path = common::component_path();
    let out = llmr_with_component(
        "/nonexistent/llm-resilience.wasm",
        &["version", "--component", &path.to_string_lossy()],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn version_prints_the_host_and_the_component_versions() {
    let out = llmr(&["version"], b"");
    assert!(out.status.success(), "{out:?}");
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains(&format!("llmr-host {}", llmr_host::VERSION)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "llm-resilience (component) {}",
            common::plugin().version().unwrap()
        )),
        "{stdout}"
    );
}

#[test]
fn a_bad_header_is_a_usage_error() {
    let out = llmr(&["classify", "--header", "no-colon-here"], b"");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_huge_stdin_is_read_to_the_end_but_only_its_start_is_classified() {
    // 32 MiB through an 8 MiB memory cap: only the 256 KiB the classifier reads go into the
    // component, and the rest is still read (writing all of it into the pipe succeeds).
    let mut body = br#"{"error":{"message":"upstream overloaded","code":529}} "#.to_vec();
    body.resize(32 * 1024 * 1024, b'x');
    let output = llmr(&["classify", "--status", "529", "--memory-mib", "8"], &body);
    assert!(output.status.success(), "{output:?}");
    let input = ClassifyInput {
        status: Some(529),
        body: &body,
        ..ClassifyInput::default()
    };
    assert_eq!(stdout_of(&output).trim_end(), native_line(&input));
    // A transport message longer than the 16 KiB that are read.
    let message = format!(
        "dial tcp 10.0.0.1:443: connection refused {}",
        "é".repeat(1 << 20)
    );
    let output = llmr(
        &["classify", "--transport", "--memory-mib", "8"],
        message.as_bytes(),
    );
    assert!(output.status.success(), "{output:?}");
    let input = ClassifyInput {
        transport: Some(&message),
        ..ClassifyInput::default()
    };
    assert_eq!(stdout_of(&output).trim_end(), native_line(&input));
}
