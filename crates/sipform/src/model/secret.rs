//! A value that must never reach a log, a plan or an error message.
//!
//! `Debug` and `Display` print `(sensitive)`. Serialization writes the real value, because the
//! only places a `Secret` is serialized are the wire (an `X-API-Key` header, a SIP password sent
//! to the server) and storage the user opted into (`store_tokens`). Plan output never holds a
//! `Secret`: the plan stage replaces sensitive fields with a marker before rendering.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every secret prints as.
pub const REDACTED: &str = "(sensitive)";

#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The one way to read the value: greppable, so every use can be audited.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl Secret<String> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Secret<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// `url` fit to show: its user-info (`user:password@`) replaced by `***`, and a `password=`
/// query parameter's value too. The one function every URL (server or database) goes through
/// before it reaches output, a log, an error or a saved plan.
///
/// The user-info is found as text, not with a URL parser, on purpose: a password holding an
/// unencoded `/`, `?` or `#` makes a URL that a parser either refuses or reads with the
/// password as host, port or path, and such a URL must not be printed either. Everything
/// between `://` and the last `@` counts as user-info, which at worst hides too much.
pub fn redact_url(url: &str) -> String {
    match userinfo_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], redact_password_param(&url[end..])),
        None => redact_password_param(url),
    }
}

/// The password in `url`'s user-info (after its first `:`), as written; see [`redact_url`] for
/// where the user-info is taken to end.
pub(crate) fn url_password(url: &str) -> Option<&str> {
    let (start, end) = userinfo_span(url)?;
    let userinfo = &url[start..end];
    let pw = &userinfo[userinfo.find(':')? + 1..];
    (!pw.is_empty()).then_some(pw)
}

/// Refuses a URL whose `@` comes after a `/`, `?`, `#` or `\\`: either a password holding one
/// of those unencoded, which the driver or HTTP client would read as host, port, path or query
/// (and send or log it there), or an `@` in the path or query. Both are fixed by encoding.
pub(crate) fn check_url_userinfo(url: &str) -> Result<(), String> {
    match userinfo_span(url) {
        Some((start, end)) if url[start..end].contains(['/', '?', '#', '\\']) => Err(
            "the URL has an '@' after a '/', '?', '#' or '\\', so it does not mean what it seems: percent-encode those characters in a password (%2F, %3F, %23, %5C), or an '@' in the path or query (%40)"
                .to_string(),
        ),
        _ => Ok(()),
    }
}

/// Byte range of the user-info: from after `://` to the last `@` (exclusive).
fn userinfo_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let at = url[start..].rfind('@')? + start;
    Some((start, at))
}

/// `password=` query parameters with their values replaced by `***`.
fn redact_password_param(s: &str) -> String {
    let Some(q) = s.find('?') else {
        return s.to_string();
    };
    let (head, query) = s.split_at(q + 1);
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{head}{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("acc_live_123".to_string());
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(s.expose(), "acc_live_123");
    }

    #[test]
    fn serializes_transparently_for_the_wire() {
        let s = Secret::new("tok".to_string());
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"tok\"");
        let back: Secret<String> = serde_json::from_str("\"tok\"").unwrap();
        assert_eq!(back.expose(), "tok");
    }
}
