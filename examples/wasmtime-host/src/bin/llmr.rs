//! `llmr`: classify failed LLM API calls from the command line, through the llm-resilience
//! WebAssembly component (or, with `--native`, the core crate linked in).
//!
//! ```text
//! curl -s … | llmr classify --status 429 --header 'retry-after: 7'
//! echo 'dial tcp: connection refused' | llmr classify --transport
//! llmr classify --jsonl < failures.jsonl
//! llmr version
//! ```

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use llm_resilience::{Classification, ClassifyInput};
use llmr_host::{CallInput, Limits, Plugin};

/// Classify failed LLM API calls (rate limits, quota, context overflow, outages …) into
/// llm-resilience's taxonomy, with retry hints.
#[derive(Debug, Parser)]
#[command(name = "llmr", version)]
struct Cli {
    /// The component to run [default: $LLMR_COMPONENT, else the workspace's
    /// target/llm-resilience.wasm].
    #[arg(long, global = true, value_name = "PATH")]
    component: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Classify one failed call read from stdin (the response body, or with --transport the
    /// transport error message) and print the classification as one JSON object. With --jsonl,
    /// classify one JSON record per stdin line instead.
    Classify(ClassifyArgs),
    /// Print the version of this tool and of the component.
    Version,
}

#[derive(Debug, clap::Args)]
struct ClassifyArgs {
    /// The HTTP status of the response.
    #[arg(long, value_name = "N")]
    status: Option<u16>,
    /// A response header, `Name: value`; repeat for several.
    #[arg(long = "header", value_name = "'NAME: VALUE'", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Stdin holds the transport error message (the call failed before a response), not a body.
    #[arg(long)]
    transport: bool,
    /// Wall-clock Unix time in milliseconds, for HTTP-date and epoch retry hints.
    #[arg(long, value_name = "N")]
    wall_clock_ms: Option<u64>,
    /// Read one JSON record per line, `{"status":…, "headers":{…}, "body":"…", "transport":"…",
    /// "wall_clock_ms":…}` (all optional), and print one JSON result per line. A malformed line
    /// prints `{"error":"…","line":N}` and the run goes on; the exit code is 1 if any line failed.
    #[arg(long, conflicts_with_all = ["status", "headers", "transport", "wall_clock_ms"])]
    jsonl: bool,
    /// Use the core crate linked into this binary instead of the component (same output).
    #[arg(long)]
    native: bool,
    /// Fuel per call for the component (about one unit per WebAssembly instruction).
    #[arg(long, value_name = "N", default_value_t = llmr_host::DEFAULT_FUEL)]
    fuel: u64,
    /// Memory cap for the component, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = llmr_host::DEFAULT_MEMORY_BYTES >> 20)]
    memory_mib: usize,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected 'Name: value', got {text:?}")),
    }
}

/// Where classifications come from: the component, or the core linked in.
enum Classifier {
    Component(Box<Plugin>),
    Native,
}

impl Classifier {
    fn classify(&self, input: &ClassifyInput<'_>) -> Result<Classification> {
        match self {
            Classifier::Component(plugin) => Ok(plugin.classify(input)?),
            Classifier::Native => Ok(llm_resilience::classify(input)),
        }
    }
}

