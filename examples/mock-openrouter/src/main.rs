//! `mock-openrouter --scenario FILE [--addr 127.0.0.1:0]`: the mock as a process.
//!
//! The Go tests and the demo start the mock as a child process, so it must announce its port
//! (first stdout line `listening on http://127.0.0.1:PORT`, flushed) and must never outlive its
//! parent: it stops on SIGINT, SIGTERM, or when its stdin closes (a parent that dies closes the
//! pipe). A bad scenario file is reported readably with exit code 2.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use mock_openrouter::{MockServer, Scenario};
use tokio::signal::unix::SignalKind;

const USAGE: &str = "usage: mock-openrouter --scenario FILE [--addr 127.0.0.1:0]";

fn parse_args() -> Result<(String, SocketAddr), String> {
    let mut scenario = None;
    let mut addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--scenario" => scenario = Some(args.next().ok_or("--scenario needs a file")?),
            "--addr" => {
                let v = args.next().ok_or("--addr needs an address")?;
                addr = v
                    .parse()
                    .map_err(|e| format!("--addr {v:?} is not an address: {e}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let scenario = scenario.ok_or("--scenario FILE is required")?;
    Ok((scenario, addr))
}

/// A signal stream, or `None` when it cannot be installed (then only stdin stops the mock).
fn signal(kind: SignalKind) -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).ok()
}

async fn wait_for(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let (path, addr) = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mock-openrouter: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let scenario = match Scenario::from_file(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mock-openrouter: {e}");
            return ExitCode::from(2);
        }
    };
    // The handlers are installed before the port is announced: a parent that signals right
    // after reading the line must find them in place (else the default action kills us).
    let mut sigint = signal(SignalKind::interrupt());
    let mut sigterm = signal(SignalKind::terminate());
    let mock = match MockServer::start(scenario, addr).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mock-openrouter: {e}");
            return ExitCode::from(2);
        }
    };
    {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "listening on {}", mock.url())
            .and_then(|()| out.flush())
            .is_err()
        {
            mock.shutdown().await;
            return ExitCode::from(1);
        }
    }
    // A plain thread reads stdin to its end (tokio's stdin is a blocking thread too).
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 256];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = closed_tx.send(());
    });
    let stdin_closed = async {
        let _ = closed_rx.await;
    };
    tokio::select! {
        _ = wait_for(&mut sigint) => {}
        _ = wait_for(&mut sigterm) => {}
        _ = stdin_closed => {}
    }
    mock.shutdown().await;
    ExitCode::SUCCESS
}
