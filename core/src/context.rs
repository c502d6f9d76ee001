//! Context trimming: fit a conversation into the model's window, by the token counter's own
//! measure, without breaking it.
//!
//! # Why not "the last 10 messages, 200 characters each"?
//!
//! Trimming by message count and character caps fails both ways: it drops history that would
//! have fitted, and it still overflows when a few messages are long, because characters are not
//! tokens (`chars / 4` undercounts Indonesian chat by 35–58 %, and an emoji is several tokens). The well-known trimmers each break some real case: a tool result left without
//! the call it answers (the provider rejects the request), a last user message that is dropped
//! or cut in the middle, an emoji split into mojibake, or a result that is silently still over
//! budget. [`trim`] gets all of them right, and every rule below is a property test.
//!
//! # What it does
//!
//! Input ([`TrimInput`]): the system prompt, knowledge-base documents ranked best first, the
//! chat history, the latest user message and the tool schemas. The budget ([`ContextBudget`]):
//! `context_window − reserved_output_tokens − safety_margin_tokens` tokens for the whole request
//! as [`TokenCounter::count_messages`] counts it, plus optional caps: history messages, and
//! characters per document and per history message. Output ([`Trimmed`]): the messages to send,
//! in order `[system, document…, history…, latest]` (each kept document is its own system
//! message, best first), and a [`TrimReport`] saying what happened to every document and every
//! history message, with the token counts before and after.
//!
//! # The rules
//!
//! 1. **The system prompt and the latest user message are always sent, whole.** Cutting the
//!    customer's own question changes what is being answered; cutting the instructions changes
//!    how. If the two alone (with the tool schemas) do not fit, [`trim`] returns
//!    [`ContextError::DoesNotFit`] with both numbers — never a silent over-budget result — and
//!    the caller decides (ask the customer to shorten the message, pick a larger model).
//! 2. **Character caps first.** Documents longer than `max_document_chars` and history messages
//!    longer than `max_message_chars` are cut (rule 5); the latest message and the system prompt
//!    are never cut. `max_history_messages` keeps at most that many history messages (newest).
//! 3. **Documents shrink before history is dropped.** While the request does not fit, the
//!    lowest-ranked document is cut to the longest prefix that makes everything fit, but not
//!    below `min_document_chars`; if even that is not enough, it stays at that floor and the
//!    next-lowest is cut, and so on. Only then is history dropped, oldest first. Only when no
//!    history is left are documents dropped, lowest-ranked first (and the history is refitted
//!    into the room each drop frees). Why a floor rather than dropping documents first: the
//!    first few hundred characters of a relevant article answer most support questions, and the
//!    last few turns of the conversation say what the question is. `min_document_chars: 0`
//!    drops documents entirely before any history.
//! 4. **History is kept newest first, as whole exchanges, starting with a user turn.** An
//!    assistant message with tool calls and the tool results answering them are one unit: kept
//!    or dropped together. Input that is already broken is repaired, not sent: a tool result no
//!    kept call asks for, and a tool call whose results are missing, are dropped (and reported).
//!    The kept history always starts with a user message (some providers reject a conversation
//!    that starts with the assistant), so assistant or system messages before the first kept
//!    user message are dropped.
//! 5. **Text is cut only between grapheme clusters** (a flag, a skin-toned or ZWJ family emoji,
//!    a letter with combining marks is never split), preferring the end of a line, then of a
//!    sentence, then of a word — each only when it keeps at least half (in UTF-8 bytes) of the
//!    longest prefix that would fit — else at the last grapheme boundary that fits. Trailing
//!    whitespace is removed and [`TRUNCATION_MARKER`] is appended, so the model (and a person
//!    reading logs) sees that text is missing. Every cut text is a prefix of its input followed
//!    by the marker. The inputs are never mutated: [`trim`] takes references and returns new
//!    values.
//! 6. **The result never exceeds the budget by the counter's own measure.** The trimmer plans
//!    with each message counted once and requests counted as the sum of their messages (exact
//!    for counters that count that way, as both of [`crate::tokens`]' counters do), then counts
//!    the planned request whole with [`TokenCounter::count_messages`]; if that is over budget (a
//!    counter that is not a sum), it plans again counting every candidate request whole. The
//!    report's `tokens_after` is that whole count. Searches are binary (O(log n) counts per
//!    document and for the history), which finds the largest request that fits for counters
//!    that never count a prefix as more than the whole; for any other counter the result is
//!    still within budget, just possibly not the largest that fits.
//!
//! # Bounded work
//!
//! [`trim`] refuses, before any counting, an input with more than
//! [`MAX_TOKENIZE_BYTES`] (4 MiB) of text in all (system
//! prompt, documents, history and latest messages with their names and tool calls, tool
//! schemas) or more than [`MAX_TRIM_ITEMS`] documents and history messages together: a
//! [`ContextError::Tokens`] whose message names the limit. Within those caps, with an additive
//! counter ([`TokenCounter::is_additive`]: both of [`crate::tokens`]' counters), every text is
//! counted once up front (the counts before, of `[system, latest]` and every planned request
//! are sums of those), each document is counted again only when it is cut, a document that
//! cannot stay even at its floor costs one count, and the request returned is counted whole
//! once (rule 6): about two passes over the input. So 10 000 documents, 100 000 history
//! messages or a 1 MiB latest message are trimmed in bounded time and memory, which is what
//! lets a WebAssembly host give every valid input a fixed fuel and memory budget.
//!
//! # After a context overflow
//!
//! Counters disagree with providers (a different tokenizer, hidden overhead). When the provider
//! still says the request is too long, [`next_budget`] turns its `context-overflow`
//! [`Classification`] into the next [`ContextBudget`], whose [`ContextBudget::limit_tokens`] is
//! exactly the `target_tokens` that [`RetryPolicy::decide`] returns in its
//! [`Decision::ShrinkContext`](crate::retry::Decision::ShrinkContext) for the same failure and
//! the same `request_tokens` (pass the trimmed request's [`TrimReport::tokens_after`] to both).
//! Both apply the retry policy's rule — our count scaled by limit/requested, less
//! `shrink_margin_percent`; see [`next_budget`] — with the same [`RetryPolicy`]'s settings. The
//! rule is written twice (the retry side's `shrink_target` is private to `retry.rs`), so a
//! property test feeds both random limits, requests, counts, margins and percentages and checks
//! that the budget's limit equals the decision's target token for token. The trimmer then
//! shrinks the request to exactly the target the retry policy asked for.

use crate::chat::{Message, Role, ToolSchema};
use crate::classify::{Classification, ErrorKind};
use crate::config::{ConfigError, Problems};
use crate::retry::RetryPolicy;
use crate::tokens::{MAX_TOKENIZE_BYTES, TokenCounter, TokenError};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeSet;
use unicode_segmentation::UnicodeSegmentation;

/// Appended to every text that was cut.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// Settings of a [`ContextBudget`]. Every field has a documented default ([`Default`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextConfig {
    /// The model's context window, tokens (prompt and completion together). Default 128 000.
    /// Must be > 0.
    pub context_window: u64,
    /// Tokens kept free for the reply (the request's `max_tokens`). Default 1 024. Must be
    /// < `context_window`.
    pub reserved_output_tokens: u64,
    /// Tokens kept free for counting differences between this counter and the provider's.
    /// Default 256. `reserved_output_tokens + safety_margin_tokens` must be < `context_window`.
    pub safety_margin_tokens: u64,
    /// At most this many history messages are kept (newest first; the system prompt, documents
    /// and the latest message are not counted). Default `None`: no count limit. `Some(0)` sends
    /// no history.
    pub max_history_messages: Option<u32>,
    /// Documents longer than this many characters (Unicode scalar values) are cut to at most
    /// this many (plus the marker). Default `None`. Must be > 0 when set.
    pub max_document_chars: Option<u32>,
    /// History messages longer than this many characters are cut to at most this many (plus the
    /// marker). Tool-call arguments are never cut. Default `None`. Must be > 0 when set.
    pub max_message_chars: Option<u32>,
    /// Documents are cut down to this many characters, lowest-ranked first, before any history
    /// is dropped (rule 3). Default 500. Must be ≤ `max_document_chars` when that is set.
    pub min_document_chars: u32,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            context_window: 128_000,
            reserved_output_tokens: 1_024,
            safety_margin_tokens: 256,
            max_history_messages: None,
            max_document_chars: None,
            max_message_chars: None,
            min_document_chars: 500,
        }
    }
}

/// A validated trimming budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ContextConfig", into = "ContextConfig")]
pub struct ContextBudget {
    config: ContextConfig,
}

impl TryFrom<ContextConfig> for ContextBudget {
    type Error = ConfigError;
    fn try_from(config: ContextConfig) -> Result<Self, ConfigError> {
        ContextBudget::new(config)
    }
}

impl From<ContextBudget> for ContextConfig {
    fn from(budget: ContextBudget) -> Self {
        budget.config
    }
}

impl ContextBudget {
    /// Validates `config`; lists every rejected field.
    pub fn new(config: ContextConfig) -> Result<ContextBudget, ConfigError> {
        let c = &config;
        let mut p = Problems::default();
        p.check(c.context_window > 0, || {
            "context_window must be > 0 (got 0)".to_string()
        });
        p.check(c.reserved_output_tokens < c.context_window, || {
            format!(
                "reserved_output_tokens must be < context_window (got {} >= {})",
                c.reserved_output_tokens, c.context_window
            )
        });
        let spent = c
            .reserved_output_tokens
            .saturating_add(c.safety_margin_tokens);
        p.check(spent < c.context_window, || {
            format!(
                "reserved_output_tokens + safety_margin_tokens must be < context_window (got {} + {} >= {})",
                c.reserved_output_tokens, c.safety_margin_tokens, c.context_window
            )
        });
        p.check(c.max_document_chars != Some(0), || {
            "max_document_chars must be > 0 or null (got 0)".to_string()
        });
        p.check(c.max_message_chars != Some(0), || {
            "max_message_chars must be > 0 or null (got 0)".to_string()
        });
        if let Some(cap) = c.max_document_chars {
            p.check(c.min_document_chars <= cap, || {
                format!(
                    "min_document_chars must be <= max_document_chars (got {} > {cap})",
                    c.min_document_chars
                )
            });
        }
        p.finish(ContextBudget { config })
    }

    /// The validated settings.
    pub fn config(&self) -> &ContextConfig {
        &self.config
    }

    /// Tokens the whole request may take: window − reserved output − safety margin (> 0).
    pub fn limit_tokens(&self) -> u64 {
        let c = &self.config;
        c.context_window
            .saturating_sub(c.reserved_output_tokens)
            .saturating_sub(c.safety_margin_tokens)
    }
}

/// What to trim. Borrowed: [`trim`] never changes it.
#[derive(Debug, Clone, Copy)]
pub struct TrimInput<'a> {
    /// The system prompt; always sent first, whole.
    pub system: &'a str,
    /// Knowledge-base documents, best-ranked first.
    pub documents: &'a [String],
    /// The conversation so far, oldest first (without the latest user message).
    pub history: &'a [Message],
    /// The customer's latest message; must have the user role. Always sent last, whole.
    pub latest: &'a Message,
    /// The tool schemas sent with the request (they count against the budget).
    pub tools: &'a [ToolSchema],
}

