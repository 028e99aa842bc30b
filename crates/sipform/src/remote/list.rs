//! A list answer, parsed entry by entry straight from its bytes: each object is handed to
//! the caller as soon as it is parsed, so 100,000 agents never exist as trees at once, and an
//! entry that is not an object, or an answer that is not an array, is an error naming the route.

use reqwest::Method;
use serde_json::Value;

use super::error::ClientError;
use super::objects::Object;

/// Parses the entries of a list answer one at a time and hands each object to `each`;
/// `Ok(None)` when the answer is JSON but no array. A failure of `each`, or an entry that is
/// no object, stops the parse and is left in `failed`.
struct Entries<'a, T, F: FnMut(usize, Object) -> Result<T, ClientError>> {
    each: &'a mut F,
    failed: &'a mut Option<ClientError>,
    /// The list's route template, for the error.
    route: &'a str,
}

impl<'de, T, F: FnMut(usize, Object) -> Result<T, ClientError>> serde::de::Visitor<'de>
    for Entries<'_, T, F>
{
    type Value = Option<Vec<T>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element::<Value>()? {
            let i = out.len();
            let entry = match v {
                Value::Object(o) => (self.each)(i, o),
                _ => Err(bad_list(
                    self.route,
                    format!("entry {i} of the list is not an object"),
                )),
            };
            match entry {
                Ok(t) => out.push(t),
                Err(e) => {
                    *self.failed = Some(e);
                    return Err(A::Error::custom("entry refused"));
                }
            }
        }
        Ok(Some(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        while m
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A list answer's entries, parsed and handed to `each` one at a time, straight from the
/// answer's bytes. `route` (a template) names the list in errors.
pub(super) fn parse_entries<T>(
    bytes: &[u8],
    route: &str,
    each: &mut impl FnMut(usize, Object) -> Result<T, ClientError>,
) -> Result<Vec<T>, ClientError> {
    let mut failed = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde::Deserializer::deserialize_any(
        &mut de,
        Entries {
            each,
            failed: &mut failed,
            route,
        },
    )
    .and_then(|list| de.end().map(|()| list));
    match (failed, parsed) {
        (Some(e), _) => Err(e),
        (None, Ok(Some(list))) => Ok(list),
        (None, Ok(None)) => Err(bad_list(route, "expected a JSON array".into())),
        (None, Err(e)) => Err(bad_list(route, e.to_string())),
    }
}

/// A list answer (GET of the list at `route`, a template) that is not what the contract says.
pub(super) fn bad_list(route: &str, message: String) -> ClientError {
    ClientError::Decode {
        method: Method::GET,
        route: route.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(bytes: &str) -> Result<Vec<String>, String> {
        let mut seen = Vec::new();
        parse_entries(bytes.as_bytes(), "/api/agents", &mut |i, o: Object| {
            seen.push(i);
            match o.get("name").and_then(Value::as_str) {
                Some("refused") => Err(ClientError::Build(format!("entry {i} refused"))),
                n => Ok(n.unwrap_or("").to_string()),
            }
        })
        .map_err(|e| e.to_string())
        .inspect(|list| assert_eq!(seen, (0..list.len()).collect::<Vec<_>>()))
    }

    #[test]
    fn a_list_is_parsed_entry_by_entry_and_anything_else_is_refused_with_the_route() {
        assert_eq!(
            names(r#"[{"name": "a"}, {"name": "b"}, {}]"#),
            Ok(vec!["a".into(), "b".into(), String::new()])
        );
        assert_eq!(names("[]"), Ok(vec![]));
        for not_a_list in [r#"{"name": "a"}"#, "3", "\"x\"", "null", "true"] {
            let e = names(not_a_list).expect_err(not_a_list);
            assert!(
                e.contains("/api/agents") && e.contains("expected a JSON array"),
                "{e}"
            );
        }
        let e = names(r#"[{"name": "a"}, 7]"#).expect_err("7");
        assert!(e.contains("entry 1 of the list is not an object"), "{e}");
        let e = names(r#"[{"name": "a"}, {"name": "refused"}, {"name": "c"}]"#).expect_err("x");
        assert!(e.contains("entry 1 refused"), "{e}");
        for broken in [r#"[{"name": "a"}"#, r#"[{"name": "a"}] trailing"#, "[{,}]"] {
            let e = names(broken).expect_err(broken);
            assert!(e.contains("/api/agents"), "{e}");
        }
    }
}
