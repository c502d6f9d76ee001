//! An owned failed call, as read from JSON (a `--jsonl` log line or a vector's `input`).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// One failed call with owned data: the JSON form of [`llm_resilience::ClassifyInput`].
///
/// ```json
/// {"status": 429, "headers": {"retry-after": "7"}, "body": "…", "transport": null,
///  "wall_clock_ms": 1700000000000}
/// ```
///
/// Every field is optional (missing and `null` are the same). `headers` is an object of
/// name → string value; its order is kept. Other fields (a log's timestamp, an id) are ignored,
/// so log records can be fed as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CallInput {
    /// The HTTP status, when a response arrived.
    #[serde(default)]
    pub status: Option<u16>,
    /// Response headers, in the order given.
    #[serde(default, deserialize_with = "headers_in_order")]
    pub headers: Vec<(String, String)>,
    /// The response body.
    #[serde(default)]
    pub body: Option<String>,
    /// The transport error's message, when the call failed before a response.
    #[serde(default)]
    pub transport: Option<String>,
    /// Wall-clock Unix time in milliseconds, for HTTP-date and epoch hints.
    #[serde(default)]
    pub wall_clock_ms: Option<u64>,
}

/// A JSON record that is not a valid [`CallInput`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(String);

impl CallInput {
    /// Parses one JSON object (one `--jsonl` line).
    pub fn from_json(text: &str) -> Result<CallInput, InputError> {
        serde_json::from_str(text).map_err(|e| InputError(e.to_string()))
    }

    /// Parses a JSON value (a vector's `input`).
    pub fn from_value(value: serde_json::Value) -> Result<CallInput, InputError> {
        serde_json::from_value(value).map_err(|e| InputError(e.to_string()))
    }

    /// Calls `f` with the borrowed form the core and [`crate::Plugin`] take.
    pub fn with_input<R>(&self, f: impl FnOnce(&llm_resilience::ClassifyInput<'_>) -> R) -> R {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        f(&llm_resilience::ClassifyInput {
            status: self.status,
            headers: &headers,
            body: self.body.as_deref().unwrap_or("").as_bytes(),
            transport: self.transport.as_deref(),
            wall_clock_ms: self.wall_clock_ms,
        })
    }
}

fn headers_in_order<'de, D>(deserializer: D) -> Result<Vec<(String, String)>, D::Error>
where
    D: de::Deserializer<'de>,
{
    struct Headers;

    impl<'de> Visitor<'de> for Headers {
        type Value = Vec<(String, String)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of header name to string value, or null")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(Headers)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut headers = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some((name, value)) = map.next_entry::<String, String>()? {
                headers.push((name, value));
            }
            Ok(headers)
        }
    }

    deserializer.deserialize_option(Headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_optional() {
        assert_eq!(CallInput::from_json("{}").unwrap(), CallInput::default());
        let all_null =
            r#"{"status":null,"headers":null,"body":null,"transport":null,"wall_clock_ms":null}"#;
        assert_eq!(
            CallInput::from_json(all_null).unwrap(),
            CallInput::default()
        );
    }

    #[test]
    fn headers_keep_their_order_and_extra_fields_are_ignored() {
        let input = CallInput::from_json(
            r#"{"status":429,"headers":{"x-b":"1","retry-after":"7","a":"2"},"body":"{}","ts":"2026-01-01"}"#,
        )
        .unwrap();
        assert_eq!(input.status, Some(429));
        let names: Vec<&str> = input.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-b", "retry-after", "a"]);
        input.with_input(|i| {
            assert_eq!(i.headers[1], ("retry-after", "7"));
            assert_eq!(i.body, b"{}");
        });
    }

    #[test]
    fn wrong_types_are_errors() {
        for bad in [
            r#"{"status":"429"}"#,
            r#"{"status":70000}"#,
            r#"{"headers":{"retry-after":7}}"#,
            r#"{"headers":["retry-after"]}"#,
            r#"{"body":5}"#,
            r#"[1,2]"#,
            r#"{"status":429"#,
        ] {
            assert!(
                CallInput::from_json(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
