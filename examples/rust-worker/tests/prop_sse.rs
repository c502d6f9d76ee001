//! Property tests for the worker's SSE decoder (`llmr_worker::sse`).
//!
//! Why: the HTTP client cuts a stream wherever the network did, so the decoder must give the
//! same frames for any chunking, must not panic on whatever a server sends, and must hold no
//! more than its line cap; and the real streams the classifier's vectors hold (OpenRouter's
//! documented mid-stream error chunk among them) must decode to the frames derived by hand.

use llmr_worker::sse::{Frame, MAX_LINE, SseDecoder};
use proptest::prelude::*;

/// The SSE bodies of `tests/vectors/classify.json`, by case name.
fn vector_body(name: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/classify.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/vectors/classify.json is readable");
    let v: serde_json::Value = serde_json::from_str(&text).expect("the vectors are JSON");
    let cases = v["cases"].as_array().expect("a cases array");
    let case = cases
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no vector named {name}"));
    case["input"]["body"]
        .as_str()
        .expect("a string body")
        .as_bytes()
        .to_vec()
}

/// The vectors with SSE-shaped bodies and the frames they must give (derived by reading them).
fn real_streams() -> Vec<(&'static str, Vec<u8>, Vec<Frame>)> {
    let error = |s: &str| Frame::Error(s.as_bytes().to_vec());
    vec![
        (
            "openrouter-sse-midstream-error-finish-reason",
            vector_body("openrouter-sse-midstream-error-finish-reason"),
            vec![error(
                "{\"id\":\"cmpl-abc123\",\"object\":\"chat.completion.chunk\",\"created\":1234567890,\"model\":\"gpt-3.5-turbo\",\"provider\":\"openai\",\"error\":{\"code\":\"server_error\",\"message\":\"Provider disconnected unexpectedly\"},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}",
            )],
        ),
        (
            // Two content chunks (`"usage":null` is no usage), then the error object.
            "openai-sse-midstream-server-error",
            vector_body("openai-sse-midstream-server-error"),
            vec![error(
                "{\"error\": {\"message\": \"The server had an error while processing your request. Sorry about that!\", \"type\": \"server_error\"}}",
            )],
        ),
        (
            // `event: error` is skipped; its data line is the error.
            "anthropic-sse-event-error-overloaded",
            vector_body("anthropic-sse-event-error-overloaded"),
            vec![error(
                "{\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}",
            )],
        ),
        (
            // No `error` key, no choices, no `usage.prompt_tokens`: nothing for the worker.
            "google-200-sse-prompt-feedback-block-reason",
            vector_body("google-200-sse-prompt-feedback-block-reason"),
            vec![],
        ),
        (
            "groq-sse-event-error-tool-use-failed",
            vector_body("groq-sse-event-error-tool-use-failed"),
            vec![error(
                "{\"error\":{\"message\":\"Failed to call a function. Please adjust your prompt. See 'failed_generation' for more details.\",\"type\":\"invalid_request_error\",\"code\":\"tool_use_failed\",\"failed_generation\":\"Tool use failed: JSON does not match the expected schema for tool calls\",\"status_code\":400}}",
            )],
        ),
        (
            // A content chunk, then an `error` that is a string (still an `error` key).
            "tgi-sse-validation-error-after-first-chunk",
            vector_body("tgi-sse-validation-error-after-first-chunk"),
            vec![error(
                "{\"error\":\"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 6 `inputs` tokens and 4091 `max_new_tokens`\",\"error_type\":\"validation\"}",
            )],
        ),
        (
            // Relayed as text, no line end and no `data:`: no frame.
            "openrouter-503-raw-no-available-workers-relayed-text",
            vector_body("openrouter-503-raw-no-available-workers-relayed-text"),
            vec![],
        ),
        (
            // The stream OpenRouter (and the mock) send: a processing comment, content chunks,
            // the finishing chunk, the usage chunk, [DONE] (README "Mock endpoints"), in CRLF.
            "openrouter-stream-with-usage",
            b": OPENROUTER PROCESSING\r\n\r\n: OPENROUTER PROCESSING\r\n\r\ndata: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Your refund\"},\"finish_reason\":null}]}\r\n\r\ndata: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\",\"native_finish_reason\":\"stop\"}]}\r\n\r\ndata: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":1234,\"completion_tokens\":56,\"total_tokens\":1290,\"cost\":0.0012}}\r\n\r\ndata: [DONE]\r\n\r\n".to_vec(),
            vec![Frame::Usage(1234), Frame::Done],
        ),
        (
            // The core's own OpenRouter stream fixture: error chunk before [DONE].
            "openrouter-processing-then-error",
            b": OPENROUTER PROCESSING\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"error\":{\"code\":502,\"message\":\"Provider disconnected\"},\"choices\":[{\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\ndata: [DONE]\n".to_vec(),
            vec![error(
                "{\"error\":{\"code\":502,\"message\":\"Provider disconnected\"},\"choices\":[{\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}",
            )],
        ),
    ]
}

