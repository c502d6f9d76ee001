//! The byte-level half of the worker's SSE reader, without IO.
//!
//! Why sans-IO: the HTTP client hands the stream over in chunks whose boundaries mean nothing
//! (a line can arrive in pieces, several lines in one piece). Keeping the line splitting, the
//! `data:` payloads, `[DONE]`, error chunks and `usage.prompt_tokens` in a plain decoder that
//! only takes bytes lets property tests and the fuzzer check what matters: that any chunking
//! of a stream yields the same frames, that no input panics, and that the memory held is
//! bounded by [`MAX_LINE`] whatever the server sends. `client::read_sse` does the IO around it.

/// The longest line the decoder reads (256 KiB, without its `\n`). A longer line is no SSE
/// the worker understands: the decoder drops it, up to and including its end of line, and
/// goes on with the next one — whether the line arrived whole or in pieces.
pub const MAX_LINE: usize = 256 * 1024;

/// What a stream told the worker, one SSE line at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `data: [DONE]`: the stream finished. No frame follows.
    Done,
    /// An error chunk (an `error` object, or a choice with `finish_reason: "error"`): its
    /// `data:` payload, trimmed. No frame follows.
    Error(Vec<u8>),
    /// A chunk reporting `usage.prompt_tokens`.
    Usage(u64),
}

impl Frame {
    /// Whether the frame ends the stream (`Done` or `Error`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Frame::Done | Frame::Error(_))
    }
}

/// Splits a byte stream into SSE lines and the [`Frame`]s they carry.
///
/// Lines end with `\n` (a `\r` before it is trimmed away). Comment lines
/// (`: OPENROUTER PROCESSING`), `event:` lines, blank lines, and `data:` payloads that are not
/// JSON are skipped. After a terminal frame the decoder ignores everything.
#[derive(Debug, Default, Clone)]
pub struct SseDecoder {
    /// The incomplete line so far (at most [`MAX_LINE`] bytes between pushes).
    line: Vec<u8>,
    /// The current line overflowed [`MAX_LINE`]: drop bytes up to the next `\n`.
    skipping: bool,
    /// A terminal frame was returned.
    finished: bool,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// Feeds the next chunk of the stream; returns the frames of the lines it completed, in
    /// order. A terminal frame, if any, is the last one.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        while !self.finished && !bytes.is_empty() {
            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                if !self.skipping {
                    self.line.extend_from_slice(bytes);
                    if self.line.len() > MAX_LINE {
                        self.line = Vec::new();
                        self.skipping = true;
                    }
                }
                break;
            };
            let (head, rest) = bytes.split_at(end + 1);
            bytes = rest;
            if self.skipping {
                self.skipping = false;
                continue;
            }
            // The same limit whether the line came whole or in pieces (`end` excludes `\n`).
            if self.line.len() + end > MAX_LINE {
                self.line = Vec::new();
                continue;
            }
            let frame = if self.line.is_empty() {
                decode_line(head)
            } else {
                self.line.extend_from_slice(head);
                let line = std::mem::take(&mut self.line);
                decode_line(&line)
            };
            if let Some(frame) = frame {
                self.finished = frame.is_terminal();
                frames.push(frame);
            }
        }
        frames
    }

    /// Bytes held for an incomplete line (never more than [`MAX_LINE`] after a push).
    pub fn buffered(&self) -> usize {
        self.line.len()
    }

    /// Whether a terminal frame was returned.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// The frame one complete line (with its `\n`) carries, if any.
fn decode_line(line: &[u8]) -> Option<Frame> {
    let line = String::from_utf8_lossy(line);
    let data = line.trim_end().strip_prefix("data:")?.trim();
    if data == "[DONE]" {
        return Some(Frame::Done);
    }
    let v = serde_json::from_str::<serde_json::Value>(data).ok()?;
    if is_error_chunk(&v) {
        return Some(Frame::Error(data.as_bytes().to_vec()));
    }
    v.pointer("/usage/prompt_tokens")
        .and_then(serde_json::Value::as_u64)
        .map(Frame::Usage)
}

/// Whether an SSE payload is an error chunk (an `error` object, or `finish_reason: "error"`).
fn is_error_chunk(v: &serde_json::Value) -> bool {
    v.get("error").is_some()
        || v.get("choices")
            .and_then(|c| c.as_array())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.get("finish_reason").and_then(|f| f.as_str()) == Some("error"))
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_then_done() {
        let mut d = SseDecoder::new();
        let frames = d.push(
            b": OPENROUTER PROCESSING\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":12}}\n\ndata: [DONE]\n\ndata: {\"error\":{}}\n",
        );
        assert_eq!(frames, vec![Frame::Usage(12), Frame::Done]);
        assert!(d.is_finished());
    }

    #[test]
    fn an_overlong_line_is_dropped_to_its_end() {
        let mut d = SseDecoder::new();
        let mut long = b"data: ".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        assert!(d.push(&long).is_empty());
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.push(b"data: [DONE]\ndata: [DONE]\n"), vec![Frame::Done]);
    }
}
