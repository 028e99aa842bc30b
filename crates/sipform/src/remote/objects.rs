//! Server objects, parsed once where they enter: the id checked ([`ObjectId`]), secrets taken
//! out into [`Secrets`], every other field kept as the server sent it for comparison. No later
//! stage looks an id up by string or sees a token.

use serde_json::Value;

use crate::model::ids::{IdError, ObjectId};
use crate::model::secret::Secret;

/// A JSON object as it came off the wire.
pub type Object = serde_json::Map<String, Value>;

/// Fields that are secrets: never compared, fingerprinted, planned or printed.
pub const SECRET_FIELDS: &[&str] = &["apiToken", "publicToken", "sipPassword"];

/// One object read from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerObject {
    pub id: ObjectId,
    /// Every field but `id` and the secrets.
    pub fields: Object,
}

/// The secrets an answer carried (an agent's tokens), apart from its fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Secrets {
    pub api_token: Option<Secret<String>>,
    pub public_token: Option<Secret<String>>,
}

/// A server answer that is not what the contract says.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what}: its id {source}")]
pub struct BadObject {
    /// Which object: `a tool of agent …`, `entry 3 of GET /api/agents`.
    pub what: String,
    #[source]
    pub source: IdError,
}

/// A name from the server as an error shows it: quoted, escaped, at most 60 characters.
fn shown_name(name: &str) -> String {
    let short: String = name.chars().take(60).collect();
    format!("{short:?}")
}

impl ServerObject {
    /// Checks the id and takes the secrets out. `what` names the object in the error.
    pub fn parse(
        mut o: Object,
        what: impl FnOnce() -> String,
    ) -> Result<(Self, Secrets), BadObject> {
        let id = match o.remove("id") {
            Some(Value::String(s)) => ObjectId::parse(&s),
            _ => Err(IdError::Missing),
        }
        .map_err(|source| BadObject {
            what: what(),
            source,
        })?;
        let mut take = |k: &str| match o.remove(k) {
            Some(Value::String(s)) => Some(Secret::new(s)),
            _ => None,
        };
        let secrets = Secrets {
            api_token: take("apiToken"),
            public_token: take("publicToken"),
        };
        o.remove("sipPassword");
        Ok((ServerObject { id, fields: o }, secrets))
    }

    /// Parses a list answer; the first bad entry fails the whole answer. The error names the
    /// entry by its place and, when it has one, its name.
    pub fn parse_list(list: Vec<Object>, what: &str) -> Result<Vec<ServerObject>, BadObject> {
        list.into_iter()
            .enumerate()
            .map(|(i, o)| {
                let name = o.get("name").and_then(Value::as_str).map(shown_name);
                Self::parse(o, || match name {
                    Some(n) => format!("entry {i} ({n}) of {what}"),
                    None => format!("entry {i} of {what}"),
                })
                .map(|(s, _)| s)
            })
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    pub fn name(&self) -> Option<&str> {
        self.str_field("name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        match v {
            Value::Object(o) => o,
            _ => Object::new(),
        }
    }

    #[test]
    fn secrets_leave_the_fields() {
        let (o, s) = ServerObject::parse(
            obj(json!({"id": "a-1", "name": "x", "apiToken": "t", "publicToken": "p", "sipPassword": "pw"})),
            || "agent".into(),
        )
        .expect("valid");
        assert_eq!(o.id.as_str(), "a-1");
        assert_eq!(o.fields.len(), 1);
        assert_eq!(
            s.api_token.map(|t| t.expose().clone()),
            Some("t".to_string())
        );
    }

    #[test]
    fn a_missing_or_hostile_id_is_refused_with_the_place() {
        let e = ServerObject::parse_list(
            vec![obj(json!({"id": "ok"})), obj(json!({"name": "n"}))],
            "GET /api/agents",
        )
        .expect_err("entry 1 has no id");
        assert_eq!(
            e.to_string(),
            "entry 1 (\"n\") of GET /api/agents: its id is missing or not a string"
        );
        let e =
            ServerObject::parse(obj(json!({"id": ".."})), || "a tool".into()).expect_err("dots");
        assert!(e.to_string().contains("'.'"), "{e}");
        let e = ServerObject::parse_list(
            vec![obj(json!({"id": "..", "name": "end_call"}))],
            "the list",
        )
        .expect_err("dots");
        assert!(
            e.to_string()
                .starts_with("entry 0 (\"end_call\") of the list: its id"),
            "{e}"
        );
    }
}
