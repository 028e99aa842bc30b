//! What refresh read, by kind: the account, the objects of each one-per-restaurant kind (listed
//! per account), and the objects of each many-per-parent kind by parent id.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Resource;
use crate::model::ids::ObjectId;
use crate::remote::ServerObject;

/// What refresh read under parent objects: by child kind and parent id.
pub type Children = BTreeMap<(Resource, ObjectId), Vec<ServerObject>>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    /// The account found (by state id, else by name); `None` when it must be created.
    pub account: Option<ServerObject>,
    pub singles: BTreeMap<Resource, Vec<ServerObject>>,
    pub children: Children,
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
        let digests: BTreeMap<(Resource, ObjectId), u64> = self
            .children
            .iter()
            .map(|(k, list)| (k.clone(), list_digest(list)))
            .collect();
        self.fingerprint_with(&digests)
    }

    /// [`Actual::fingerprint`] with the children lists given by their digests
    /// ([`list_digest`]): a plan that compares children batch by batch keeps only those.
    pub fn fingerprint_with(&self, children: &BTreeMap<(Resource, ObjectId), u64>) -> String {
        let mut h = Fnv::new();
        if let Some(a) = &self.account {
            feed(&mut h, a);
        }
        for list in self.singles.values() {
            feed_sorted(&mut h, list);
        }
        for d in children.values() {
            h.write(&d.to_le_bytes());
        }
        format!("{:016x}", h.0)
    }
}

/// The digest of one list of objects, in id order.
pub fn list_digest(list: &[ServerObject]) -> u64 {
    let mut h = Fnv::new();
    feed_sorted(&mut h, list);
    h.0
}

fn feed_sorted(h: &mut Fnv, list: &[ServerObject]) {
    let mut sorted: Vec<&ServerObject> = list.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for o in sorted {
        feed(h, o);
    }
}

fn feed(h: &mut Fnv, o: &ServerObject) {
    h.write(o.id.as_str().as_bytes());
    h.write(b"=");
    h.write(&o.digest().to_le_bytes());
    h.write(b"\n");
}

/// The digest of an object's fields: keys sorted, so the order the server sends them in does
/// not count.
pub fn object_digest(fields: &serde_json::Map<String, Value>) -> u64 {
    let mut h = Fnv::new();
    canonical_object(fields, &mut h);
    h.0
}

/// Feeds `v` into the hash as JSON with object keys sorted, node by node (no text is built:
/// this runs over every object a plan reads).
fn canonical(v: &Value, h: &mut Fnv) {
    match v {
        Value::Object(m) => canonical_object(m, h),
        Value::Array(a) => {
            h.write(b"[");
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    h.write(b",");
                }
                canonical(x, h);
            }
            h.write(b"]");
        }
        Value::String(s) => {
            h.write(b"\"");
            h.write(&(s.len() as u64).to_le_bytes());
            h.write(s.as_bytes());
        }
        Value::Number(n) => h.write(n.to_string().as_bytes()),
        Value::Bool(b) => h.write(if *b { b"true" } else { b"false" }),
        Value::Null => h.write(b"null"),
    }
}

fn canonical_object(m: &serde_json::Map<String, Value>, h: &mut Fnv) {
    let mut keys: Vec<(&String, &Value)> = m.iter().collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
    h.write(b"{");
    for (i, (k, v)) in keys.into_iter().enumerate() {
        if i > 0 {
            h.write(b",");
        }
        // The key's length first: keys and values cannot run into each other.
        h.write(&(k.len() as u64).to_le_bytes());
        h.write(k.as_bytes());
        h.write(b":");
        canonical(v, h);
    }
    h.write(b"}");
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
