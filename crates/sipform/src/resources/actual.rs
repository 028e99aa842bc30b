//! What refresh read, by kind: the account, the objects of each one-per-restaurant kind (listed
//! per account), and the objects of each many-per-parent kind by parent id.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Resource;
use crate::model::ids::ObjectId;
use crate::remote::ServerObject;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    /// The account found (by state id, else by name); `None` when it must be created.
    pub account: Option<ServerObject>,
    pub singles: BTreeMap<Resource, Vec<ServerObject>>,
    pub children: BTreeMap<(Resource, ObjectId), Vec<ServerObject>>,
}

impl Actual {
    /// The objects of a one-per-restaurant kind.
    pub fn singles(&self, r: Resource) -> &[ServerObject] {
        self.singles.get(&r).map_or(&[], Vec::as_slice)
    }

    /// The objects of a many-per-parent kind under `parent`; `None` when they were not read.
    pub fn children(&self, r: Resource, parent: &ObjectId) -> Option<&[ServerObject]> {
        self.children.get(&(r, parent.clone())).map(Vec::as_slice)
    }

    /// A digest of what was read, to tell whether the server changed between plan and apply.
    /// Secrets never reach [`ServerObject::fields`]; keys are sorted, lists ordered by id.
    pub fn fingerprint(&self) -> String {
        let mut h = Fnv::new();
        let mut feed = |o: &ServerObject| {
            h.write(o.id.as_str().as_bytes());
            h.write(b"=");
            h.write(canonical(&Value::Object(o.fields.clone())).as_bytes());
            h.write(b"\n");
        };
        if let Some(a) = &self.account {
            feed(a);
        }
        for list in self.singles.values().chain(self.children.values()) {
            let mut sorted: Vec<&ServerObject> = list.iter().collect();
            sorted.sort_by(|a, b| a.id.cmp(&b.id));
            for o in sorted {
                feed(o);
            }
        }
        format!("{:016x}", h.0)
    }
}

/// JSON with object keys sorted, for hashing.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, String> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            let inner: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// FNV-1a, 64 bits: stable across builds, unlike `DefaultHasher`.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> ServerObject {
        let o = match v {
            Value::Object(o) => o,
            _ => Default::default(),
        };
        ServerObject::parse(o, String::new).expect("valid").0
    }

    #[test]
    fn fingerprint_ignores_key_order_and_tokens_but_not_values() {
        let mut a = Actual {
            account: Some(obj(json!({"id": "1", "name": "A"}))),
            ..Default::default()
        };
        a.singles.insert(
            Resource::AGENT,
            vec![obj(json!({"id": "x", "aiVoice": "sage", "apiToken": "t1"}))],
        );
        let mut b = a.clone();
        b.account = Some(obj(json!({"name": "A", "id": "1"})));
        b.singles.insert(
            Resource::AGENT,
            vec![obj(json!({"aiVoice": "sage", "id": "x", "apiToken": "t2"}))],
        );
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.singles.insert(
            Resource::AGENT,
            vec![obj(json!({"aiVoice": "alloy", "id": "x"}))],
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
