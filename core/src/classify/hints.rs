//! Retry hints: how long the server asked us to wait, and whether it wants a retry at all.
//!
//! Sources, first found wins: `retry-after-ms`; `retry-after` (seconds, fractions allowed, or an
//! HTTP-date); the reset header of an exhausted `x-ratelimit-*` bucket (or a lone
//! `x-ratelimit-reset`); the same headers repeated in OpenRouter's `error.metadata.headers`;
//! then phrases in the error text ("try again in 6ms", "retry after 3 seconds"); then Google's
//! `RetryInfo.retryDelay` (read by the body extractor).

use super::text;
use super::{MAX_HEADER_BYTES, MAX_HEADERS};

/// Phrases after which error messages state a wait.
const WAIT_PHRASES: &[&str] = &[
    "try again in ",
    "retry in ",
    "retry after ",
    "try again after ",
    "retry-after: ",
    "retry again in ",
];

/// Reset values at or above this are epoch milliseconds (year 2001 onwards).
const EPOCH_MS_FROM: f64 = 1e12;
/// Reset values at or above this (and below [`EPOCH_MS_FROM`]) are epoch seconds.
const EPOCH_S_FROM: f64 = 1e9;

/// The headers a classification reads: at most [`MAX_HEADERS`] pairs, none longer than
/// [`MAX_HEADER_BYTES`], names lower-cased once.
pub(super) struct Headers<'a> {
    pairs: Vec<(String, &'a str)>,
}

impl<'a> Headers<'a> {
    /// Collects the caller's headers within the caps.
    pub(super) fn collect(raw: &'a [(&'a str, &'a str)]) -> Self {
        Self::from_iter(raw.iter().map(|(n, v)| (*n, *v)))
    }

