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
    /// Every field but `id` and the secrets; empty once packed ([`ServerObject::pack`]): read
    /// a packed object's lookups through [`ServerObject::get`] or [`ServerObject::lookup`],
    /// the rest through [`ServerObject::all_fields`].
    pub fields: Object,
    /// A packed object's every field as JSON text, their digest, and its lookups.
    packed: Option<Packed>,
}

/// What [`ServerObject::pack`] sets aside.
#[derive(Debug, Clone, PartialEq)]
struct Packed {
    text: Box<str>,
    digest: u64,
    /// The kept fields by path (`name`, `config.restaurantId`): a few pairs, where a map (an
    /// `IndexMap` and its hash table, nested for `config`) took about 1.7 KB per agent.
    lookups: Box<[(&'static str, Value)]>,
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

/// An object's id as the server gave it: a string, checked ([`ObjectId::parse`]).
pub(crate) fn id_of(v: Option<Value>) -> Result<ObjectId, IdError> {
    match v {
        Some(Value::String(s)) => ObjectId::parse(&s),
        _ => Err(IdError::Missing),
    }
}

/// A token field: a secret when it is a string, else none.
pub(crate) fn secret_of(v: Option<Value>) -> Option<Secret<String>> {
    match v {
        Some(Value::String(s)) => Some(Secret::new(s)),
        _ => None,
    }
}

/// The value at a dotted `path` of `o` (`config.restaurantId`).
fn at_path<'a>(o: &'a Object, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = o.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

impl ServerObject {
    /// An object of these fields (already without id and secrets), not packed.
    pub fn new(id: ObjectId, fields: Object) -> Self {
        ServerObject {
            id,
            fields,
            packed: None,
        }
    }

    /// Checks the id and takes the secrets out. `what` names the object in the error.
    pub fn parse(
        mut o: Object,
        what: impl FnOnce() -> String,
    ) -> Result<(Self, Secrets), BadObject> {
        let id = id_of(o.remove("id")).map_err(|source| BadObject {
            what: what(),
            source,
        })?;
        let secrets = Secrets {
            api_token: secret_of(o.remove("apiToken")),
            public_token: secret_of(o.remove("publicToken")),
        };
        o.remove("sipPassword");
        Ok((ServerObject::new(id, o), secrets))
    }

    /// Parses a list answer; the first bad entry fails the whole answer. The error names the
    /// entry by its place and, when it has one, its name.
    pub(crate) fn parse_list(
        list: Vec<Object>,
        what: &str,
    ) -> Result<Vec<ServerObject>, BadObject> {
        list.into_iter()
            .enumerate()
            .map(|(i, o)| Self::parse_entry(i, o, what))
            .collect()
    }

    /// Entry `i` of a list answer, secrets dropped; see [`ServerObject::parse_list`].
    pub(crate) fn parse_entry(i: usize, o: Object, what: &str) -> Result<ServerObject, BadObject> {
        let name = o.get("name").and_then(Value::as_str).map(shown_name);
        Self::parse(o, || match name {
            Some(n) => format!("entry {i} ({n}) of {what}"),
            None => format!("entry {i} of {what}"),
        })
        .map(|(s, _)| s)
    }

    /// An object held from the start of a plan to its end (an agent, 100,000 of them) as text
    /// instead of a tree: a tenth of the memory. The fields at the paths in `keep` stay parsed
    /// for [`ServerObject::get`] and [`ServerObject::lookup`] (`config.restaurantId` keeps
    /// that one field of `config`); the diff reads every field back
    /// ([`ServerObject::all_fields`]) for the one restaurant it compares.
    pub(crate) fn pack(&mut self, keep: &[&'static str]) {
        if self.packed.is_some() {
            return;
        }
        let Ok(text) = serde_json::to_string(&self.fields) else {
            return;
        };
        let digest = super::digest::object_digest(&self.fields);
        let fields = std::mem::take(&mut self.fields);
        let lookups = keep
            .iter()
            .filter_map(|path| Some((*path, at_path(&fields, path)?.clone())))
            .collect();
        self.packed = Some(Packed {
            text: text.into_boxed_str(),
            digest,
            lookups,
        });
    }

    /// Changes the fields with `change`: a packed object is unpacked, changed and packed again
    /// keeping `keep` (the kind's lookup fields), so a cache that holds objects packed stays
    /// packed as writes are confirmed.
    pub(crate) fn update_fields(
        &mut self,
        keep: Option<&[&'static str]>,
        change: impl FnOnce(&mut Object),
    ) {
        if self.packed.is_none() {
            change(&mut self.fields);
            return;
        }
        let mut fields = self.all_fields().into_owned();
        change(&mut fields);
        self.fields = fields;
        self.packed = None;
        if let Some(keep) = keep {
            self.pack(keep);
        }
    }

    pub fn is_packed(&self) -> bool {
        self.packed.is_some()
    }

    /// Every field, parsed back from the text when packed.
    pub(crate) fn all_fields(&self) -> std::borrow::Cow<'_, Object> {
        match &self.packed {
            None => std::borrow::Cow::Borrowed(&self.fields),
            // The text is serde_json's own output: it parses back.
            Some(p) => serde_json::from_str(&p.text)
                .map(std::borrow::Cow::Owned)
                .unwrap_or(std::borrow::Cow::Borrowed(&self.fields)),
        }
    }

    /// The digest of every field ([`super::digest::object_digest`]).
    pub fn digest(&self) -> u64 {
        match &self.packed {
            Some(p) => p.digest,
            None => super::digest::object_digest(&self.fields),
        }
    }

    /// A top-level field; of a packed object, only a kept one.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.packed {
            None => self.fields.get(key),
            Some(_) => self.lookup(key),
        }
    }

    /// The field at a dotted `path` (`config.restaurantId`); of a packed object, only a kept
    /// path.
    pub fn lookup(&self, path: &str) -> Option<&Value> {
        match &self.packed {
            None => at_path(&self.fields, path),
            Some(p) => p.lookups.iter().find(|(k, _)| *k == path).map(|(_, v)| v),
        }
    }

    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
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
    fn a_packed_object_keeps_its_lookups_parsed_and_gives_every_field_back() {
        let whole = json!({"id": "a-1", "name": "Chez A",
                           "config": {"restaurantId": "r1", "deliveryEnabled": true},
                           "basePrompt": "Bonjour", "vadThreshold": 0.5, "apiToken": "t"});
        let (mut o, _) = ServerObject::parse(obj(whole), || "agent".into()).expect("valid");
        let (fields, digest) = (o.fields.clone(), o.digest());
        o.pack(&["name", "config.restaurantId"]);
        assert_eq!(o.name(), Some("Chez A"));
        assert_eq!(o.lookup("config.restaurantId"), Some(&json!("r1")));
        assert_eq!(o.get("config"), None, "only the kept path of config");
        assert_eq!(o.get("basePrompt"), None, "only the lookups stay parsed");
        assert!(o.fields.is_empty());
        assert_eq!(*o.all_fields(), fields);
        assert_eq!(o.digest(), digest);
        assert!(!format!("{o:?}").contains("\"t\""), "no token packed");
        // A field changed before packing changes the digest.
        let (mut other, _) = ServerObject::parse(
            obj(
                json!({"id": "a-1", "name": "Chez A", "config": {"restaurantId": "r1"},
                       "basePrompt": "Bonsoir", "vadThreshold": 0.5}),
            ),
            || "agent".into(),
        )
        .expect("valid");
        other.pack(&["name", "config.restaurantId"]);
        assert_ne!(other.digest(), digest);
    }

    #[test]
    fn a_packed_object_changed_stays_packed_with_the_change() {
        let whole = json!({"id": "a-1", "name": "Chez A", "basePrompt": "Bonjour"});
        let (mut o, _) = ServerObject::parse(obj(whole), || "agent".into()).expect("valid");
        o.pack(&["name"]);
        o.update_fields(Some(&["name"]), |f| {
            f.insert("name".into(), json!("Chez B"));
            f.insert("basePrompt".into(), json!("Bonsoir"));
        });
        assert!(o.is_packed());
        assert_eq!(o.name(), Some("Chez B"), "the lookup follows the change");
        assert_eq!(o.all_fields()["basePrompt"], json!("Bonsoir"));
        let (mut plain, _) =
            ServerObject::parse(obj(json!({"id": "a-2", "name": "x"})), || "agent".into())
                .expect("valid");
        plain.update_fields(Some(&["name"]), |f| {
            f.insert("name".into(), json!("y"));
        });
        assert!(!plain.is_packed(), "an object kept parsed stays parsed");
        assert_eq!(plain.name(), Some("y"));
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