/// Why a document or history message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// It did not fit in the token budget.
    Budget,
    /// More history messages than `max_history_messages`.
    MaxMessages,
    /// A tool result that no kept assistant tool call asks for.
    OrphanToolResult,
    /// An assistant tool call (with its results) whose results are not all in the history.
    UnansweredToolCall,
    /// Before the first kept user message (the kept history starts with a user turn).
    BeforeFirstUserTurn,
}

/// What happened to one document or history message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fate", rename_all = "kebab-case")]
pub enum Fate {
    /// Sent unchanged.
    Kept,
    /// Sent cut: a prefix of `chars_after` of its `chars_before` characters, then the marker.
    Truncated {
        /// Characters (Unicode scalar values) of the original text.
        chars_before: u64,
        /// Characters of the prefix sent (the marker not counted).
        chars_after: u64,
    },
    /// Not sent.
    Dropped {
        /// Why.
        reason: DropReason,
    },
}

impl Fate {
    /// Whether it was sent (whole or cut).
    pub fn is_sent(&self) -> bool {
        !matches!(self, Fate::Dropped { .. })
    }
}

/// What [`trim`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrimReport {
    /// The untrimmed request (system, every document, the whole history, latest), counted;
    /// `None` when the counter refuses it (never for this crate's counters: [`trim`] refuses
    /// an input over [`crate::tokens::MAX_TOKENIZE_BYTES`] before counting).
    pub tokens_before: Option<u64>,
    /// The request returned, counted: always ≤ `limit_tokens`.
    pub tokens_after: u64,
    /// The budget's limit.
    pub limit_tokens: u64,
    /// One entry per input document, in input order.
    pub documents: Vec<Fate>,
    /// One entry per input history message, in input order.
    pub history: Vec<Fate>,
}

impl TrimReport {
    /// (kept whole, truncated, dropped) over documents and history messages together.
    pub fn tally(&self) -> (usize, usize, usize) {
        let mut t = (0, 0, 0);
        for f in self.documents.iter().chain(&self.history) {
            match f {
                Fate::Kept => t.0 += 1,
                Fate::Truncated { .. } => t.1 += 1,
                Fate::Dropped { .. } => t.2 += 1,
            }
        }
        t
    }
}

/// The request to send and what was done to get it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trimmed {
    /// `[system, document…, history…, latest]`.
    pub messages: Vec<Message>,
    /// What was kept, cut and dropped, and the token counts.
    pub report: TrimReport,
}

/// Why trimming (or computing the next budget) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum ContextError {
    /// The system prompt, the latest message and the tool schemas alone exceed the budget.
    #[error(
        "the system prompt and the latest message alone take {required_tokens} tokens, over the budget of {limit_tokens}"
    )]
    DoesNotFit {
        /// Tokens of `[system, latest]` with the tools.
        required_tokens: u64,
        /// The budget's limit.
        limit_tokens: u64,
    },
    /// The latest message does not have the user role.
    #[error("the latest message must have the user role (got {role:?})")]
    LatestNotUser {
        /// Its role.
        role: Role,
    },
    /// The counter refused a text, or the input is over [`trim`]'s caps (more than
    /// [`MAX_TOKENIZE_BYTES`] of text, more than [`MAX_TRIM_ITEMS`] documents and history
    /// messages); the message names the limit.
    #[error("token counting failed: {message}")]
    Tokens {
        /// The counter's error.
        message: String,
    },
    /// [`next_budget`] was given a failure that is not a context overflow.
    #[error("not a context overflow (got {kind:?})")]
    NotOverflow {
        /// The failure's kind.
        kind: ErrorKind,
    },
    /// [`next_budget`]: neither the error nor the caller gives a size to shrink from, or the
    /// target leaves no room for any request.
    #[error("cannot compute a smaller budget from this failure")]
    CannotShrink,
}

impl From<TokenError> for ContextError {
    fn from(e: TokenError) -> Self {
        ContextError::Tokens {
            message: e.to_string(),
        }
    }
}

/// Trims `input` into `budget`, counting with `counter`. See the module documentation for the
/// rules and the caps (checked first: [`ContextError::Tokens`] names the one exceeded).
pub fn trim(
    budget: &ContextBudget,
    input: &TrimInput<'_>,
    counter: &dyn TokenCounter,
) -> Result<Trimmed, ContextError> {
    if input.latest.role != Role::User {
        return Err(ContextError::LatestNotUser {
            role: input.latest.role,
        });
    }
    check_input_size(input)?;
    let c = &budget.config;
    let limit = budget.limit_tokens();
    let system = Message::new(Role::System, input.system);

    // An additive counter (both of this crate's) counts each message once, here; the counts
    // before, of `[system, latest]` and of every plan are sums of these. Any other counter
    // counts the requests whole.
    let pre = if counter.is_additive() {
        Some(Precounted::new(counter, &system, input)?)
    } else {
        None
    };
    let (tokens_before, required) = match &pre {
        Some(p) => (Some(p.before()), p.required()),
        None => {
            let mut all = Vec::with_capacity(input.documents.len() + input.history.len() + 2);
            all.push(system.clone());
            all.extend(
                input
                    .documents
                    .iter()
                    .map(|d| Message::new(Role::System, d.as_str())),
            );
            all.extend(input.history.iter().cloned());
            all.push(input.latest.clone());
            let before = counter.count_messages(&all, input.tools).ok();
            drop(all);
            let required =
                counter.count_messages(&[system.clone(), input.latest.clone()], input.tools)?;
            (before, required)
        }
    };
    if required > limit {
        return Err(ContextError::DoesNotFit {
            required_tokens: required,
            limit_tokens: limit,
        });
    }

    // Documents, capped.
    let docs_capped: Vec<Doc<'_>> = input
        .documents
        .iter()
        .map(|text| Doc::capped(text, c.max_document_chars))
        .collect();

    // History: units, capped messages, reasons for what cannot be sent at all.
    let mut fates: Vec<Fate> = vec![Fate::Kept; input.history.len()];
    let units = build_units(input.history, &mut fates);
    let mut hist: Vec<Message> = Vec::new();
    let mut unit_starts: Vec<usize> = Vec::new(); // index into `hist` of each unit's first message
    // For each message of `hist`: its index in the input, if it was sent unchanged.
    let mut unchanged: Vec<Option<usize>> = Vec::new();
    for unit in &units {
        unit_starts.push(hist.len());
        for &i in &unit.members {
            let m = &input.history[i];
            let mut out = m.clone();
            let mut same = Some(i);
            if let Some(end) = c.max_message_chars.and_then(|cap| cap_end(&m.content, cap)) {
                let cut = choose_cut(&m.content, end);
                out.content = cut_text(&m.content, cut);
                fates[i] = truncated_fate(&m.content, cut);
                same = None;
            }
            hist.push(out);
            unchanged.push(same);
        }
    }
    unit_starts.push(hist.len());
    // Candidate starting units: user units, then "no history".
    let first_user = units.iter().position(|u| u.user).unwrap_or(units.len());
    let mut starts: Vec<usize> = (first_user..units.len())
        .filter(|&u| units[u].user)
        .collect();
    starts.push(units.len());
    // The count cap: the oldest start whose suffix holds at most `max_history_messages`.
    let count_ok = |s: usize| match c.max_history_messages {
        Some(max) => (hist.len() - unit_starts[s]) as u64 <= u64::from(max),
        None => true,
    };
    let first_allowed = starts.iter().position(|&s| count_ok(s)).unwrap_or(0);
    let starts = &starts[first_allowed..];

    // Plan with per-message counts added up (one count per message, then sums), which is
    // exact for counters that count a request as the sum of its messages (both of this crate's
    // counters do); check the plan with one count of the whole request; plan again with whole
    // counts only if that check fails.
    let mut ctx = Ctx {
        system: &system,
        latest: input.latest,
        tools: input.tools,
        hist: &hist,
        unit_starts: &unit_starts,
        counter,
        limit,
        sums: None,
    };
    ctx.sums = Some(Sums::new(&ctx, pre.as_ref(), &unchanged)?);
    let floor = c.min_document_chars;
    let whole = pre.as_ref().map(|p| p.docs.as_slice());
    let (mut docs, mut chosen) = plan(&ctx, docs_capped.clone(), starts, floor, whole)?;
    ctx.sums = None;
    let mut tokens_after = ctx.count(&docs, chosen)?;
    if tokens_after > limit {
        (docs, chosen) = plan(&ctx, docs_capped, starts, floor, None)?;
        tokens_after = ctx.count(&docs, chosen)?;
    }
    if tokens_after > limit {
        // Unreachable with the pre-check (no documents and no history is `required`), but the
        // rule is never to return an over-budget request.
        return Err(ContextError::DoesNotFit {
            required_tokens: tokens_after,
            limit_tokens: limit,
        });
    }

    // Report.
    let documents = docs
        .iter()
        .map(|d| match d.cut {
            Cut::Whole => Fate::Kept,
            Cut::Prefix(end) => truncated_fate(d.text, end),
            Cut::Dropped => Fate::Dropped {
                reason: DropReason::Budget,
            },
        })
        .collect();
    let count_start = starts.first().copied().unwrap_or(units.len());
    for (u, unit) in units.iter().enumerate() {
        let reason = if u < first_user {
            Some(DropReason::BeforeFirstUserTurn)
        } else if u < count_start {
            Some(DropReason::MaxMessages)
        } else if u < chosen {
            Some(DropReason::Budget)
        } else {
            None
        };
        if let Some(reason) = reason {
            for &i in &unit.members {
                fates[i] = Fate::Dropped { reason };
            }
        }
    }
    Ok(Trimmed {
        messages: ctx.assemble(&docs, chosen),
        report: TrimReport {
            tokens_before,
            tokens_after,
            limit_tokens: limit,
            documents,
            history: fates,
        },
    })
}

/// The next budget after the provider rejected a request of `request_tokens` (the trimmed
/// request's [`TrimReport::tokens_after`]) with a context overflow.
///
/// Its [`ContextBudget::limit_tokens`] is exactly the `target_tokens` of the
/// [`Decision::ShrinkContext`](crate::retry::Decision::ShrinkContext) that `policy` decides for
/// the same failure and `request_tokens` (never more than `current`'s limit): limit L and
/// requested R from the error give `request_tokens · L / R`, less the policy's
/// `shrink_margin_percent`; L alone gives `min(L, request_tokens)` less the margin; no numbers
/// give `request_tokens · shrink_percent / 100`. The reserved output tokens, safety margin and
/// caps stay; the window shrinks to make room for exactly that target.
pub fn next_budget(
    failure: &Classification,
    current: &ContextBudget,
    request_tokens: Option<u64>,
    policy: &RetryPolicy,
) -> Result<ContextBudget, ContextError> {
    if failure.kind != ErrorKind::ContextOverflow {
        return Err(ContextError::NotOverflow { kind: failure.kind });
    }
    let rc = policy.config();
    let keep = |n: u64| n.saturating_mul(u64::from(100 - rc.shrink_margin_percent.min(100))) / 100;
    let target = match (
        failure.limit_tokens,
        failure.requested_tokens,
        request_tokens,
    ) {
        (Some(limit), Some(requested), Some(mine)) if requested > limit && limit > 0 => {
            let scaled = u128::from(mine) * u128::from(limit) / u128::from(requested);
            keep(u64::try_from(scaled).unwrap_or(u64::MAX))
        }
        (Some(limit), _, Some(mine)) if limit > 0 => keep(limit.min(mine)),
        (Some(limit), _, None) if limit > 0 => keep(limit),
        (_, _, Some(mine)) if mine > 0 => mine.saturating_mul(u64::from(rc.shrink_percent)) / 100,
        _ => return Err(ContextError::CannotShrink),
    };
    let target = target.min(current.limit_tokens());
    if target == 0 {
        return Err(ContextError::CannotShrink);
    }
    let mut config = current.config.clone();
    config.context_window = target
        .saturating_add(config.reserved_output_tokens)
        .saturating_add(config.safety_margin_tokens);
    let next = ContextBudget::new(config).map_err(|_| ContextError::CannotShrink)?;
    if next.limit_tokens() == target {
        Ok(next)
    } else {
        // Only when the window would pass u64::MAX.
        Err(ContextError::CannotShrink)
    }
}

