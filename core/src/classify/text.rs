//! Small string helpers for the classifier: bounded, allocation-light and panic-free.
//!
//! Everything here works on byte offsets that are checked with `str::get`, so a malformed or
//! hostile input can only make a lookup fail, never slice out of bounds.

/// The longest prefix of `s` that is at most `max` bytes long and ends at a character boundary.
pub(super) fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// How far [`prefix_whole`] backs off to avoid cutting a word in two.
const MAX_BACK_OFF: usize = 1024;

/// Whether a byte can be inside a secret (a key, a token, an encoded run): anything but
/// whitespace and the punctuation that delimits values.
fn in_word(b: u8) -> bool {
    !b.is_ascii_whitespace()
        && !matches!(
            b,
            b'"' | b'\'' | b'<' | b'>' | b',' | b';' | b'(' | b')' | b'[' | b']' | b'{' | b'}'
        )
}

/// Where to cut `bytes` to at most `max` bytes without cutting a word in two: a key cut at an
/// input cap would leave a head too short to be recognised and redacted (a 29-character
/// `AIza…` head). Backs off to the start of the word the cap falls in, at most
/// [`MAX_BACK_OFF`] bytes (a longer run is cut where the cap falls).
pub(super) fn cut_point(bytes: &[u8], max: usize) -> usize {
    if bytes.len() <= max {
        return bytes.len();
    }
    let inside = |at: usize| {
        at > 0
            && bytes.get(at).copied().is_some_and(in_word)
            && bytes.get(at - 1).copied().is_some_and(in_word)
    };
    if !inside(max) {
        return max;
    }
    let floor = max.saturating_sub(MAX_BACK_OFF);
    let mut at = max;
    while at > floor && bytes.get(at - 1).copied().is_some_and(in_word) {
        at -= 1;
    }
    // Stopped at the word's start (or the text's), or the word is longer than the back-off.
    let at_word_start = at == 0 || !bytes.get(at - 1).copied().is_some_and(in_word);
    if at_word_start { at } else { max }
}

/// [`prefix`], but never cutting a word in two (see [`cut_point`]).
pub(super) fn prefix_whole(s: &str, max: usize) -> &str {
    prefix(s, cut_point(s.as_bytes(), max))
}

/// The text after the first occurrence of `pat` in `text`.
pub(super) fn after<'t>(text: &'t str, pat: &str) -> Option<&'t str> {
    let at = text.find(pat)?;
    text.get(at.saturating_add(pat.len())..)
}

/// Parses an unsigned integer at the start of `s` (digits; a `,` or `_` between digits is a
/// thousands separator) and returns it with the rest of the text. Saturates instead of
/// overflowing.
pub(super) fn leading_u64(s: &str) -> Option<(u64, &str)> {
    let bytes = s.as_bytes();
    let mut value: u64 = 0;
    let mut end = 0;
    let mut digits = 0;
    while let Some(&b) = bytes.get(end) {
        if b.is_ascii_digit() {
            value = value.saturating_mul(10).saturating_add(u64::from(b - b'0'));
            digits += 1;
            end += 1;
        } else if (b == b',' || b == b'_')
            && digits > 0
            && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
        {
            end += 1;
        } else {
            break;
        }
    }
    if digits == 0 {
        return None;
    }
    Some((value, s.get(end..).unwrap_or("")))
}

/// Parses a non-negative decimal number at the start of `s` (`37`, `37.5`, `.5`) and returns it
/// with the rest of the text.
pub(super) fn leading_decimal(s: &str) -> Option<(f64, &str)> {
    let bytes = s.as_bytes();
    let mut end = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    while let Some(&b) = bytes.get(end) {
        if b.is_ascii_digit() {
            seen_digit = true;
        } else if b == b'.' && !seen_dot && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            seen_dot = true;
        } else {
            break;
        }
        end += 1;
        if end > 40 {
            return None;
        }
    }
    if !seen_digit {
        return None;
    }
    let number: f64 = s.get(..end)?.parse().ok()?;
    Some((number, s.get(end..).unwrap_or("")))
}

