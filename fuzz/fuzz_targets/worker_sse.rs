//! Arbitrary bytes, cut into arbitrary chunks, through the worker's SSE decoder
//! (`llmr_worker::sse::SseDecoder`): the frames never depend on the chunking, the decoder never
//! holds more than its cap, at most one terminal frame comes and it comes last, and an error
//! frame is JSON.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use llmr_worker::sse::{Frame, MAX_LINE, SseDecoder};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    stream: &'a [u8],
    cuts: Vec<u16>,
}

fuzz_target!(|input: Input<'_>| {
    let whole = SseDecoder::new().push(input.stream);
    let mut d = SseDecoder::new();
    let mut chunked = Vec::new();
    let mut rest = input.stream;
    for &cut in &input.cuts {
        let (head, tail) = rest.split_at(usize::from(cut).min(rest.len()));
        chunked.extend(d.push(head));
        assert!(d.buffered() <= MAX_LINE);
        rest = tail;
    }
    chunked.extend(d.push(rest));
    assert!(d.buffered() <= MAX_LINE);
    assert_eq!(chunked, whole);
    let terminal = whole.iter().filter(|f| f.is_terminal()).count();
    assert!(terminal <= 1);
    assert!(terminal == 0 || whole.last().is_some_and(Frame::is_terminal));
    for f in &whole {
        if let Frame::Error(p) = f {
            assert!(serde_json::from_slice::<serde_json::Value>(p).is_ok());
        }
    }
});
