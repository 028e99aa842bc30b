//! Short texts that repeat across restaurants (the names of the twelve tools in every
//! restaurant's state), held once: state of 100,000 restaurants kept 1.2 million copies of
//! twelve names.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many distinct texts the process-wide table keeps at most: past it, a new text is
/// held on its own (correct, only not shared), so hostile input cannot grow the table.
const MAX_INTERNED: usize = 4096;

/// A text shared with every equal one made through [`Interned::new`]; compares, orders and
/// hashes as its text, and is (de)serialized as a plain string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interned(Arc<str>);

fn table() -> &'static Mutex<HashSet<Arc<str>>> {
    static TABLE: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
    TABLE.get_or_init(Mutex::default)
}

impl Interned {
    /// The shared copy of `s` (made and kept the first time, while the table has room).
    pub fn new(s: &str) -> Interned {
        let mut t = table().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = t.get(s) {
            return Interned(held.clone());
        }
        let made: Arc<str> = Arc::from(s);
        if t.len() < MAX_INTERNED {
            t.insert(made.clone());
        }
        Interned(made)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Interned {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Interned {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Interned {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Interned {
    fn from(s: &str) -> Self {
        Interned::new(s)
    }
}

impl From<&String> for Interned {
    fn from(s: &String) -> Self {
        Interned::new(s)
    }
}

impl From<String> for Interned {
    fn from(s: String) -> Self {
        Interned::new(&s)
    }
}

impl PartialEq<str> for Interned {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Interned {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl fmt::Display for Interned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Interned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Interned {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Interned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Interned;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Interned, E> {
                Ok(Interned::new(s))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_allocation_and_behave_as_strings() {
        let a = Interned::new("confirm_order_interned_test");
        let b: Interned =
            serde_json::from_str("\"confirm_order_interned_test\"").expect("a string");
        assert!(Arc::ptr_eq(&a.0, &b.0), "parsed text shares the first copy");
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "confirm_order_interned_test");
        assert_eq!(
            serde_json::to_string(&b).expect("json"),
            "\"confirm_order_interned_test\""
        );
        assert_eq!(format!("{a:?}"), "\"confirm_order_interned_test\"");
        let other = Interned::new("end_call_interned_test");
        assert!(!Arc::ptr_eq(&a.0, &other.0));
        assert!(a < other, "ordered as its text");
        let mut map: litemap::LiteMap<Interned, i32> = litemap::LiteMap::new();
        map.insert(a.clone(), 1);
        assert_eq!(
            map.get("confirm_order_interned_test"),
            Some(&1),
            "looked up by &str"
        );
        assert!(serde_json::from_str::<Interned>("3").is_err());
    }
}
