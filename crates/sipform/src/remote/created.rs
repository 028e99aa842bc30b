//! A create's answer, read for what apply needs: its id and the tokens it may carry. Every
//! other field stays the text the server sent, parsed only when something asks for it (the
//! controller's cache). A tool's answer is a few kilobytes of JSON Schema: building its tree
//! was an eighth of a fresh apply's CPU, for fields a batch apply never reads.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::objects::{id_of, secret_of, Object, Secrets, ServerObject};
use crate::model::ids::{IdError, ObjectId};

/// The server's answer to a create, or the object a re-read found in its place.
#[derive(Clone)]
pub struct Created {
    pub id: ObjectId,
    pub secrets: Secrets,
    rest: Rest,
}

#[derive(Clone)]
enum Rest {
    /// The whole answer: UTF-8, one JSON object, its id valid. It holds the tokens too, so it
    /// is never shown ([`Created`]'s `Debug` gives its length only).
    Text(String),
    /// Fields without id and secrets (an object found by a re-read, or built by a kind).
    Object(Object),
}

/// Why a create's answer is not one the contract allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadAnswer {
    #[error("{0}")]
    Json(String),
    #[error("its id {0}")]
    Id(#[source] IdError),
}

impl Created {
    /// Reads an answer's id and tokens; the rest is only checked to be JSON.
    pub fn parse(text: Vec<u8>) -> Result<Created, BadAnswer> {
        let text = String::from_utf8(text).map_err(|e| BadAnswer::Json(e.to_string()))?;
        let head: Head = serde_json::from_str(&text).map_err(|e| BadAnswer::Json(e.to_string()))?;
        Ok(Created {
            id: id_of(head.id).map_err(BadAnswer::Id)?,
            secrets: Secrets {
                api_token: secret_of(head.api_token),
                public_token: secret_of(head.public_token),
            },
            rest: Rest::Text(text),
        })
    }

    /// Every field but id and secrets, parsed now. `None` when the text, which the create
    /// only checked, does not parse whole (a lone surrogate escape in a skipped string): the
    /// caller treats the object as unknown and reads it again.
    pub fn object(&self) -> Option<ServerObject> {
        let fields = match &self.rest {
            Rest::Object(o) => o.clone(),
            Rest::Text(t) => {
                let o: Object = serde_json::from_str(t).ok()?;
                let (o, _) = ServerObject::parse(o, String::new).ok()?;
                o.fields
            }
        };
        Some(ServerObject::new(self.id.clone(), fields))
    }
}

/// An object and its secrets, as a re-read (or a kind's own create) found them.
impl From<(ServerObject, Secrets)> for Created {
    fn from((o, secrets): (ServerObject, Secrets)) -> Self {
        let fields = o.all_fields().into_owned();
        Created {
            id: o.id,
            secrets,
            rest: Rest::Object(fields),
        }
    }
}

impl fmt::Debug for Created {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rest = match &self.rest {
            Rest::Text(t) => format!("{} bytes of answer", t.len()),
            Rest::Object(o) => format!("{} fields", o.len()),
        };
        f.debug_struct("Created")
            .field("id", &self.id)
            .field("secrets", &self.secrets)
            .field("rest", &rest)
            .finish()
    }
}

/// The fields of an answer apply reads; any other is skipped without being built.
struct Head {
    id: Option<Value>,
    api_token: Option<Value>,
    public_token: Option<Value>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    Id,
    ApiToken,
    PublicToken,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Head;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            // A key given twice counts once, the last time, as a parsed `Map` does.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
                let mut head = Head {
                    id: None,
                    api_token: None,
                    public_token: None,
                };
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
                        Field::Id => head.id = Some(map.next_value()?),
                        Field::ApiToken => head.api_token = Some(map.next_value()?),
                        Field::PublicToken => head.public_token = Some(map.next_value()?),
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(head)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn created(v: &str) -> Result<Created, BadAnswer> {
        Created::parse(v.as_bytes().to_vec())
    }

    #[test]
    fn an_answer_gives_its_id_and_tokens_and_the_rest_only_when_asked() {
        let answer = json!({"id": "a-1", "name": "Chez A", "config": {"restaurantId": "r1"},
                            "apiToken": "t", "publicToken": "p", "sipPassword": "pw"});
        let c = created(&answer.to_string()).expect("valid");
        assert_eq!(c.id.as_str(), "a-1");
        assert_eq!(
            c.secrets.api_token.as_ref().map(|t| t.expose().as_str()),
            Some("t")
        );
        assert_eq!(
            c.secrets.public_token.as_ref().map(|t| t.expose().as_str()),
            Some("p")
        );
        // The same object and secrets a whole parse gives.
        let whole = answer.as_object().cloned().expect("object");
        let (o, s) = ServerObject::parse(whole, String::new).expect("valid");
        assert_eq!(c.object(), Some(o));
        assert_eq!(c.secrets, s);
        let shown = format!("{c:?}");
        for secret in ["\"t\"", "\"p\"", "pw"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        // A key given twice counts the last time, as in a parsed map.
        let c = created(r#"{"id": "a-1", "id": "a-2", "apiToken": 3}"#).expect("valid");
        assert_eq!(c.id.as_str(), "a-2");
        assert_eq!(
            c.secrets.api_token, None,
            "a token that is not a string is none"
        );
    }

    #[test]
    fn an_answer_that_is_not_an_object_with_a_valid_id_is_refused() {
        for (text, why) in [
            ("[1, 2]", "a JSON object"),
            ("\"a-1\"", "a JSON object"),
            ("{\"id\": \"a-1\"", "EOF"),
            ("{\"id\": \"a-1\", \"x\": [}", "expected value"),
            ("{\"name\": \"n\"}", "missing"),
            ("{\"id\": \"..\"}", "'.'"),
        ] {
            let e = created(text).expect_err(text).to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
        let e = Created::parse(b"{\"id\": \"a\xff\"}".to_vec()).expect_err("not UTF-8");
        assert!(e.to_string().contains("utf-8"), "{e}");
    }

    #[test]
    fn an_object_found_again_keeps_its_fields() {
        let (o, s) = ServerObject::parse(
            json!({"id": "t-1", "name": "end_call"})
                .as_object()
                .cloned()
                .expect("object"),
            String::new,
        )
        .expect("valid");
        let c = Created::from((o.clone(), s));
        assert_eq!(c.id, o.id);
        assert_eq!(c.object(), Some(o));
    }
}
