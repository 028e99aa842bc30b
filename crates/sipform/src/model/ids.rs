//! Remote ids as distinct types, so an agent id can never be passed where a tool id is due.
//!
//! The server makes them (UUID strings, 36 characters); sipform never invents one. The platform
//! stores them in `varchar(36)` columns, so [`RemoteId::fits_platform_column`] exists to refuse a
//! longer one before it is written anywhere.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest id the platform's `varchar(36)` columns hold.
pub(crate) const MAX_ID_LEN: usize = 36;

/// Longest id accepted from the server at all (its ids are 36-character UUIDs; the margin lets
/// the platform-column check, not the wire check, explain a slightly longer one).
pub(crate) const MAX_WIRE_ID_LEN: usize = 64;

/// Why a server id was refused where it entered. Ids go into URL paths and state: one made of
/// anything but letters, digits, `-` and `_` (a `..`, a `/`, a `?`) is never used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is missing or not a string")]
    Missing,
    #[error("is empty")]
    Empty,
    #[error("is {0} characters long (a server id has at most {MAX_WIRE_ID_LEN})")]
    TooLong(usize),
    #[error("holds the character {0:?} (a server id holds only letters, digits, '-' and '_')")]
    BadChar(char),
}

/// The one rule every server id passes before sipform uses it.
pub(crate) fn check_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(IdError::BadChar(c));
    }
    if s.len() > MAX_WIRE_ID_LEN {
        return Err(IdError::TooLong(s.len()));
    }
    Ok(())
}

/// Any server-made id, validated where it entered (see [`check_id`]). Plans carry these; each
/// resource kind turns it into its own typed id (`AgentId`, `ToolId`, …) where it needs one.
/// Shared text: a plan, its index and its actions hold the same id many times over, and a
/// copy is a reference count, not an allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectId(std::sync::Arc<str>);

impl schemars::JsonSchema for ObjectId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ObjectId".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": format!("^[A-Za-z0-9_-]{{1,{MAX_WIRE_ID_LEN}}}$"),
        })
    }
}

impl ObjectId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_id(s)?;
        Ok(ObjectId(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ObjectId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        check_id(&s)?;
        Ok(ObjectId(s.into()))
    }
}

impl From<ObjectId> for String {
    fn from(id: ObjectId) -> String {
        id.0.to_string()
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.0)
    }
}

macro_rules! remote_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl RemoteId for $name {
            fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<&ObjectId> for $name {
            fn from(id: &ObjectId) -> Self {
                $name(id.as_str().to_string())
            }
        }

        impl $name {
            /// The id as the kind-independent form plans carry. Fails only for an id that never
            /// came from the server (a hand-edited state file).
            pub fn to_object_id(&self) -> Result<ObjectId, IdError> {
                ObjectId::parse(&self.0)
            }
        }
    };
}

/// Common behaviour of every server-made id.
pub(crate) trait RemoteId {
    fn as_str(&self) -> &str;

    /// Whether the id fits the platform's `varchar(36)` columns.
    fn fits_platform_column(&self) -> bool {
        self.as_str().chars().count() <= MAX_ID_LEN
    }
}

remote_id!(
    /// `Account.id`.
    AccountId
);
remote_id!(
    /// `FinalCustomer.id`.
    FinalCustomerId
);
remote_id!(
    /// `Agent.id`.
    AgentId
);
remote_id!(
    /// `ToolConfig.id`.
    ToolId
);
remote_id!(
    /// `PhoneLine.id`.
    PhoneLineId
);
remote_id!(
    /// The platform's `restaurants.id`: not a server id, but an opaque key all the same.
    RestaurantId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_are_checked_where_they_enter() {
        assert!(ObjectId::parse("3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01").is_ok());
        assert!(ObjectId::parse("t-0205").is_ok());
        assert_eq!(ObjectId::parse(".."), Err(IdError::BadChar('.')));
        assert_eq!(ObjectId::parse("a/b"), Err(IdError::BadChar('/')));
        assert_eq!(ObjectId::parse(""), Err(IdError::Empty));
        assert_eq!(ObjectId::parse(&"a".repeat(65)), Err(IdError::TooLong(65)));
        let parsed: Result<ObjectId, _> = serde_json::from_str("\"x?y\"");
        assert!(parsed.is_err(), "deserializing validates too");
    }

    #[test]
    fn a_37_character_id_does_not_fit() {
        let ok = AgentId::new("0".repeat(36));
        let long = AgentId::new("0".repeat(37));
        assert!(ok.fits_platform_column());
        assert!(!long.fits_platform_column());
    }
}