fn load_plugin(path: Option<PathBuf>, limits: Limits) -> Result<Plugin> {
    let path = path.unwrap_or_else(llmr_host::default_component_path);
    let mut plugin = Plugin::from_file(&path)?;
    plugin.set_limits(limits)?;
    Ok(plugin)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("llmr: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Version => {
            let plugin = load_plugin(cli.component, Limits::default())?;
            let component = plugin.version()?;
            println!("llmr-host {}", llmr_host::VERSION);
            println!("llm-resilience (native) {}", llm_resilience::VERSION);
            println!("llm-resilience (component) {component}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Classify(args) => {
            let classifier = if args.native {
                Classifier::Native
            } else {
                let memory_bytes = args
                    .memory_mib
                    .checked_mul(1 << 20)
                    .context("--memory-mib is too large")?;
                let limits = Limits {
                    memory_bytes,
                    fuel: args.fuel,
                };
                Classifier::Component(Box::new(load_plugin(cli.component, limits)?))
            };
            if args.jsonl {
                classify_lines(&classifier)
            } else {
                classify_one(&classifier, &args)?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn classify_one(classifier: &Classifier, args: &ClassifyArgs) -> Result<()> {
    // Only what the classifier reads is kept (the first 256 KiB of a body; a transport
    // message's first 16 KiB, with room for the newline trimmed below); the rest is read and
    // discarded, so a writer into the pipe does not fail, and memory stays bounded.
    let keep = if args.transport {
        2 * llm_resilience::MAX_TRANSPORT_BYTES
    } else {
        llm_resilience::MAX_BODY_BYTES
    };
    let stdin = read_capped(&mut io::stdin().lock(), keep).context("reading stdin")?;
    let headers: Vec<(&str, &str)> = args
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let transport;
    let input = if args.transport {
        // The message as a program printed it: drop the newline `echo` adds.
        transport = String::from_utf8_lossy(&stdin)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        ClassifyInput {
            status: args.status,
            headers: &headers,
            body: &[],
            transport: Some(&transport),
            wall_clock_ms: args.wall_clock_ms,
        }
    } else {
        ClassifyInput {
            status: args.status,
            headers: &headers,
            body: &stdin,
            transport: None,
            wall_clock_ms: args.wall_clock_ms,
        }
    };
    let classification = classifier.classify(&input)?;
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, &classification)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// The first `keep` bytes of `reader`; the rest is read to the end and dropped.
fn read_capped(reader: &mut impl Read, keep: usize) -> io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    reader
        .by_ref()
        .take(u64::try_from(keep).unwrap_or(u64::MAX))
        .read_to_end(&mut kept)?;
    io::copy(reader, &mut io::sink())?;
    Ok(kept)
}

/// Classifies one JSON record per stdin line. Blank lines are skipped (but counted, so `line`
/// numbers match an editor's). Any failure on a line — not UTF-8, not JSON, wrong field types,
/// a component trap — becomes an error object on that line; the run always reaches the end.
fn classify_lines(classifier: &Classifier) -> Result<ExitCode> {
    let mut stdin = io::stdin().lock();
    let mut out = io::stdout().lock();
    let mut raw = Vec::new();
    let mut line_no: u64 = 0;
    let mut failed: u64 = 0;
    loop {
        raw.clear();
        if stdin.read_until(b'\n', &mut raw).context("reading stdin")? == 0 {
            break;
        }
        line_no += 1;
        let outcome = match std::str::from_utf8(&raw) {
            Err(e) => Err(anyhow::anyhow!("line is not UTF-8: {e}")),
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => CallInput::from_json(text.trim())
                .map_err(anyhow::Error::from)
                .and_then(|call| call.with_input(|input| classifier.classify(input))),
        };
        match outcome {
            Ok(classification) => serde_json::to_writer(&mut out, &classification)?,
            Err(e) => {
                failed += 1;
                let error = serde_json::json!({ "error": format!("{e:#}"), "line": line_no });
                serde_json::to_writer(&mut out, &error)?;
            }
        }
        writeln!(out)?;
        out.flush()?;
    }
    if failed > 0 {
        eprintln!("llmr: {failed} of {line_no} lines failed");
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_at_the_first_colon() {
        assert_eq!(
            parse_header("Retry-After:  7 ").unwrap(),
            ("Retry-After".to_string(), "7".to_string())
        );
        assert_eq!(
            parse_header("x-date: Wed, 21 Oct 2015 07:28:00 GMT")
                .unwrap()
                .1,
            "Wed, 21 Oct 2015 07:28:00 GMT"
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": value").is_err());
    }

    #[test]
    fn stdin_is_kept_up_to_the_cap_and_read_to_the_end() {
        let data = vec![b'x'; 1000];
        let mut reader = &data[..];
        assert_eq!(read_capped(&mut reader, 300).unwrap().len(), 300);
        assert!(reader.is_empty(), "the rest was drained");
        let mut short = &data[..10];
        assert_eq!(read_capped(&mut short, 300).unwrap(), vec![b'x'; 10]);
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
