//! Token counting. (Being written: see issue #4.)

use crate::chat::{Message, ToolSchema};

/// A token counting failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The text is longer than [`MAX_TOKENIZE_BYTES`].
    #[error("text of {0} bytes is longer than the {MAX_TOKENIZE_BYTES} bytes that are tokenized")]
    TooLarge(usize),
}

/// The most text tokenized in one call, in bytes.
pub const MAX_TOKENIZE_BYTES: usize = 4 * 1024 * 1024;

/// Something that counts tokens: exactly (a BPE tokenizer) or as a documented upper bound.
///
/// Context trimming takes a `&dyn TokenCounter`, so the same trimming runs with the exact
/// tokenizer where its tables are built in and with the upper bound elsewhere.
pub trait TokenCounter {
    /// Tokens in `text`.
    fn count_text(&self, text: &str) -> Result<u64, TokenError>;

    /// Tokens of a whole request: every message with its chat overhead, the tool schemas, and
    /// the reply priming.
    fn count_messages(&self, messages: &[Message], tools: &[ToolSchema]) -> Result<u64, TokenError>;
}