/// The first number after `pat`, skipping spaces and the punctuation that messages put between
/// a label and its value (`(`, `` ` ``, `:`, `~`, `=`), and the word "about".
pub(super) fn number_after(text: &str, pat: &str) -> Option<u64> {
    let rest = after(text, pat)?;
    let rest = rest.trim_start_matches([' ', '(', '`', ':', '~', '=', '\'', '"']);
    let rest = rest.strip_prefix("about ").unwrap_or(rest);
    leading_u64(rest).map(|(n, _)| n)
}

/// The number just before the first occurrence of `pat` (`"32768 maximum context length"`).
pub(super) fn number_before(text: &str, pat: &str) -> Option<u64> {
    let at = text.find(pat)?;
    let head = text.get(..at)?.trim_end_matches([' ', ')', '`']);
    let start = head
        .rfind(|c: char| !(c.is_ascii_digit() || c == ',' || c == '_'))
        .map_or(0, |i| i.saturating_add(1));
    leading_u64(head.get(start..)?.trim_start_matches([',', '_'])).map(|(n, _)| n)
}

/// The first stand-alone three-digit number between 400 and 599 in `text` (`"524: A timeout
/// occurred"`, `"502 Bad Gateway"`), read as an HTTP status.
pub(super) fn status_in(text: &str) -> Option<u16> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i).is_some_and(u8::is_ascii_digit) {
            let start = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let alone_before = start == 0
                || bytes
                    .get(start - 1)
                    .is_some_and(|b| !b.is_ascii_alphanumeric() && *b != b'.');
            let alone_after = bytes.get(i).is_none_or(|b| !b.is_ascii_alphanumeric());
            if i - start == 3 && alone_before && alone_after {
                let n: u16 = text.get(start..i)?.parse().ok()?;
                if (400..=599).contains(&n) {
                    return Some(n);
                }
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Milliseconds from a number of `unit_ms`-long units, rounded up to a whole millisecond (but
/// not by float noise: `0.1 s` is 100 ms, not 101). `None` for negative or non-finite values.
pub(super) fn to_ms(value: f64, unit_ms: f64) -> Option<u64> {
    let ms = value * unit_ms;
    if !ms.is_finite() || ms < 0.0 {
        return None;
    }
    let nearest = ms.round();
    let whole = if (ms - nearest).abs() < 1e-6 {
        nearest
    } else {
        ms.ceil()
    };
    // `as` saturates for floats that do not fit.
    Some(whole as u64)
}

/// Parses a Go-style duration (`"6m0s"`, `"1s"`, `"20ms"`, `"1m30.5s"`, `"1h2m"`) into
/// milliseconds. At most eight number-unit pairs are read.
pub(super) fn go_duration_ms(s: &str) -> Option<u64> {
    let mut rest = s;
    let mut total: f64 = 0.0;
    let mut parts = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        parts += 1;
        if parts > 8 {
            return None;
        }
        let (number, tail) = leading_decimal(rest)?;
        let unit_len = tail
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(tail.len(), |(i, _)| i);
        let unit = tail.get(..unit_len)?;
        let unit_ms = match unit {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total += number * unit_ms;
        rest = tail.get(unit_len..)?;
    }
    to_ms(total, 1.0)
}

/// A duration written in prose right at the start of `s`: `"6ms"`, `"37.5s."`, `"1m30s"`,
/// `"3 seconds"`, `"2 minutes"`.
pub(super) fn prose_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim_start();
    let token_end = s.find(char::is_whitespace).unwrap_or(s.len());
    let token = s
        .get(..token_end)?
        .trim_end_matches(['.', ',', ';', ':', ')', '!', '"', '\'']);
    if let Some(ms) = go_duration_ms(token) {
        return Some(ms);
    }
    let (number, tail) = leading_decimal(token)?;
    if !tail.is_empty() {
        return None;
    }
    let word = s.get(token_end..)?.trim_start();
    let word_end = word
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphabetic())
        .map_or(word.len(), |(i, _)| i);
    let unit_ms = match word.get(..word_end)? {
        "ms" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000.0,
        _ => return None,
    };
    to_ms(number, unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_cuts_at_char_boundaries() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("héllo", 3), "hé");
        assert_eq!(prefix("abc", 10), "abc");
        assert_eq!(prefix("🙂", 3), "");
    }

    #[test]
    fn cuts_keep_words_whole() {
        assert_eq!(prefix_whole("key=AIzaSyFAKE012345 tail", 10), "");
        assert_eq!(prefix_whole("error: AIzaSyFAKE012345 tail", 12), "error: ");
        assert_eq!(prefix_whole("error: AIza tail", 12), "error: AIza ");
        assert_eq!(prefix_whole("short", 10), "short");
        assert_eq!(prefix_whole("ab cd", 3), "ab ");
        // A run longer than the back-off is cut where the cap falls.
        let long = "x".repeat(MAX_BACK_OFF * 3);
        assert_eq!(
            prefix_whole(&long, MAX_BACK_OFF * 2).len(),
            MAX_BACK_OFF * 2
        );
        assert_eq!(cut_point(b"{\"k\":\"secret\"}", 10), 6);
    }

    #[test]
    fn numbers() {
        assert_eq!(leading_u64("128,000 tokens"), Some((128_000, " tokens")));
        assert_eq!(
            leading_u64("10000, Requested"),
            Some((10_000, ", Requested"))
        );
        assert_eq!(leading_u64("x"), None);
        assert_eq!(leading_u64("99999999999999999999999"), Some((u64::MAX, "")));
        assert_eq!(
            number_after("length is 8192 tokens", "length is"),
            Some(8192)
        );
        assert_eq!(
            number_after("allowed (1048576)", "allowed"),
            Some(1_048_576)
        );
        assert_eq!(
            number_after("requested about 150000", "requested"),
            Some(150_000)
        );
        assert_eq!(
            number_before("with 32768 maximum context", " maximum context"),
            Some(32_768)
        );
        assert_eq!(number_before("maximum context", "maximum"), None);
    }

    #[test]
    fn statuses_in_titles() {
        let cases = [
            ("example.com | 524: A timeout occurred", Some(524)),
            ("502 Bad Gateway", Some(502)),
            ("api.example.com | 200 ok", None),
            ("Error 1015", None),
            ("v1.503 release", None),
        ];
        for (text, want) in cases {
            assert_eq!(status_in(text), want, "{text}");
        }
    }

    #[test]
    fn durations() {
        let cases = [
            ("6m0s", Some(360_000)),
            ("1s", Some(1_000)),
            ("20ms", Some(20)),
            ("1m30.5s", Some(90_500)),
            ("0.1s", Some(100)),
            ("37.592628339s", Some(37_593)),
            ("1h", Some(3_600_000)),
            ("500us", Some(1)),
            ("", None),
            ("5", None),
            ("5x", None),
            ("1s1s1s1s1s1s1s1s1s", None),
        ];
        for (text, want) in cases {
            assert_eq!(go_duration_ms(text), want, "{text}");
        }
    }

    #[test]
    fn prose_durations() {
        let cases = [
            ("6ms.", Some(6)),
            ("37.5s. Learn more", Some(37_500)),
            ("3 seconds", Some(3_000)),
            ("1.5 seconds.", Some(1_500)),
            ("2 minutes", Some(120_000)),
            ("a moment", None),
            ("3 apples", None),
        ];
        for (text, want) in cases {
            assert_eq!(prose_duration_ms(text), want, "{text}");
        }
    }
}