// ---------------------------------------------------------------------------------------------

/// How much of a document is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Whole,
    /// The first `end` bytes (a grapheme boundary), then the marker.
    Prefix(usize),
    Dropped,
}

#[derive(Debug, Clone, Copy)]
struct Doc<'a> {
    text: &'a str,
    cut: Cut,
}

impl<'a> Doc<'a> {
    fn capped(text: &'a str, cap: Option<u32>) -> Doc<'a> {
        let cut = match cap.and_then(|cap| cap_end(text, cap)) {
            Some(end) => Cut::Prefix(choose_cut(text, end)),
            None => Cut::Whole,
        };
        Doc { text, cut }
    }

    /// Bytes of the text sent (before the marker).
    fn end(&self) -> usize {
        match self.cut {
            Cut::Whole => self.text.len(),
            Cut::Prefix(end) => end,
            Cut::Dropped => 0,
        }
    }

    fn message(&self) -> Option<Message> {
        match self.cut {
            Cut::Whole => Some(Message::new(Role::System, self.text)),
            Cut::Prefix(end) => Some(Message::new(Role::System, cut_text(self.text, end))),
            Cut::Dropped => None,
        }
    }
}

/// A history unit: one message, or an assistant tool call with its results.
struct Unit {
    members: Vec<usize>,
    user: bool,
}

/// Groups the history into units; marks what can never be sent in `fates`.
fn build_units(history: &[Message], fates: &mut [Fate]) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut i = 0;
    while i < history.len() {
        let m = &history[i];
        match m.role {
            Role::Tool => {
                fates[i] = Fate::Dropped {
                    reason: DropReason::OrphanToolResult,
                };
                i += 1;
            }
            Role::Assistant if !m.tool_calls.is_empty() => {
                let mut waiting: BTreeSet<&str> =
                    m.tool_calls.iter().map(|t| t.id.as_str()).collect();
                let mut members = vec![i];
                let mut j = i + 1;
                while j < history.len() && history[j].role == Role::Tool {
                    let answers = history[j]
                        .tool_call_id
                        .as_deref()
                        .is_some_and(|id| waiting.remove(id));
                    if answers {
                        members.push(j);
                    } else {
                        fates[j] = Fate::Dropped {
                            reason: DropReason::OrphanToolResult,
                        };
                    }
                    j += 1;
                }
                if waiting.is_empty() && members.len() == m.tool_calls.len() + 1 {
                    units.push(Unit {
                        members,
                        user: false,
                    });
                } else {
                    for k in members {
                        fates[k] = Fate::Dropped {
                            reason: DropReason::UnansweredToolCall,
                        };
                    }
                }
                i = j;
            }
            role => {
                units.push(Unit {
                    members: vec![i],
                    user: role == Role::User,
                });
                i += 1;
            }
        }
    }
    units
}

/// What every count needs.
struct Ctx<'a> {
    system: &'a Message,
    latest: &'a Message,
    tools: &'a [ToolSchema],
    hist: &'a [Message],
    unit_starts: &'a [usize],
    counter: &'a dyn TokenCounter,
    limit: u64,
    /// Set while planning by sums of per-message counts.
    sums: Option<Sums>,
}

