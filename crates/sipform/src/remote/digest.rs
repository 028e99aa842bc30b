//! Digests of server objects: stable across builds and runs (FNV-1a over a canonical form),
//! to tell whether the server changed between plan and apply.

use serde_json::Value;

/// The digest of an object's fields: keys sorted, so the order the server sends them in does
/// not count.
pub(crate) fn object_digest(fields: &serde_json::Map<String, Value>) -> u64 {
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
pub(crate) struct Fnv(pub(crate) u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
