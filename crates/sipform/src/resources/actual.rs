//! What refresh read, by kind: the account, the objects of each one-per-restaurant kind (listed
//! per account), and the objects of each many-per-parent kind by parent id.

use std::collections::BTreeMap;

use super::Resource;
use crate::model::ids::ObjectId;
use crate::remote::digest::Fnv;
use crate::remote::ServerObject;

/// What refresh read under parent objects: by child kind and parent id.
pub(crate) type Children = BTreeMap<(Resource, ObjectId), Vec<ServerObject>>;

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

    /// Adds one object of a one-per-restaurant kind.
    pub(crate) fn add_single(&mut self, r: Resource, o: ServerObject) {
        self.singles.entry(r).or_default().push(o);
    }

    /// Replaces every object of a kind (or of the account's own lists: its billing plans).
    pub(crate) fn set_singles(&mut self, r: Resource, list: Vec<ServerObject>) {
        self.singles.insert(r, list);
    }

    /// Forgets every object but the account (a new account holds nothing yet).
    pub(crate) fn clear_singles(&mut self) {
        self.singles.clear();
    }

    /// Drops the object `id` of kind `r`.
    pub(crate) fn remove_single(&mut self, r: Resource, id: &ObjectId) {
        if let Some(list) = self.singles.get_mut(&r) {
            list.retain(|o| &o.id != id);
        }
    }

    /// The kinds whose objects it holds, with them.
    pub(crate) fn singles_by_kind(&self) -> impl Iterator<Item = (Resource, &[ServerObject])> {
        self.singles.iter().map(|(r, l)| (*r, l.as_slice()))
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
    pub(crate) fn fingerprint_with(
        &self,
        children: &BTreeMap<(Resource, ObjectId), u64>,
    ) -> String {
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
pub(crate) fn list_digest(list: &[ServerObject]) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
