//! A request body as a plan holds it: parsed once when many actions share it, as compact JSON
//! text when it is one restaurant's own.
//!
//! A fresh plan of 100,000 restaurants holds 200,000 bodies of its own (an agent's and a
//! final customer's each). As `serde_json::Value` trees (with `preserve_order`) they took
//! about seven times the room of their text, and most of a fresh apply's memory; each is
//! parsed again only when it is sent or shown. A tool's body is the same in every restaurant:
//! it stays one tree, shared, and is never parsed again.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

#[derive(Clone)]
pub struct Body(Arc<Repr>);

enum Repr {
    Tree(Value),
    /// Compact JSON, written by [`Body::packed`] from a `Value`: it always parses back.
    Text(Box<str>),
}

impl Body {
    /// A body many actions hold (clones share it), kept parsed.
    pub fn shared(value: Value) -> Body {
        Body(Arc::new(Repr::Tree(value)))
    }

    /// A body of one action, kept as its JSON text.
    pub(crate) fn packed(value: &Value) -> Body {
        // A `Value`'s keys are strings: writing it to a string cannot fail.
        match serde_json::to_string(value) {
            Ok(text) => Body(Arc::new(Repr::Text(text.into_boxed_str()))),
            Err(_) => Body::shared(value.clone()),
        }
    }

    /// The body parsed (borrowed when it is kept parsed).
    pub fn value(&self) -> Cow<'_, Value> {
        match &*self.0 {
            Repr::Tree(v) => Cow::Borrowed(v),
            // Text only `packed` wrote, from a `Value`: it parses back to the same value.
            Repr::Text(t) => Cow::Owned(serde_json::from_str(t).unwrap_or(Value::Null)),
        }
    }

    /// Whether two bodies are one (a shared body held by two actions).
    pub(crate) fn ptr_eq(a: &Body, b: &Body) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// Whether it is kept as text (see the module's doc).
    pub fn is_packed(&self) -> bool {
        matches!(&*self.0, Repr::Text(_))
    }
}

impl From<Value> for Body {
    fn from(value: Value) -> Body {
        Body::shared(value)
    }
}

/// Equal when their JSON values are (key order aside, as for `Value`).
impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        if Body::ptr_eq(self, other) {
            return true;
        }
        if let (Repr::Text(a), Repr::Text(b)) = (&*self.0, &*other.0) {
            if a == b {
                return true;
            }
        }
        self.value() == other.value()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_packed_body_gives_its_value_back_and_equals_the_same_value_kept_parsed() {
        let v = json!({"name": "Chez Marco", "config": {"restaurantId": "r-1", "n": [1, 2.5, null]}, "é": "ü"});
        let packed = Body::packed(&v);
        assert!(packed.is_packed());
        assert_eq!(*packed.value(), v);
        assert_eq!(packed, Body::shared(v.clone()));
        // Key order aside, like `Value`.
        let reordered = json!({"é": "ü", "config": {"n": [1, 2.5, null], "restaurantId": "r-1"}, "name": "Chez Marco"});
        assert_eq!(packed, Body::packed(&reordered));
        assert_ne!(packed, Body::packed(&json!({"name": "Chez Marco"})));
        let shared = Body::shared(v);
        assert!(!shared.is_packed());
        assert!(Body::ptr_eq(&shared, &shared.clone()));
        assert!(matches!(shared.value(), Cow::Borrowed(_)));
    }
}
