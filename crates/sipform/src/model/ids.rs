//! Remote ids as distinct types, so an agent id can never be passed where a tool id is due.
//!
//! The server makes them (UUID strings, 36 characters); sipform never invents one. The platform
//! stores them in `varchar(36)` columns, so [`RemoteId::fits_platform_column`] exists to refuse a
//! longer one before it is written anywhere.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest id the platform's `varchar(36)` columns hold.
pub const MAX_ID_LEN: usize = 36;

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
    };
}

/// Common behaviour of every server-made id.
pub trait RemoteId {
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
    fn a_37_character_id_does_not_fit() {
        let ok = AgentId::new("0".repeat(36));
        let long = AgentId::new("0".repeat(37));
        assert!(ok.fits_platform_column());
        assert!(!long.fits_platform_column());
    }
}