    /// Collects headers found in a body (OpenRouter's `error.metadata.headers`).
    pub(super) fn collect_owned(raw: &'a [(String, String)]) -> Self {
        Self::from_iter(raw.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }

    fn from_iter(raw: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let pairs = raw
            .take(MAX_HEADERS)
            .filter(|(n, v)| n.len() <= MAX_HEADER_BYTES && v.len() <= MAX_HEADER_BYTES)
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
            .collect();
        Headers { pairs }
    }

    /// The first value of a header (`name` in lower case).
    fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// `x-should-retry: true|false`: the server's own verdict, which overrides the kind's default.
    pub(super) fn should_retry(&self) -> Option<bool> {
        let value = self.get("x-should-retry")?;
        if value.eq_ignore_ascii_case("true") {
            Some(true)
        } else if value.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }

    /// The wait the headers ask for, in milliseconds. `wall_clock_ms` is needed for HTTP-dates
    /// and epoch resets; a moment in the past gives 0.
    pub(super) fn retry_after_ms(&self, wall_clock_ms: Option<u64>) -> Option<u64> {
        if let Some(ms) = self
            .get("retry-after-ms")
            .and_then(|v| text::leading_decimal(v).filter(|(_, rest)| rest.is_empty()))
            .and_then(|(n, _)| text::to_ms(n, 1.0))
        {
            return Some(ms);
        }
        if let Some(ms) = self
            .get("retry-after")
            .and_then(|v| seconds_or_date_ms(v, wall_clock_ms))
        {
            return Some(ms);
        }
        self.exhausted_bucket_reset_ms(wall_clock_ms)
    }

    /// The longest reset among the `x-ratelimit-reset-<bucket>` headers whose bucket is
    /// exhausted (`x-ratelimit-remaining-<bucket>` is 0 or absent), else a lone
    /// `x-ratelimit-reset` (unless `x-ratelimit-remaining` says requests are left).
    fn exhausted_bucket_reset_ms(&self, wall_clock_ms: Option<u64>) -> Option<u64> {
        let mut longest: Option<u64> = None;
        for (name, value) in &self.pairs {
            let Some(bucket) = name.strip_prefix("x-ratelimit-reset-") else {
                continue;
            };
            let remaining = self.get(&format!("x-ratelimit-remaining-{bucket}"));
            if remaining.is_some_and(|r| !is_zero(r)) {
                continue;
            }
            if let Some(ms) = reset_ms(value, wall_clock_ms) {
                longest = Some(longest.map_or(ms, |l| l.max(ms)));
            }
        }
        if longest.is_some() {
            return longest;
        }
        if self
            .get("x-ratelimit-remaining")
            .is_some_and(|r| !is_zero(r))
        {
            return None;
        }
        self.get("x-ratelimit-reset")
            .and_then(|v| reset_ms(v, wall_clock_ms))
    }
}

/// Whether a `remaining` header says nothing is left.
fn is_zero(value: &str) -> bool {
    matches!(text::leading_decimal(value), Some((n, rest)) if rest.is_empty() && n == 0.0)
}

/// `retry-after`: delay-seconds (fractions allowed) or an HTTP-date.
fn seconds_or_date_ms(value: &str, wall_clock_ms: Option<u64>) -> Option<u64> {
    if let Some((seconds, rest)) = text::leading_decimal(value)
        && rest.is_empty()
    {
        return text::to_ms(seconds, 1_000.0);
    }
    http_date_ms(value, wall_clock_ms)
}

/// An HTTP-date, as a delay from `wall_clock_ms` (0 when it is in the past).
fn http_date_ms(value: &str, wall_clock_ms: Option<u64>) -> Option<u64> {
    let now = wall_clock_ms?;
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    Some(u64::try_from(at_ms).unwrap_or(u64::MAX).saturating_sub(now))
}

/// A rate-limit reset value: a Go-style duration (`6m0s`), seconds, epoch seconds or epoch
/// milliseconds (both need `wall_clock_ms`), or an HTTP-date.
fn reset_ms(value: &str, wall_clock_ms: Option<u64>) -> Option<u64> {
    if let Some((number, rest)) = text::leading_decimal(value)
        && rest.is_empty()
    {
        return if number >= EPOCH_MS_FROM {
            let now = wall_clock_ms?;
            text::to_ms(number, 1.0).map(|at| at.saturating_sub(now))
        } else if number >= EPOCH_S_FROM {
            let now = wall_clock_ms?;
            text::to_ms(number, 1_000.0).map(|at| at.saturating_sub(now))
        } else {
            text::to_ms(number, 1_000.0)
        };
    }
    text::go_duration_ms(value).or_else(|| http_date_ms(value, wall_clock_ms))
}

/// A wait stated in an error message (`signals` is lower-case): "Please try again in 20s",
/// "retry in 37.5s", "retry after 3 seconds". The first phrase that parses wins.
pub(super) fn delay_from_text(signals: &str) -> Option<u64> {
    let mut best: Option<(usize, u64)> = None;
    for phrase in WAIT_PHRASES {
        let mut rest = signals;
        let mut offset = 0usize;
        while let Some(at) = rest.find(phrase) {
            let start = at.saturating_add(phrase.len());
            let tail = rest.get(start..).unwrap_or("");
            if let Some(ms) = text::prose_duration_ms(tail) {
                let position = offset.saturating_add(at);
                if best.is_none_or(|(p, _)| position < p) {
                    best = Some((position, ms));
                }
                break;
            }
            offset = offset.saturating_add(start);
            rest = tail;
        }
    }
    best.map(|(_, ms)| ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(headers: &[(&str, &str)], wall: Option<u64>) -> Option<u64> {
        Headers::collect(headers).retry_after_ms(wall)
    }

    #[test]
    fn header_precedence_and_formats() {
        let now = 1_700_000_000_000u64;
        // (headers, wall clock, expected wait)
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<u64>, Option<u64>);
        let cases: &[Case<'_>] = &[
            (
                &[("retry-after-ms", "6"), ("retry-after", "1")],
                None,
                Some(6),
            ),
            (&[("Retry-After", "2")], None, Some(2_000)),
            (&[("retry-after", "0.5")], None, Some(500)),
            (
                &[("retry-after", "Tue, 14 Nov 2023 22:13:30 GMT")],
                Some(now),
                Some(10_000),
            ),
            (
                &[("retry-after", "Tue, 14 Nov 2023 22:13:30 GMT")],
                None,
                None,
            ),
            (
                &[("retry-after", "Mon, 13 Nov 2023 22:13:30 GMT")],
                Some(now),
                Some(0),
            ),
            (
                &[
                    ("x-ratelimit-remaining-requests", "5"),
                    ("x-ratelimit-reset-requests", "1s"),
                    ("x-ratelimit-remaining-tokens", "0"),
                    ("x-ratelimit-reset-tokens", "6m0s"),
                ],
                None,
                Some(360_000),
            ),
            (
                &[
                    ("x-ratelimit-remaining-requests", "3"),
                    ("x-ratelimit-reset-requests", "1s"),
                ],
                None,
                None,
            ),
            (&[("x-ratelimit-reset-tokens", "20ms")], None, Some(20)),
            (&[("x-ratelimit-reset", "12")], None, Some(12_000)),
            (
                &[("x-ratelimit-reset", "1700000005000")],
                Some(now),
                Some(5_000),
            ),
            (
                &[("x-ratelimit-reset", "1700000005")],
                Some(now),
                Some(5_000),
            ),
            (&[("x-ratelimit-reset", "1700000005000")], None, None),
            (&[("x-ratelimit-reset", "1600000000")], Some(now), Some(0)),
            (
                &[("x-ratelimit-remaining", "7"), ("x-ratelimit-reset", "12")],
                None,
                None,
            ),
            (&[("retry-after", "soon")], None, None),
            (&[("retry-after", "-1")], None, None),
        ];
        for (headers, wall, want) in cases {
            assert_eq!(wait(headers, *wall), *want, "{headers:?}");
        }
    }

    #[test]
    fn oversized_and_excess_headers_are_ignored() {
        let long = "1".repeat(MAX_HEADER_BYTES + 1);
        assert_eq!(wait(&[("retry-after", &long)], None), None);
        let mut many = vec![("x-filler", "1"); MAX_HEADERS];
        many.push(("retry-after", "3"));
        assert_eq!(wait(&many, None), None);
    }

    #[test]
    fn should_retry_header() {
        let verdict = |v: &str| Headers::collect(&[("X-Should-Retry", v)]).should_retry();
        assert_eq!(verdict("true"), Some(true));
        assert_eq!(verdict("FALSE"), Some(false));
        assert_eq!(verdict("maybe"), None);
    }

    #[test]
    fn waits_in_text() {
        let cases = [
            ("rate limit reached. please try again in 6ms.", Some(6)),
            ("please retry in 37.5s.", Some(37_500)),
            ("please try again in 1m30s", Some(90_000)),
            ("please retry after 3 seconds.", Some(3_000)),
            ("try again in a moment. or retry in 2s", Some(2_000)),
            ("retry in 2s. try again in 9s", Some(2_000)),
            ("no hint here", None),
        ];
        for (text, want) in cases {
            assert_eq!(delay_from_text(text), want, "{text}");
        }
    }
}