impl Ctx<'_> {
    /// `[system, documents…, history from unit `start`…, latest]`.
    fn assemble(&self, docs: &[Doc<'_>], start: usize) -> Vec<Message> {
        let from = self.unit_starts[start];
        let mut out = Vec::with_capacity(docs.len() + self.hist.len() - from + 2);
        out.push(self.system.clone());
        out.extend(docs.iter().filter_map(Doc::message));
        out.extend(self.hist[from..].iter().cloned());
        out.push(self.latest.clone());
        out
    }

    /// The count of that request: counted whole, or as the sum of its messages' own counts
    /// when `sums` is set.
    fn count(&self, docs: &[Doc<'_>], start: usize) -> Result<u64, ContextError> {
        let Some(sums) = &self.sums else {
            return self.count_list(&self.assemble(docs, start), self.tools);
        };
        // The documents' own counts are kept up to date by `set_cut` (and `reset_docs`).
        let docs_total = u64::try_from(sums.docs.borrow().total).unwrap_or(u64::MAX);
        Ok(sums
            .fixed
            .saturating_add(sums.suffix[start])
            .saturating_add(docs_total))
    }

    /// The own count of one document as cut (0 when dropped).
    fn doc_own(&self, doc: &Doc<'_>, empty: u64) -> Result<u64, ContextError> {
        Ok(match doc.message() {
            Some(m) => self
                .count_list(std::slice::from_ref(&m), &[])?
                .saturating_sub(empty),
            None => 0,
        })
    }

    /// Counts every document's own count afresh (when planning by sums starts).
    fn reset_docs(&self, docs: &[Doc<'_>], whole: Option<&[u64]>) -> Result<(), ContextError> {
        let Some(sums) = &self.sums else {
            return Ok(());
        };
        let mut own = Vec::with_capacity(docs.len());
        for (i, doc) in docs.iter().enumerate() {
            let n = match (doc.cut, whole) {
                (Cut::Whole, Some(whole)) => whole[i],
                _ => self.doc_own(doc, sums.empty)?,
            };
            own.push(n);
        }
        let total = own.iter().map(|&n| u128::from(n)).sum();
        *sums.docs.borrow_mut() = DocSums { own, total };
        Ok(())
    }

    /// Sets document `i`'s cut, keeping the documents' own counts up to date.
    fn set_cut(&self, docs: &mut [Doc<'_>], i: usize, cut: Cut) -> Result<(), ContextError> {
        docs[i].cut = cut;
        if let Some(sums) = &self.sums {
            let n = self.doc_own(&docs[i], sums.empty)?;
            let mut d = sums.docs.borrow_mut();
            let old = std::mem::replace(&mut d.own[i], n);
            d.total = d.total - u128::from(old) + u128::from(n);
        }
        Ok(())
    }

    /// `messages` with `tools`, counted; a request too large to count is over any budget.
    fn count_list(&self, messages: &[Message], tools: &[ToolSchema]) -> Result<u64, ContextError> {
        match self.counter.count_messages(messages, tools) {
            Ok(n) => Ok(n),
            Err(TokenError::TooLarge(_)) => Ok(u64::MAX),
        }
    }
}

/// Rules 3 and 4 under `ctx`'s way of counting: the documents' cuts and the first history
/// unit sent. The result may be over budget only when even `[system, latest]` is.
fn plan<'a>(
    ctx: &Ctx<'_>,
    mut docs: Vec<Doc<'a>>,
    starts: &[usize],
    floor: u32,
    whole: Option<&[u64]>,
) -> Result<(Vec<Doc<'a>>, usize), ContextError> {
    ctx.reset_docs(&docs, whole)?;
    let mut chosen = starts[0];
    if ctx.count(&docs, chosen)? <= ctx.limit
        || shrink_documents(ctx, &mut docs, chosen, floor)?.is_some()
    {
        return Ok((docs, chosen));
    }
    let (s, mut t) = fit_history(ctx, &docs, starts)?;
    chosen = s;
    // No history fits next to the documents at their floor: drop documents, lowest first,
    // refitting the history each time.
    let mut i = docs.len();
    while t > ctx.limit && i > 0 {
        i -= 1;
        ctx.set_cut(&mut docs, i, Cut::Dropped)?;
        (chosen, t) = fit_history(ctx, &docs, starts)?;
    }
    Ok((docs, chosen))
}

/// Per-message counts, for counting a request as their sum.
struct Sums {
    /// The count of no messages without the tools (the reply priming): subtracted from a
    /// one-message count to get the message's own count. Tools are counted once, in `fixed`.
    empty: u64,
    /// The count of no messages with the tools, plus the system prompt's and the latest
    /// message's own counts.
    fixed: u64,
    /// For each history unit, the own counts of every history message from its start on.
    suffix: Vec<u64>,
    /// The documents' own counts as currently cut (see [`Ctx::set_cut`]).
    docs: RefCell<DocSums>,
}

/// The own count of every document as currently cut, and their total.
#[derive(Default)]
struct DocSums {
    own: Vec<u64>,
    /// Not saturated, so that replacing one count keeps it exact.
    total: u128,
}

impl Sums {
    /// `pre`: the counts an additive counter already made, reused for every history message
    /// sent unchanged (`unchanged[k]`: the input index of `hist[k]`, if it was not cut).
    fn new(
        ctx: &Ctx<'_>,
        pre: Option<&Precounted>,
        unchanged: &[Option<usize>],
    ) -> Result<Sums, ContextError> {
        let empty = ctx.count_list(&[], &[])?;
        let own = |m: &Message| -> Result<u64, ContextError> {
            Ok(ctx
                .count_list(std::slice::from_ref(m), &[])?
                .saturating_sub(empty))
        };
        let fixed = match pre {
            Some(p) => p.required(),
            None => ctx
                .count_list(&[], ctx.tools)?
                .saturating_add(own(ctx.system)?)
                .saturating_add(own(ctx.latest)?),
        };
        let mut per_message = Vec::with_capacity(ctx.hist.len());
        for (k, m) in ctx.hist.iter().enumerate() {
            per_message.push(match (pre, unchanged[k]) {
                (Some(p), Some(i)) => p.history[i],
                _ => own(m)?,
            });
        }
        let mut from_message = vec![0u64; ctx.hist.len() + 1];
        for k in (0..ctx.hist.len()).rev() {
            from_message[k] = from_message[k + 1].saturating_add(per_message[k]);
        }
        let suffix = ctx.unit_starts.iter().map(|&k| from_message[k]).collect();
        Ok(Sums {
            empty,
            fixed,
            suffix,
            docs: RefCell::default(),
        })
    }
}

/// What an additive counter counts once per trim: every input message's own count.
struct Precounted {
    /// The count of no messages with the tools.
    with_tools: u64,
    /// The system prompt's own count.
    system: u64,
    /// The latest message's own count.
    latest: u64,
    /// Each document's own count, whole.
    docs: Vec<u64>,
    /// Each history message's own count, as given.
    history: Vec<u64>,
}

impl Precounted {
    fn new(
        counter: &dyn TokenCounter,
        system: &Message,
        input: &TrimInput<'_>,
    ) -> Result<Precounted, ContextError> {
        let empty = counter.count_messages(&[], &[])?;
        let own = |m: &Message| -> Result<u64, ContextError> {
            Ok(counter
                .count_messages(std::slice::from_ref(m), &[])?
                .saturating_sub(empty))
        };
        let mut docs = Vec::with_capacity(input.documents.len());
        for d in input.documents {
            docs.push(own(&Message::new(Role::System, d.as_str()))?);
        }
        let mut history = Vec::with_capacity(input.history.len());
        for m in input.history {
            history.push(own(m)?);
        }
        Ok(Precounted {
            with_tools: counter.count_messages(&[], input.tools)?,
            system: own(system)?,
            latest: own(input.latest)?,
            docs,
            history,
        })
    }

    /// The count of `[system, latest]` with the tools.
    fn required(&self) -> u64 {
        self.with_tools
            .saturating_add(self.system)
            .saturating_add(self.latest)
    }

    /// The count of the whole input.
    fn before(&self) -> u64 {
        self.docs
            .iter()
            .chain(&self.history)
            .fold(self.required(), |t, &n| t.saturating_add(n))
    }
}

/// The most documents and history messages, together, that [`trim`] accepts.
pub const MAX_TRIM_ITEMS: usize = 131_072;

/// Rejects an input over the documented caps before any work: more than
/// [`MAX_TOKENIZE_BYTES`] of text (every text the request would carry: the system prompt,
/// documents, history and latest messages with their names and tool calls, the tool schemas),
/// or more than [`MAX_TRIM_ITEMS`] documents and history messages.
fn check_input_size(input: &TrimInput<'_>) -> Result<(), ContextError> {
    let items = input.documents.len().saturating_add(input.history.len());
    if items > MAX_TRIM_ITEMS {
        return Err(ContextError::Tokens {
            message: format!(
                "{items} documents and history messages are more than the {MAX_TRIM_ITEMS} that are trimmed"
            ),
        });
    }
    let bytes = input
        .documents
        .iter()
        .fold(input.system.len(), |t, d| t.saturating_add(d.len()))
        .saturating_add(crate::tokens::request_bytes(input.history, input.tools))
        .saturating_add(crate::tokens::request_bytes(
            std::slice::from_ref(input.latest),
            &[],
        ));
    if bytes > MAX_TOKENIZE_BYTES {
        return Err(TokenError::TooLarge(bytes).into());
    }
    Ok(())
}

/// Rule 3, first part: cuts documents, lowest-ranked first, never below `floor` characters,
/// until everything fits with the history from unit `start`. Returns the count when it fits;
/// otherwise leaves every document at its floor and returns `None`.
fn shrink_documents(
    ctx: &Ctx<'_>,
    docs: &mut [Doc<'_>],
    start: usize,
    floor: u32,
) -> Result<Option<u64>, ContextError> {
    for i in (0..docs.len()).rev() {
        let doc = docs[i];
        let current = doc.end();
        if doc.cut == Cut::Dropped {
            continue;
        }
        // Grapheme boundaries from the floor to (not including) the current end.
        let floor_end = cap_end(doc.text, floor)
            .unwrap_or(doc.text.len())
            .min(current);
        let bounds: Vec<usize> = grapheme_bounds(&doc.text[..current])
            .into_iter()
            .filter(|&b| b >= floor_end && b < current)
            .collect();
        // Largest bound that fits (binary search; fits is monotone for sane counters).
        let as_cut = |end: usize| {
            let end = trim_ws_end(doc.text, end);
            if end == 0 {
                Cut::Dropped
            } else {
                Cut::Prefix(end)
            }
        };
        let mut lo = 0usize; // bounds[..lo] are known to fit
        let mut hi = bounds.len(); // bounds[hi..] are known not to fit
        let mut best: Option<(usize, u64)> = None;
        // The floor first: when even it does not fit, no longer prefix does (for counters that
        // never count a prefix as more than the whole), so the search is skipped — one count
        // instead of a dozen for each document that cannot stay.
        if let Some(&first) = bounds.first() {
            ctx.set_cut(docs, i, as_cut(first))?;
            let t = ctx.count(docs, start)?;
            if t <= ctx.limit {
                best = Some((first, t));
                lo = 1;
            } else {
                hi = 0;
            }
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            ctx.set_cut(docs, i, as_cut(bounds[mid]))?;
            let t = ctx.count(docs, start)?;
            if t <= ctx.limit {
                best = Some((bounds[mid], t));
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if let Some((end, t)) = best {
            // Prefer a line, sentence or word end, if it still fits.
            let nice = choose_cut(doc.text, end);
            if nice > 0 && nice >= floor_end {
                ctx.set_cut(docs, i, Cut::Prefix(nice))?;
                let tn = ctx.count(docs, start)?;
                if tn <= ctx.limit {
                    return Ok(Some(tn));
                }
            }
            ctx.set_cut(docs, i, as_cut(end))?;
            return Ok(Some(t));
        }
        // Even the floor does not fit: leave this one at its floor (an empty floor drops it),
        // cut the next.
        let mut at_floor = if floor_end >= current {
            doc.cut
        } else {
            Cut::Prefix(choose_cut(doc.text, floor_end))
        };
        if at_floor != Cut::Dropped
            && (Doc {
                cut: at_floor,
                ..doc
            })
            .end()
                == 0
        {
            at_floor = Cut::Dropped;
        }
        ctx.set_cut(docs, i, at_floor)?;
    }
    Ok(None)
}

/// The oldest start (from `starts`, oldest first; the last is "no history") whose history fits
/// next to `docs`, with its count. The last start when none fits (its count then over budget).
fn fit_history(
    ctx: &Ctx<'_>,
    docs: &[Doc<'_>],
    starts: &[usize],
) -> Result<(usize, u64), ContextError> {
    let mut lo = 0usize;
    let mut hi = starts.len() - 1; // the answer is in starts[lo..=hi]
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ctx.count(docs, starts[mid])? <= ctx.limit {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let t = ctx.count(docs, starts[lo])?;
    Ok((starts[lo], t))
}

// ----------------------------------------------------------------------- text cutting ---------

/// The byte end of the longest grapheme-aligned prefix of at most `cap` characters, or `None`
/// when the whole text is within `cap`.
fn cap_end(text: &str, cap: u32) -> Option<usize> {
    let cap = cap as usize;
    if text.chars().count() <= cap {
        return None;
    }
    let mut chars = 0usize;
    let mut end = 0usize;
    for (i, g) in text.grapheme_indices(true) {
        chars += g.chars().count();
        if chars > cap {
            return Some(end);
        }
        end = i + g.len();
    }
    Some(end)
}

/// Byte offsets of every grapheme boundary of `text`, from 0 to its length.
fn grapheme_bounds(text: &str) -> Vec<usize> {
    let mut out = vec![0];
    out.extend(text.grapheme_indices(true).map(|(i, g)| i + g.len()));
    out
}

fn is_space(g: &str) -> bool {
    g.chars().all(char::is_whitespace)
}

fn is_newline(g: &str) -> bool {
    g.contains(['\n', '\r', '\u{2028}', '\u{2029}'])
}

fn is_sentence_end(g: &str) -> bool {
    matches!(g, "." | "!" | "?" | "…" | "。" | "！" | "？")
}

/// Removes trailing whitespace graphemes from `text[..end]`; returns the new end.
fn trim_ws_end(text: &str, end: usize) -> usize {
    let mut end = end;
    while let Some(g) = text[..end].graphemes(true).next_back() {
        if !is_space(g) {
            break;
        }
        end -= g.len();
    }
    end
}

/// Where to cut `text` so the prefix ends at or before `max_end` (a grapheme boundary): the
/// last line end, else sentence end, else word end, each only if it keeps at least half of
/// `max_end`; else `max_end`. Trailing whitespace is then removed. `text.len()` when `max_end`
/// covers the whole text.
fn choose_cut(text: &str, max_end: usize) -> usize {
    if max_end >= text.len() {
        return text.len();
    }
    let head = &text[..max_end];
    let (mut line, mut sentence, mut word) = (None, None, None);
    let mut prev: Option<&str> = None;
    let next_after = text[max_end..].graphemes(true).next();
    let graphemes = head
        .grapheme_indices(true)
        .map(|(i, g)| (i, Some(g)))
        .chain(std::iter::once((max_end, next_after)));
    for (i, next) in graphemes {
        if let Some(p) = prev {
            let next_space = next.is_some_and(is_space);
            if is_newline(p) {
                line = Some(i);
            }
            if is_sentence_end(p) && next_space {
                sentence = Some(i);
            }
            if next_space && !is_space(p) {
                word = Some(i);
            }
        }
        prev = next;
    }
    let good = |c: Option<usize>| c.filter(|&c| c > 0 && c * 2 >= max_end);
    let cut = good(line)
        .or(good(sentence))
        .or(good(word))
        .unwrap_or(max_end);
    trim_ws_end(text, cut)
}

/// `text[..end]` and the marker.
fn cut_text(text: &str, end: usize) -> String {
    let mut s = String::with_capacity(end + TRUNCATION_MARKER.len());
    s.push_str(&text[..end]);
    s.push_str(TRUNCATION_MARKER);
    s
}

fn truncated_fate(text: &str, end: usize) -> Fate {
    Fate::Truncated {
        chars_before: text.chars().count() as u64,
        chars_after: text[..end].chars().count() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ToolCall;
    use crate::retry::{BudgetConfig, Decision, RetryBudget, RetryConfig};
    use crate::tokens::UpperBound;
    use proptest::prelude::*;

    /// A counter anyone can do by hand: one token per UTF-8 byte of every text, 4 per message,
    /// the name's bytes + 1, per tool call its name + arguments + 3, 3 for the reply, per tool
    /// schema its three texts + 10.
    struct Bytes;

    impl TokenCounter for Bytes {
        fn count_text(&self, text: &str) -> Result<u64, TokenError> {
            Ok(text.len() as u64)
        }

        fn count_messages(
            &self,
            messages: &[Message],
            tools: &[ToolSchema],
        ) -> Result<u64, TokenError> {
            let mut n = 3u64;
            for m in messages {
                n += 4 + m.content.len() as u64;
                n += m.name.as_ref().map_or(0, |s| s.len() as u64 + 1);
                for c in &m.tool_calls {
                    n += (c.name.len() + c.arguments.len()) as u64 + 3;
                }
            }
            for t in tools {
                n += (t.name.len() + t.description.len() + t.parameters.len()) as u64 + 10;
            }
            Ok(n)
        }
    }

    fn msg(role: Role, text: &str) -> Message {
        Message::new(role, text)
    }

    fn user(text: &str) -> Message {
        msg(Role::User, text)
    }

    fn bot(text: &str) -> Message {
        msg(Role::Assistant, text)
    }

    fn call(ids: &[(&str, &str, &str)]) -> Message {
        Message {
            tool_calls: ids
                .iter()
                .map(|(id, name, args)| ToolCall {
                    id: id.to_string(),
                    name: name.to_string(),
                    arguments: args.to_string(),
                })
                .collect(),
            ..bot("")
        }
    }

    fn result(id: &str, text: &str) -> Message {
        Message {
            tool_call_id: Some(id.to_string()),
            ..msg(Role::Tool, text)
        }
    }

    fn budget(limit: u64) -> ContextBudget {
        budget_with(limit, |_| {})
    }

    fn budget_with(limit: u64, f: impl FnOnce(&mut ContextConfig)) -> ContextBudget {
        let mut c = ContextConfig {
            context_window: limit + 10,
            reserved_output_tokens: 6,
            safety_margin_tokens: 4,
            min_document_chars: 0,
            ..ContextConfig::default()
        };
        f(&mut c);
        ContextBudget::new(c).unwrap()
    }

    const SYSTEM: &str = "Kamu adalah CS Toko Batik Sekar. Jawab singkat dan sopan.";

    /// An Indonesian WhatsApp support chat with emoji (skin tones, ZWJ, flags).
    fn indonesian_chat() -> Vec<Message> {
        vec![
            user("Halo kak, mau tanya dong 🙏🏽"),
            bot("Halo kak! 👋 Ada yang bisa kami bantu? 😊"),
            user("Pesanan saya INV/2024/0915 kok belum sampai ya? Udah 5 hari 😭"),
            bot("Mohon maaf kak 🙏 Kami cek dulu ya. Paket kakak masih di gudang Surabaya 📦"),
            user("Oke kak, ditunggu. Keluarga 👨‍👩‍👧‍👦 udah nungguin batiknya buat 17an 🇮🇩"),
            bot("Siap kak! Paket dikirim besok pagi 🚚💨"),
        ]
    }

    fn run(
        b: &ContextBudget,
        system: &str,
        docs: &[String],
        history: &[Message],
        latest: &Message,
    ) -> Result<Trimmed, ContextError> {
        let input = TrimInput {
            system,
            documents: docs,
            history,
            latest,
            tools: &[],
        };
        trim(b, &input, &Bytes)
    }

    fn full_count(system: &str, docs: &[String], history: &[Message], latest: &Message) -> u64 {
        let mut all = vec![msg(Role::System, system)];
        all.extend(docs.iter().map(|d| msg(Role::System, d)));
        all.extend(history.iter().cloned());
        all.push(latest.clone());
        Bytes.count_messages(&all, &[]).unwrap()
    }

    #[test]
    fn config_errors_list_every_problem() {
        let err = ContextBudget::new(ContextConfig {
            context_window: 0,
            reserved_output_tokens: 0,
            safety_margin_tokens: 0,
            max_history_messages: Some(0),
            max_document_chars: Some(0),
            max_message_chars: Some(0),
            min_document_chars: 1,
        })
        .unwrap_err();
        assert_eq!(
            err.problems,
            vec![
                "context_window must be > 0 (got 0)",
                "reserved_output_tokens must be < context_window (got 0 >= 0)",
                "reserved_output_tokens + safety_margin_tokens must be < context_window (got 0 + 0 >= 0)",
                "max_document_chars must be > 0 or null (got 0)",
                "max_message_chars must be > 0 or null (got 0)",
                "min_document_chars must be <= max_document_chars (got 1 > 0)",
            ]
        );
        let err = ContextBudget::new(ContextConfig {
            context_window: 8_192,
            reserved_output_tokens: 8_192,
            ..ContextConfig::default()
        })
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        let err = ContextBudget::new(ContextConfig {
            context_window: 8_192,
            reserved_output_tokens: 4_096,
            safety_margin_tokens: 4_096,
            ..ContextConfig::default()
        })
        .unwrap_err();
        assert_eq!(
            err.problems,
            vec![
                "reserved_output_tokens + safety_margin_tokens must be < context_window (got 4096 + 4096 >= 8192)"
            ]
        );
        let ok = ContextBudget::new(ContextConfig::default()).unwrap();
        assert_eq!(ok.limit_tokens(), 128_000 - 1_024 - 256);
    }

    #[test]
    fn budget_serde_validates() {
        let b: ContextBudget =
            serde_json::from_str(r#"{"context_window": 8192, "max_message_chars": 200}"#).unwrap();
        assert_eq!(b.limit_tokens(), 8192 - 1024 - 256);
        assert_eq!(b.config().max_message_chars, Some(200));
        let back: ContextBudget =
            serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
        let bad = serde_json::from_str::<ContextBudget>(r#"{"context_window": 1000}"#);
        assert!(bad.unwrap_err().to_string().contains("context_window"));
        let unknown = serde_json::from_str::<ContextBudget>(r#"{"window": 1000}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn everything_fits_is_sent_unchanged_in_order() {
        let history = indonesian_chat();
        let docs = vec!["Pengiriman reguler 2-4 hari kerja.".to_string()];
        let latest = user("Makasih kak 🙏🏻");
        let full = full_count(SYSTEM, &docs, &history, &latest);
        let t = run(&budget(full), SYSTEM, &docs, &history, &latest).unwrap();
        let mut expected = vec![msg(Role::System, SYSTEM), msg(Role::System, &docs[0])];
        expected.extend(history.iter().cloned());
        expected.push(latest.clone());
        assert_eq!(t.messages, expected);
        assert_eq!(t.report.tokens_before, Some(full));
        assert_eq!(t.report.tokens_after, full);
        assert_eq!(t.report.tally(), (7, 0, 0));
    }

    #[test]
    fn system_and_latest_that_cannot_fit_are_a_typed_error() {
        let latest = user("Kak, ini daftar pesanan saya 📋");
        let required = Bytes
            .count_messages(&[msg(Role::System, SYSTEM), latest.clone()], &[])
            .unwrap();
        // Exactly at the limit: fits (history dropped).
        let t = run(&budget(required), SYSTEM, &[], &indonesian_chat(), &latest).unwrap();
        assert_eq!(t.messages, vec![msg(Role::System, SYSTEM), latest.clone()]);
        assert_eq!(t.report.tokens_after, required);
        // One below: an error with both numbers, never an over-budget result.
        let err = run(&budget(required - 1), SYSTEM, &[], &[], &latest).unwrap_err();
        assert_eq!(
            err,
            ContextError::DoesNotFit {
                required_tokens: required,
                limit_tokens: required - 1,
            }
        );
        // An oversized system prompt.
        let long_system = "Ikuti SOP berikut. ".repeat(400);
        let err = run(&budget(2_000), &long_system, &[], &[], &latest).unwrap_err();
        assert!(
            matches!(err, ContextError::DoesNotFit { required_tokens, limit_tokens: 2_000 } if required_tokens > 7_600)
        );
        // An oversized latest message is not cut either.
        let pasted = user(&"Barang rusak 😡 minta refund!! ".repeat(300));
        let err = run(&budget(2_000), SYSTEM, &[], &[], &pasted).unwrap_err();
        assert!(matches!(err, ContextError::DoesNotFit { .. }));
    }

    #[test]
    fn latest_must_be_a_user_message() {
        let err = run(&budget(1_000), SYSTEM, &[], &[], &bot("Halo")).unwrap_err();
        assert_eq!(
            err,
            ContextError::LatestNotUser {
                role: Role::Assistant
            }
        );
    }

    #[test]
    fn history_is_dropped_oldest_first_and_starts_with_a_user_turn() {
        let history = indonesian_chat();
        let latest = user("Kak, resinya sudah ada?");
        // Room for the last user/assistant pair (messages 4 and 5) but not message 3.
        let keep_from_4 = full_count(SYSTEM, &[], &history[4..], &latest);
        for limit in [
            keep_from_4,
            full_count(SYSTEM, &[], &history[3..], &latest) - 1,
        ] {
            let t = run(&budget(limit), SYSTEM, &[], &history, &latest).unwrap();
            let mut expected = vec![msg(Role::System, SYSTEM)];
            expected.extend(history[4..].iter().cloned());
            expected.push(latest.clone());
            assert_eq!(t.messages, expected, "limit {limit}");
            let dropped = Fate::Dropped {
                reason: DropReason::Budget,
            };
            assert_eq!(
                t.report.history,
                vec![dropped, dropped, dropped, dropped, Fate::Kept, Fate::Kept]
            );
            assert!(t.report.tokens_after <= limit);
        }
    }

    #[test]
    fn leading_assistant_messages_are_dropped() {
        let history = vec![
            bot("Selamat datang di Toko Batik Sekar! 🌸"),
            user("Kak, ada batik tulis ukuran XL?"),
            bot("Ada kak 😊"),
        ];
        let latest = user("Harganya berapa?");
        let t = run(&budget(10_000), SYSTEM, &[], &history, &latest).unwrap();
        assert_eq!(t.messages[1], history[1]);
        assert_eq!(
            t.report.history[0],
            Fate::Dropped {
                reason: DropReason::BeforeFirstUserTurn
            }
        );
    }

    fn tool_history() -> Vec<Message> {
        vec![
            user("Where is my order #4521? 📦"),
            call(&[
                ("call_Vx1", "get_order_status", r#"{"order_id":"4521"}"#),
                ("call_Vx2", "get_tracking", r#"{"order_id":"4521"}"#),
            ]),
            result("call_Vx1", r#"{"status":"shipped","carrier":"JNE"}"#),
            result(
                "call_Vx2",
                r#"{"tracking":"JNE1234567890","eta":"2024-08-16"}"#,
            ),
            bot("Your order shipped with JNE 🚚, tracking JNE1234567890, arriving Aug 16."),
            user("Thanks! 👍🏾"),
            bot("You're welcome! 😊"),
        ]
    }

    #[test]
    fn tool_calls_and_their_results_go_together() {
        let history = tool_history();
        let latest = user("Can I change the address?");
        // Everything fits: the unit is sent intact.
        let t = run(&budget(10_000), SYSTEM, &[], &history, &latest).unwrap();
        assert_eq!(&t.messages[1..8], &history[..]);
        // Room for the last messages and the tool results, but not for the user turn before
        // the call: the whole exchange goes, no orphaned results.
        let limit = full_count(SYSTEM, &[], &history[1..], &latest);
        let t = run(&budget(limit), SYSTEM, &[], &history, &latest).unwrap();
        let mut expected = vec![msg(Role::System, SYSTEM)];
        expected.extend(history[5..].iter().cloned());
        expected.push(latest.clone());
        assert_eq!(t.messages, expected);
        assert!(t.messages.iter().all(|m| m.role != Role::Tool));
    }

    #[test]
    fn broken_tool_exchanges_are_repaired() {
        let history = vec![
            result("call_gone", "{\"stock\":3}"), // its call was trimmed earlier
            user("Stok batik parang masih ada?"),
            call(&[
                ("call_a", "check_stock", r#"{"sku":"PRG-01"}"#),
                ("call_b", "check_price", r#"{"sku":"PRG-01"}"#),
            ]),
            result("call_a", r#"{"stock":12}"#), // call_b never answered
            user("Halo?"),
            call(&[("call_c", "check_stock", r#"{"sku":"KWG-02"}"#)]),
            result("call_c", r#"{"stock":0}"#),
            result("call_x", r#"{"stray":true}"#),
            bot("Maaf kak, kawung habis 🙏"),
        ];
        let latest = user("Yah 😢");
        let t = run(&budget(10_000), SYSTEM, &[], &history, &latest).unwrap();
        let orphan = Fate::Dropped {
            reason: DropReason::OrphanToolResult,
        };
        let unanswered = Fate::Dropped {
            reason: DropReason::UnansweredToolCall,
        };
        assert_eq!(
            t.report.history,
            vec![
                orphan,
                Fate::Kept,
                unanswered,
                unanswered,
                Fate::Kept,
                Fate::Kept,
                Fate::Kept,
                orphan,
                Fate::Kept
            ]
        );
        let sent: Vec<&Message> = t.messages[1..t.messages.len() - 1].iter().collect();
        assert_eq!(
            sent,
            vec![
                &history[1],
                &history[4],
                &history[5],
                &history[6],
                &history[8]
            ]
        );
    }

    #[test]
    fn max_history_messages_counts_whole_units() {
        let history = tool_history();
        let latest = user("Ok");
        let b = budget_with(10_000, |c| c.max_history_messages = Some(3));
        let t = run(&b, SYSTEM, &[], &history, &latest).unwrap();
        assert_eq!(&t.messages[1..3], &history[5..]);
        let b = budget_with(10_000, |c| c.max_history_messages = Some(6));
        let t = run(&b, SYSTEM, &[], &history, &latest).unwrap();
        // 7 messages do not fit in 6; the next user start leaves 2.
        assert_eq!(t.messages.len(), 4);
        assert_eq!(
            t.report.history[0],
            Fate::Dropped {
                reason: DropReason::MaxMessages
            }
        );
        let b = budget_with(10_000, |c| c.max_history_messages = Some(0));
        let t = run(&b, SYSTEM, &[], &history, &latest).unwrap();
        assert_eq!(t.messages.len(), 2);
    }

    #[test]
    fn character_caps_cut_at_word_boundaries_with_a_marker() {
        let history = vec![user(
            "Kak saya mau komplain, barangnya rusak pas sampai 😡 tolong dibantu",
        )];
        let latest = user("Gimana kak?");
        let b = budget_with(10_000, |c| c.max_message_chars = Some(30));
        let t = run(&b, SYSTEM, &[], &history, &latest).unwrap();
        // 30 chars end inside "rusak"; the last word end before is after "barangnya".
        assert_eq!(t.messages[1].content, "Kak saya mau komplain,…[truncated]");
        assert_eq!(
            t.report.history[0],
            Fate::Truncated {
                chars_before: 66,
                chars_after: 22
            }
        );
        // Documents: a line end is preferred over a sentence end.
        let doc =
            "Retur maksimal 7 hari.\nSyarat: label utuh. Ongkir ditanggung pembeli.".to_string();
        let b = budget_with(10_000, |c| {
            c.max_document_chars = Some(45);
            c.min_document_chars = 10;
        });
        let t = run(&b, SYSTEM, std::slice::from_ref(&doc), &[], &latest).unwrap();
        // 45 chars end inside "Ongkir"; the line end (23) keeps over half of that, so it
        // wins over the later sentence end (42).
        assert_eq!(t.messages[1].content, "Retur maksimal 7 hari.…[truncated]");
    }

    #[test]
    fn preferred_boundaries_in_order() {
        let t = "Line one here\nSentence two. Word three four";
        // Cut at 40 bytes (inside "four"): line end (14) is under half of 40, the sentence end
        // (27) is over half.
        assert_eq!(choose_cut(t, 40), 27);
        assert_eq!(choose_cut(t, 26), 13); // line end, newline trimmed
        assert_eq!(choose_cut("abcdefgh ijklmnop", 12), 8); // word end
        assert_eq!(choose_cut("abcdefghijklmnop", 12), 12); // no boundary: grapheme cut
        assert_eq!(choose_cut("ab cdefghijklmnop", 12), 12); // a word end too early
        assert_eq!(choose_cut("short", 99), 5);
    }

    #[test]
    fn graphemes_are_never_split() {
        let family = "👨‍👩‍👧‍👦"; // 7 chars, 25 bytes
        let text = format!("{family}{family}🇮🇩👍🏽e\u{301}");
        // A cap of 10 chars ends inside the second family: only the first is kept.
        assert_eq!(cap_end(&text, 10), Some(family.len()));
        assert_eq!(cap_end(&text, 6), Some(0));
        assert_eq!(cap_end(&text, 14), Some(2 * family.len()));
        assert_eq!(cap_end(&text, 15), Some(2 * family.len()));
        assert_eq!(cap_end(&text, 16), Some(2 * family.len() + "🇮🇩".len()));
        // The flag, then the thumbs-up with its skin tone, then e + combining acute.
        assert_eq!(cap_end(&text, 18), Some(2 * family.len() + "🇮🇩👍🏽".len()));
        assert_eq!(cap_end(&text, 19), Some(2 * family.len() + "🇮🇩👍🏽".len()));
        assert_eq!(cap_end(&text, 20), None);
        let history = vec![user(&text)];
        let b = budget_with(10_000, |c| c.max_message_chars = Some(6));
        let t = run(&b, SYSTEM, &[], &history, &user("?")).unwrap();
        assert_eq!(t.messages[1].content, TRUNCATION_MARKER);
    }

    #[test]
    fn documents_shrink_before_history_is_dropped() {
        let history = indonesian_chat();
        let latest = user("Bisa tukar ukuran kak?");
        let docs = vec![
            "Tukar ukuran gratis dalam 7 hari setelah barang diterima. Barang harus belum dicuci dan label masih terpasang. Kirim ke gudang Surabaya dengan menyertakan nomor pesanan.".to_string(),
            "Pengiriman ke seluruh Indonesia 🇮🇩 via JNE, J&T dan SiCepat. Estimasi 2-4 hari kerja untuk Jawa, 4-7 hari untuk luar Jawa. Gratis ongkir untuk pembelian di atas Rp300.000.".to_string(),
        ];
        let full = full_count(SYSTEM, &docs, &history, &latest);
        let b = |limit| budget_with(limit, |c| c.min_document_chars = 40);
        // 60 tokens short: the second (lower-ranked) document is cut; everything else stays.
        let t = run(&b(full - 60), SYSTEM, &docs, &history, &latest).unwrap();
        assert!(matches!(t.report.documents[1], Fate::Truncated { .. }));
        assert_eq!(t.report.documents[0], Fate::Kept);
        assert!(t.report.history.iter().all(|f| *f == Fate::Kept));
        assert!(t.messages[2].content.ends_with(TRUNCATION_MARKER));
        assert!(t.report.tokens_after <= full - 60);
        // Short by more than both documents above their floors: both at their floor (≤ 40
        // chars), and only then history goes.
        let floors = docs[0].len() + docs[1].len() - 80 - 2 * TRUNCATION_MARKER.len();
        let t = run(
            &b(full - floors as u64 - 20),
            SYSTEM,
            &docs,
            &history,
            &latest,
        )
        .unwrap();
        for f in &t.report.documents {
            assert!(
                matches!(f, Fate::Truncated { chars_after, .. } if *chars_after <= 40),
                "{f:?}"
            );
        }
        assert!(t.report.history.iter().any(|f| !f.is_sent()));
        assert_eq!(t.messages[3].role, Role::User);
        // With no room for any history next to the floors (57 chars of the first document:
        // 75 tokens; 60 chars of the second, 66 bytes: 84 tokens), documents are dropped,
        // lowest first, and the history refitted into the room each drop frees.
        let mut history = history;
        history.push(user("Ok 👍🏽")); // 15 tokens
        let base = full_count(SYSTEM, &[], &[], &latest);
        let b = |room| budget_with(base + room, |c| c.min_document_chars = 100);
        let budget_dropped = Fate::Dropped {
            reason: DropReason::Budget,
        };
        let t = run(&b(150), SYSTEM, &docs, &history, &latest).unwrap();
        assert_eq!(
            t.report.documents,
            vec![
                Fate::Truncated {
                    chars_before: 169,
                    chars_after: 57
                },
                budget_dropped
            ]
        );
        assert_eq!(
            t.messages[1].content,
            "Tukar ukuran gratis dalam 7 hari setelah barang diterima.…[truncated]"
        );
        assert_eq!(&t.messages[2..], &[history[6].clone(), latest.clone()]);
        assert_eq!(t.report.tokens_after, base + 75 + 15);
        let t = run(&b(70), SYSTEM, &docs, &history, &latest).unwrap();
        assert_eq!(t.report.documents, vec![budget_dropped; 2]);
        assert_eq!(&t.messages[1..], &[history[6].clone(), latest.clone()]);
        assert_eq!(t.report.tokens_after, base + 15);
    }

    /// A counter that is not a sum of its messages: a surcharge for long conversations.
    struct Surcharge;

    impl TokenCounter for Surcharge {
        fn count_text(&self, text: &str) -> Result<u64, TokenError> {
            Bytes.count_text(text)
        }

        fn count_messages(
            &self,
            messages: &[Message],
            tools: &[ToolSchema],
        ) -> Result<u64, TokenError> {
            let n = Bytes.count_messages(messages, tools)?;
            Ok(if messages.len() > 4 { n + 100 } else { n })
        }
    }

    /// [`Bytes`], saying that it is additive (it is), and counting the bytes it is given.
    #[derive(Default)]
    struct Additive {
        counted: std::cell::Cell<u64>,
    }

    impl TokenCounter for Additive {
        fn count_text(&self, text: &str) -> Result<u64, TokenError> {
            Bytes.count_text(text)
        }

        fn count_messages(
            &self,
            messages: &[Message],
            tools: &[ToolSchema],
        ) -> Result<u64, TokenError> {
            let bytes = crate::tokens::request_bytes(messages, tools) as u64;
            self.counted.set(self.counted.get() + bytes);
            Bytes.count_messages(messages, tools)
        }

        fn is_additive(&self) -> bool {
            true
        }
    }

    /// A counter that must not be called.
    struct Never;

    impl TokenCounter for Never {
        fn count_text(&self, _: &str) -> Result<u64, TokenError> {
            panic!("counted")
        }

        fn count_messages(&self, _: &[Message], _: &[ToolSchema]) -> Result<u64, TokenError> {
            panic!("counted")
        }
    }

    #[test]
    fn inputs_over_the_caps_are_refused_before_any_count() {
        let latest = user("halo");
        let big = "x".repeat(MAX_TOKENIZE_BYTES);
        let input = TrimInput {
            system: "s",
            documents: &[],
            history: &[],
            latest: &user(&big),
            tools: &[],
        };
        let e = trim(&budget(1000), &input, &Never).unwrap_err();
        assert!(
            matches!(&e, ContextError::Tokens { message } if message.contains(&MAX_TOKENIZE_BYTES.to_string())),
            "{e}"
        );
        // Exactly at the cap is accepted (the system prompt is one byte, so the latest is one
        // byte shorter).
        let at_cap = user(&big[1..]);
        let input = TrimInput {
            latest: &at_cap,
            ..input
        };
        assert!(trim(&budget(u64::MAX / 2), &input, &UpperBound::default()).is_ok());
        let history = vec![user(""); MAX_TRIM_ITEMS + 1];
        let input = TrimInput {
            system: "s",
            documents: &[],
            history: &history,
            latest: &latest,
            tools: &[],
        };
        let e = trim(&budget(1000), &input, &Never).unwrap_err();
        assert!(
            matches!(&e, ContextError::Tokens { message } if message.contains(&MAX_TRIM_ITEMS.to_string())),
            "{e}"
        );
    }

    /// Trims `input` with the additive byte counter; the bytes it counted, over the input's.
    fn work(input: &TrimInput<'_>, b: &ContextBudget) -> (Trimmed, f64) {
        let counter = Additive::default();
        let t = trim(b, input, &counter).unwrap();
        let all = input
            .documents
            .iter()
            .fold(input.system.len(), |n, d| n + d.len())
            + crate::tokens::request_bytes(input.history, input.tools)
            + input.latest.content.len();
        (t, counter.counted.get() as f64 / all as f64)
    }

    #[test]
    fn large_valid_inputs_are_trimmed_counting_each_text_about_twice_at_most() {
        let b = budget(128_000);
        // A 1 MiB latest message.
        let latest = user(&"Halo kak, paket saya belum sampai 🙏 ".repeat(1 << 15));
        let (t, ratio) = work(
            &TrimInput {
                system: SYSTEM,
                documents: &[],
                history: &indonesian_chat(),
                latest: &latest,
                tools: &[],
            },
            &budget(u64::MAX / 4),
        );
        assert_eq!(t.messages.last(), Some(&latest));
        assert!(ratio <= 2.5, "{ratio}");
        // 10 000 documents of 400 bytes: most are dropped, a few hundred kept.
        let docs: Vec<String> = (0..10_000)
            .map(|i| format!("Artikel {i:05}: {}", "cara retur barang. ".repeat(20)))
            .collect();
        let latest = user("Kak?");
        let (t, ratio) = work(
            &TrimInput {
                system: SYSTEM,
                documents: &docs,
                history: &indonesian_chat(),
                latest: &latest,
                tools: &[],
            },
            &b,
        );
        let (kept, cut, dropped) = t.report.tally();
        assert!(kept > 100 && dropped > 9_000, "{kept} {cut} {dropped}");
        assert!(t.report.tokens_after <= b.limit_tokens());
        assert!(ratio <= 2.5, "{ratio}");
        // 100 000 history messages.
        let history: Vec<Message> = (0..100_000)
            .map(|i| {
                if i % 2 == 0 {
                    user("ok kak 🙏")
                } else {
                    bot("Baik kak, kami cek ya.")
                }
            })
            .collect();
        let (t, ratio) = work(
            &TrimInput {
                system: SYSTEM,
                documents: &[],
                history: &history,
                latest: &latest,
                tools: &[],
            },
            &b,
        );
        assert!(t.report.tokens_after <= b.limit_tokens());
        assert!(t.report.history.iter().filter(|f| f.is_sent()).count() > 1_000);
        assert!(ratio <= 2.5, "{ratio}");
    }

    #[test]
    fn a_counter_that_is_not_a_sum_still_gets_a_result_within_budget() {
        let history = indonesian_chat();
        let latest = user("Kak?");
        // By sums everything would fit; counted whole, the surcharge makes it 100 over, and
        // the trimmer falls back to whole counts: the last user turn and its answer (4
        // messages in all) are sent.
        let limit = full_count(SYSTEM, &[], &history, &latest);
        let b = budget(limit);
        let input = TrimInput {
            system: SYSTEM,
            documents: &[],
            history: &history,
            latest: &latest,
            tools: &[],
        };
        let t = trim(&b, &input, &Surcharge).unwrap();
        assert_eq!(&t.messages[1..3], &history[4..]);
        assert_eq!(
            t.report.tokens_after,
            full_count(SYSTEM, &[], &history[4..], &latest)
        );
        check_invariants(&input, &b, &t, &Surcharge);
    }

    #[test]
    fn inputs_are_not_mutated() {
        let history = tool_history();
        let docs = vec!["FAQ: refund 3-5 hari kerja 💸".to_string()];
        let latest = user("Refund kapan masuk?");
        let (h0, d0, l0) = (history.clone(), docs.clone(), latest.clone());
        let b = budget_with(200, |c| c.max_message_chars = Some(10));
        let _ = run(&b, SYSTEM, &docs, &history, &latest).unwrap();
        assert_eq!((h0, d0, l0), (history, docs, latest));
    }

    #[test]
    fn trims_with_the_upper_bound_counter() {
        let history: Vec<Message> = indonesian_chat()
            .into_iter()
            .chain(tool_history())
            .collect();
        let latest = user("Kak, total belanja saya jadi berapa ya? 🤔");
        let docs = vec!["Diskon 17 Agustus 🇮🇩: potongan 17% untuk semua batik tulis.".to_string()];
        let counter = UpperBound::default();
        let b = budget_with(260, |c| c.min_document_chars = 20);
        let input = TrimInput {
            system: SYSTEM,
            documents: &docs,
            history: &history,
            latest: &latest,
            tools: &[],
        };
        let t = trim(&b, &input, &counter).unwrap();
        assert!(t.report.tokens_after <= 260);
        assert_eq!(
            counter.count_messages(&t.messages, &[]).unwrap(),
            t.report.tokens_after
        );
        assert!(t.report.tokens_before.unwrap() > 260);
        assert_eq!(t.messages.last(), Some(&latest));
        check_invariants(&input, &b, &t, &counter);
    }

    /// A long conversation (200 history messages: Indonesian and English turns with emoji and
    /// tool exchanges) with 5 documents, trimmed with the exact o200k_base counter.
    #[cfg(feature = "tiktoken")]
    #[test]
    fn trims_a_long_conversation_with_the_exact_counter() {
        use crate::tokens::{Encoding, Tokenizer};
        let tokenizer = Tokenizer::new(Encoding::O200kBase).unwrap();
        let mut history = Vec::new();
        while history.len() < 200 {
            history.extend(indonesian_chat());
            history.extend(tool_history());
        }
        history.truncate(200);
        let docs: Vec<String> = (1..=5)
            .map(|i| {
                format!(
                    "Artikel {i}: Tukar ukuran gratis dalam 7 hari 🙏🏽. Barang harus belum dicuci.\n"
                )
                .repeat(20)
            })
            .collect();
        let latest = user("Kak, kalau tukar ukuran ongkirnya siapa yang tanggung? 🤔");
        let input = TrimInput {
            system: SYSTEM,
            documents: &docs,
            history: &history,
            latest: &latest,
            tools: &[],
        };
        // The untrimmed request, counted by hand.
        let mut all = vec![msg(Role::System, SYSTEM)];
        all.extend(docs.iter().map(|d| msg(Role::System, d)));
        all.extend(history.iter().cloned());
        all.push(latest.clone());
        let before = tokenizer.count_messages(&all, &[]).unwrap();
        for limit in [before - 1, before / 2, before / 5, before / 20] {
            let b = budget_with(limit, |c| c.min_document_chars = 200);
            let t = trim(&b, &input, &tokenizer).unwrap();
            check_invariants(&input, &b, &t, &tokenizer);
            assert_eq!(t.report.tokens_before, Some(before));
            // The request is never far below the limit: what it could not keep is at most one
            // exchange (from one user turn to the next; under 150 tokens here) or a document's
            // prefix down to the next preferred boundary.
            assert!(
                t.report.tokens_after + 150 > limit,
                "{limit}: {}",
                t.report.tokens_after
            );
        }
    }

    fn overflow(limit: Option<u64>, requested: Option<u64>) -> Classification {
        Classification {
            kind: ErrorKind::ContextOverflow,
            retryable: false,
            retry_after_ms: None,
            limit_tokens: limit,
            requested_tokens: requested,
            provider: None,
            code: Some("context_length_exceeded".into()),
            error_type: None,
            message: "This model's maximum context length is 128000 tokens.".into(),
        }
    }

    fn decided_target(
        policy: &RetryPolicy,
        failure: &Classification,
        mine: Option<u64>,
    ) -> Option<u64> {
        let mut rb = RetryBudget::new(BudgetConfig::default()).unwrap();
        let mut call = policy.start_call(0, 7, &mut rb);
        match policy.decide(&mut call, failure, 0, mine, &mut rb) {
            Decision::ShrinkContext { target_tokens, .. } => Some(target_tokens),
            _ => None,
        }
    }

    #[test]
    fn next_budget_matches_the_retry_policy_target() {
        let policy = RetryPolicy::new(RetryConfig::default()).unwrap();
        let current = ContextBudget::new(ContextConfig {
            context_window: 128_000,
            reserved_output_tokens: 4_096,
            safety_margin_tokens: 512,
            ..ContextConfig::default()
        })
        .unwrap();
        // OpenAI: "maximum context length is 128000 tokens. However, your messages resulted in
        // 130412 tokens"; our count of the request was 121 000.
        let f = overflow(Some(128_000), Some(130_412));
        let next = next_budget(&f, &current, Some(121_000), &policy).unwrap();
        // 121000 · 128000 / 130412 = 118762 (floor), less 5 %: 112823.
        assert_eq!(next.limit_tokens(), 112_823);
        assert_eq!(
            Some(next.limit_tokens()),
            decided_target(&policy, &f, Some(121_000))
        );
        assert_eq!(next.config().reserved_output_tokens, 4_096);
        assert_eq!(next.config().context_window, 112_823 + 4_096 + 512);
        // The limit alone.
        let f = overflow(Some(100_000), None);
        let next = next_budget(&f, &current, Some(110_000), &policy).unwrap();
        assert_eq!(next.limit_tokens(), 95_000);
        assert_eq!(Some(95_000), decided_target(&policy, &f, Some(110_000)));
        // No numbers: 70 % of ours.
        let f = overflow(None, None);
        let next = next_budget(&f, &current, Some(100_000), &policy).unwrap();
        assert_eq!(next.limit_tokens(), 70_000);
        assert_eq!(Some(70_000), decided_target(&policy, &f, Some(100_000)));
        // Nothing to go on; not an overflow.
        assert_eq!(
            next_budget(&f, &current, None, &policy),
            Err(ContextError::CannotShrink)
        );
        let mut rate = overflow(None, None);
        rate.kind = ErrorKind::RateLimited;
        assert_eq!(
            next_budget(&rate, &current, Some(5), &policy),
            Err(ContextError::NotOverflow {
                kind: ErrorKind::RateLimited
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn next_budget_agrees_with_retry(
            limit in proptest::option::of(1u64..300_000),
            requested in proptest::option::of(1u64..400_000),
            mine in 1u64..120_000,
            margin in 0u32..=50,
            percent in 1u32..=99,
        ) {
            let policy = RetryPolicy::new(RetryConfig {
                shrink_margin_percent: margin,
                shrink_percent: percent,
                ..RetryConfig::default()
            }).unwrap();
            let current = budget(120_000);
            let f = overflow(limit, requested);
            let decided = decided_target(&policy, &f, Some(mine));
            match next_budget(&f, &current, Some(mine), &policy) {
                Ok(next) => prop_assert_eq!(Some(next.limit_tokens()), decided),
                Err(e) => {
                    prop_assert_eq!(e, ContextError::CannotShrink);
                    prop_assert!(decided.is_none_or(|t| t == 0));
                }
            }
        }
    }

    // ------------------------------------------------------------------ property test -----

    /// Pieces of real-looking chat text: Indonesian and English words, emoji with skin tones,
    /// ZWJ sequences, flags, combining marks, line and sentence ends.
    const PIECES: &[&str] = &[
        "Halo",
        "kak",
        "pesanan",
        "saya",
        "belum",
        "sampai",
        "udah",
        "ditunggu",
        "ya",
        "makasih",
        "banyak",
        "gimana",
        "ongkirnya",
        "berapa",
        "Where",
        "is",
        "my",
        "order",
        "thanks",
        "please",
        "refund",
        "the",
        "batik",
        "😭",
        "🙏🏽",
        "👍🏿",
        "👨‍👩‍👧‍👦",
        "🧑🏾‍💻",
        "🏳️‍🌈",
        "🇮🇩",
        "🇺🇸",
        "❤️",
        "e\u{301}",
        "ñ",
        "",
        " ",
        " ",
        " ",
        " ",
        ". ",
        "! ",
        "? ",
        "\n",
        "\r\n",
        ",",
        "…",
        "Rp300.000",
        "INV/2024/0915",
    ];

    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(PIECES), 0..max).prop_map(|p| p.concat())
    }

    #[derive(Debug, Clone)]
    enum Turn {
        Plain(Role, String, Option<String>),
        Exchange(Vec<String>, Vec<String>, bool),
        OrphanResult(String),
    }

    fn turn() -> impl Strategy<Value = Turn> {
        prop_oneof![
            4 => (
                prop_oneof![Just(Role::User), Just(Role::Assistant), Just(Role::System)],
                text(30),
                proptest::option::of(Just("Budi".to_string())),
            )
                .prop_map(|(r, t, n)| Turn::Plain(r, t, n)),
            2 => (
                proptest::collection::vec(text(8), 1..3),
                proptest::collection::vec(text(12), 3),
                any::<bool>(),
            )
                .prop_map(|(args, results, complete)| Turn::Exchange(args, results, complete)),
            1 => text(10).prop_map(Turn::OrphanResult),
        ]
    }

    fn history_of(turns: &[Turn]) -> Vec<Message> {
        let mut out = Vec::new();
        for (n, t) in turns.iter().enumerate() {
            match t {
                Turn::Plain(role, text, name) => out.push(Message {
                    name: name.clone(),
                    ..msg(*role, text)
                }),
                Turn::Exchange(args, results, complete) => {
                    let ids: Vec<String> =
                        (0..args.len()).map(|i| format!("call_{n}_{i}")).collect();
                    out.push(Message {
                        tool_calls: ids
                            .iter()
                            .zip(args)
                            .map(|(id, a)| ToolCall {
                                id: id.clone(),
                                name: "cek_pesanan".into(),
                                arguments: format!("{{\"q\":{a:?}}}"),
                            })
                            .collect(),
                        ..bot("")
                    });
                    let answered = if *complete { ids.len() } else { ids.len() - 1 };
                    for (id, r) in ids.iter().zip(results).take(answered) {
                        out.push(result(id, r));
                    }
                }
                Turn::OrphanResult(text) => out.push(result(&format!("call_lost_{n}"), text)),
            }
        }
        out
    }

    /// Checks a cut text: unchanged, or a grapheme-aligned prefix of its input plus the marker.
    fn check_cut(input: &str, output: &str) -> Result<Option<usize>, String> {
        if input == output {
            return Ok(None);
        }
        let Some(prefix) = output.strip_suffix(TRUNCATION_MARKER) else {
            return Err(format!("changed without a marker: {output:?}"));
        };
        if !input.starts_with(prefix) {
            return Err(format!("{prefix:?} is not a prefix of {input:?}"));
        }
        if !grapheme_bounds(input).contains(&prefix.len()) {
            return Err(format!("{prefix:?} splits a grapheme of {input:?}"));
        }
        Ok(Some(prefix.chars().count()))
    }

    fn check_invariants(
        input: &TrimInput<'_>,
        b: &ContextBudget,
        t: &Trimmed,
        counter: &dyn TokenCounter,
    ) {
        let r = &t.report;
        let m = &t.messages;
        // Within budget by the counter's own measure, and the report says so.
        assert_eq!(
            counter.count_messages(m, input.tools).unwrap(),
            r.tokens_after
        );
        assert!(r.tokens_after <= b.limit_tokens());
        // System first and the latest last, whole.
        assert_eq!(m[0], msg(Role::System, input.system));
        assert_eq!(m.last(), Some(input.latest));
        // Documents: the sent ones, in rank order, each whole or a grapheme-aligned prefix.
        assert_eq!(r.documents.len(), input.documents.len());
        let sent_docs: Vec<usize> = (0..input.documents.len())
            .filter(|&i| r.documents[i].is_sent())
            .collect();
        for (k, &i) in sent_docs.iter().enumerate() {
            let out = &m[1 + k];
            assert_eq!(out.role, Role::System);
            let cut = check_cut(&input.documents[i], &out.content).unwrap();
            match (cut, r.documents[i]) {
                (None, Fate::Kept) => {}
                (Some(n), Fate::Truncated { chars_after, .. }) => assert_eq!(n as u64, chars_after),
                other => panic!("document {i}: {other:?}"),
            }
        }
        // Dropped documents are the lowest-ranked ones, except those whose floor is blank.
        let floor = b.config().min_document_chars;
        for (i, f) in r.documents.iter().enumerate() {
            let below_sent = r.documents[i + 1..].iter().any(Fate::is_sent);
            if !f.is_sent() && below_sent {
                let d = &input.documents[i];
                let floor_end = cap_end(d, floor).unwrap_or(d.len());
                assert_eq!(
                    choose_cut(d, floor_end),
                    0,
                    "document {i} dropped before a lower one"
                );
            }
        }
        // History: sent messages in order, fields unchanged, content whole or cut.
        let hist_out = &m[1 + sent_docs.len()..m.len() - 1];
        let sent_hist: Vec<usize> = (0..input.history.len())
            .filter(|&i| r.history[i].is_sent())
            .collect();
        assert_eq!(hist_out.len(), sent_hist.len());
        for (out, &i) in hist_out.iter().zip(&sent_hist) {
            let orig = &input.history[i];
            assert_eq!(
                (out.role, &out.name, &out.tool_calls, &out.tool_call_id),
                (orig.role, &orig.name, &orig.tool_calls, &orig.tool_call_id)
            );
            check_cut(&orig.content, &out.content).unwrap();
        }
        if let Some(max) = b.config().max_history_messages {
            assert!(hist_out.len() as u64 <= u64::from(max));
        }
        // The history starts with a user turn.
        if let Some(first) = hist_out.first() {
            assert_eq!(first.role, Role::User);
        }
        // No orphans: every tool result answers a call of the assistant message before the run
        // of results, and every call is answered.
        let mut i = 0;
        while i < hist_out.len() {
            let h = &hist_out[i];
            assert_ne!(h.role, Role::Tool, "orphaned tool result at {i}");
            i += 1;
            if h.role == Role::Assistant && !h.tool_calls.is_empty() {
                let mut ids: Vec<&str> = h.tool_calls.iter().map(|c| c.id.as_str()).collect();
                while i < hist_out.len() && hist_out[i].role == Role::Tool {
                    let id = hist_out[i].tool_call_id.as_deref().unwrap_or("");
                    let at = ids
                        .iter()
                        .position(|x| *x == id)
                        .expect("result without its call");
                    ids.remove(at);
                    i += 1;
                }
                assert!(ids.is_empty(), "calls without results: {ids:?}");
            }
        }
        // Documents shrink before history is dropped for budget.
        let floor = u64::from(floor);
        if r.history.iter().any(|f| {
            *f == Fate::Dropped {
                reason: DropReason::Budget,
            }
        }) {
            for (i, f) in r.documents.iter().enumerate() {
                let chars = match f {
                    Fate::Kept => input.documents[i].chars().count() as u64,
                    Fate::Truncated { chars_after, .. } => *chars_after,
                    Fate::Dropped { .. } => 0,
                };
                assert!(
                    chars <= floor,
                    "document {i} has {chars} chars over the floor {floor}"
                );
            }
        }
    }

    fn arb_budget() -> impl Strategy<Value = ContextBudget> {
        (
            40u64..2_500,
            0u64..30,
            0u64..30,
            proptest::option::of(0u32..12),
            proptest::option::of(1u32..120),
            proptest::option::of(1u32..60),
            0u32..80,
        )
            .prop_filter_map("valid", |(limit, out, margin, max, dcap, mcap, floor)| {
                ContextBudget::new(ContextConfig {
                    context_window: limit + out + margin,
                    reserved_output_tokens: out,
                    safety_margin_tokens: margin,
                    max_history_messages: max,
                    max_document_chars: dcap,
                    max_message_chars: mcap,
                    min_document_chars: dcap.map_or(floor, |c| floor.min(c)),
                })
                .ok()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn trimming_keeps_every_rule(
            turns in proptest::collection::vec(turn(), 0..24),
            docs in proptest::collection::vec(text(60), 0..4),
            system in text(20),
            latest in text(20),
            b in arb_budget(),
            which in 0..3u8,
            with_tools in any::<bool>(),
        ) {
            let history = history_of(&turns);
            // A real-shaped schema: OpenAI's function-calling guide's get_weather.
            let weather = ToolSchema {
                name: "get_weather".into(),
                description: "Get current temperature for a given location.".into(),
                parameters: r#"{"type":"object","properties":{"location":{"type":"string","description":"City and country e.g. Bogotá, Colombia"}},"required":["location"],"additionalProperties":false}"#.into(),
            };
            let tools = if with_tools { vec![weather] } else { Vec::new() };
            let latest = user(&latest);
            let (h0, d0) = (history.clone(), docs.clone());
            let upper_bound = UpperBound::default();
            let counter: &dyn TokenCounter = match which {
                0 => &upper_bound,
                1 => &Bytes,
                _ => &Surcharge,
            };
            let input = TrimInput {
                system: &system,
                documents: &docs,
                history: &history,
                latest: &latest,
                tools: &tools,
            };
            let required = counter
                .count_messages(&[msg(Role::System, &system), latest.clone()], &tools)
                .unwrap();
            match trim(&b, &input, counter) {
                Ok(t) => {
                    prop_assert!(required <= b.limit_tokens());
                    check_invariants(&input, &b, &t, counter);
                }
                Err(e) => {
                    prop_assert!(required > b.limit_tokens(), "{e}");
                    prop_assert_eq!(
                        e,
                        ContextError::DoesNotFit {
                            required_tokens: required,
                            limit_tokens: b.limit_tokens()
                        }
                    );
                }
            }
            prop_assert_eq!((h0, d0), (history, docs));
        }

        #[test]
        fn counting_each_message_once_gives_the_same_trim_as_counting_whole_requests(
            turns in proptest::collection::vec(turn(), 0..24),
            docs in proptest::collection::vec(text(60), 0..4),
            system in text(20),
            latest in text(20),
            b in arb_budget(),
        ) {
            // `Bytes` is a sum but does not say so; `Additive` is the same counter saying so.
            let history = history_of(&turns);
            let latest = user(&latest);
            let input = TrimInput {
                system: &system,
                documents: &docs,
                history: &history,
                latest: &latest,
                tools: &[],
            };
            prop_assert_eq!(trim(&b, &input, &Additive::default()), trim(&b, &input, &Bytes));
        }
    }
}
