//! The `mock-openrouter` binary: announces its port, serves, exits when stdin closes; bad
//! scenario files exit with code 2 and a readable message.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mock-openrouter");

fn scenario_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

#[tokio::test]
async fn serves_until_stdin_closes() {
    let mut child = Command::new(BIN)
        .arg("--scenario")
        .arg(scenario_path("provider-outage.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("announces its url")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let r = client
        .post(format!("{url}/api/v1/chat/completions"))
        .bearer_auth("k")
        .json(
            &serde_json::json!({"model": "anthropic/claude-3.5-haiku", "max_tokens": 64,
            "messages": [{"role": "user", "content": "halo kak"}]}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    drop(child.stdin.take());
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status}");
}

#[test]
fn stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .arg("--scenario")
        .arg(scenario_path("mixed.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    // stdin stays open: only the signal can stop it.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status}");
}

#[test]
fn bad_scenario_exits_2_with_the_problems() {
    let dir = std::env::temp_dir().join(format!("mock-openrouter-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join("bad.json");
    std::fs::write(
        &path,
        r#"{"name":"bad","seed":1,"models":{},"account":{"limit_usd":1.0},
            "workload":{"jobs":1,"sessions":1,"arrival_ms":10},
            "faults":[{"type":"volcano","from_ms":0,"to_ms":1}]}"#,
    )
    .expect("write");
    for args in [
        vec!["--scenario".to_string(), path.display().to_string()],
        vec!["--scenario".to_string(), "/nonexistent.json".to_string()],
        vec![
            "--scenario".to_string(),
            path.display().to_string(),
            "--addr".to_string(),
            "nowhere".to_string(),
        ],
        vec!["--bogus".to_string()],
    ] {
        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut err = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("stderr text");
        let status = child.wait().expect("exits");
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("mock-openrouter: "), "{err}");
        if args.len() == 2 && args[1].ends_with("bad.json") {
            assert!(err.contains("models must not be empty"), "{err}");
            assert!(err.contains("\"volcano\""), "{err}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_non_loopback_addresses() {
    let out = Command::new(BIN)
        .arg("--scenario")
        .arg(scenario_path("mixed.json"))
        .args(["--addr", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1 only"));
}