/// All frames of `input` pushed in pieces cut at `cuts` (positions, any order, any range).
fn decode_chunked(input: &[u8], cuts: &[usize]) -> (Vec<Frame>, usize) {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|c| c % (input.len() + 1))
        .chain([0, input.len()])
        .collect();
    cuts.sort_unstable();
    let mut d = SseDecoder::new();
    let mut frames = Vec::new();
    let mut most_held = 0;
    for w in cuts.windows(2) {
        frames.extend(d.push(&input[w[0]..w[1]]));
        most_held = most_held.max(d.buffered());
    }
    (frames, most_held)
}

fn decode_whole(input: &[u8]) -> Vec<Frame> {
    SseDecoder::new().push(input)
}

/// A stream made of SSE-ish lines: real bodies, comments, usage chunks, `[DONE]`, junk, and
/// lines around the cap.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let bodies: Vec<Vec<u8>> = real_streams().into_iter().map(|(_, b, _)| b).collect();
    let piece = prop_oneof![
        proptest::sample::select(bodies),
        Just(b": OPENROUTER PROCESSING\n\n".to_vec()),
        Just(b"data: [DONE]\n".to_vec()),
        Just(b"data:[DONE]\r\n".to_vec()),
        Just(b"event: error\n".to_vec()),
        (0u64..u64::MAX).prop_map(|t| format!(
            "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":{t}}}}}\n"
        )
        .into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..64),
        (MAX_LINE - 8..MAX_LINE + 8).prop_map(|n| {
            let mut l = b"data: ".to_vec();
            l.resize(n, b'x');
            l.push(b'\n');
            l
        }),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|ps| ps.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Any chunking gives the frames of one push, holds at most the cap, and at most one
    /// terminal frame, last.
    #[test]
    fn any_chunking_gives_the_same_frames(
        input in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..24),
    ) {
        let whole = decode_whole(&input);
        let (chunked, most_held) = decode_chunked(&input, &cuts);
        prop_assert_eq!(&chunked, &whole);
        prop_assert!(most_held <= MAX_LINE);
        let terminal = whole.iter().filter(|f| f.is_terminal()).count();
        prop_assert!(terminal <= 1);
        if terminal == 1 {
            prop_assert!(whole.last().is_some_and(Frame::is_terminal));
        }
        // One byte at a time is a chunking too.
        let mut d = SseDecoder::new();
        let bytewise: Vec<Frame> = input.iter().flat_map(|b| d.push(std::slice::from_ref(b))).collect();
        prop_assert_eq!(bytewise, whole);
    }

    /// Arbitrary bytes never panic and never make the decoder hold more than the cap; an
    /// error frame's payload is JSON taken from a line of the input.
    #[test]
    fn arbitrary_bytes_are_bounded(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..4096), 0..16),
        filler in 0usize..(MAX_LINE / 64),
    ) {
        let mut d = SseDecoder::new();
        // A big newline-free chunk first, so the cap is reached on some runs.
        let big = vec![b'a'; filler * 80];
        let _ = d.push(&big);
        prop_assert!(d.buffered() <= MAX_LINE);
        for c in &chunks {
            for f in d.push(c) {
                if let Frame::Error(p) = f {
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(&p).is_ok());
                }
            }
            prop_assert!(d.buffered() <= MAX_LINE);
        }
    }

    /// The real streams decode as derived by hand, whatever their chunking.
    #[test]
    fn real_streams_decode_as_expected(cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        for (name, body, expected) in real_streams() {
            let (frames, _) = decode_chunked(&body, &cuts);
            prop_assert_eq!(&frames, &expected, "{}", name);
        }
    }
}

/// A line over the cap is dropped whole, the lines after it still count.
#[test]
fn an_overlong_usage_line_is_dropped_and_the_next_lines_read() {
    let mut line = b"data: {\"usage\":{\"prompt_tokens\":7},\"pad\":\"".to_vec();
    line.resize(MAX_LINE + 1, b'x');
    line.extend_from_slice(b"\"}\ndata: {\"usage\":{\"prompt_tokens\":9}}\ndata: [DONE]\n");
    assert_eq!(decode_whole(&line), vec![Frame::Usage(9), Frame::Done]);
    let (chunked, held) = decode_chunked(&line, &[1000, 200_000, MAX_LINE]);
    assert_eq!(chunked, vec![Frame::Usage(9), Frame::Done]);
    assert!(held <= MAX_LINE);
}

/// A line exactly at the cap is still read.
#[test]
fn a_line_at_the_cap_is_read() {
    let mut line = b"data: {\"usage\":{\"prompt_tokens\":7},\"pad\":\"".to_vec();
    line.resize(MAX_LINE - 2, b'x');
    line.extend_from_slice(b"\"}");
    assert_eq!(line.len(), MAX_LINE);
    line.push(b'\n');
    assert_eq!(decode_whole(&line), vec![Frame::Usage(7)]);
    let (chunked, _) = decode_chunked(&line, &[10, MAX_LINE - 1]);
    assert_eq!(chunked, vec![Frame::Usage(7)]);
}
