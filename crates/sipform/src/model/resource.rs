//! The names of the kinds of server objects, as plans, state and messages carry them. Open:
//! a kind defined outside sipform has a name too ([`Resource::custom`]).

use std::fmt;

/// The name of a kind, as plans and messages carry it (`"finalCustomer"`).
/// Equal, ordered and hashed by name; the label only says how it reads. One pointer: every
/// action of a plan carries one (1.6 million in a fresh plan of 100,000 restaurants).
#[derive(Clone, Copy)]
pub struct Resource(&'static ResourceNames);

/// A kind's names: its wire name, how it reads, and whether an object's name is a key (shown
/// bare) or free text (quoted).
pub struct ResourceNames {
    name: &'static str,
    label: &'static str,
    keyed: bool,
}

impl ResourceNames {
    /// The names of a kind defined outside this crate (see [`Resource::custom`]).
    pub const fn new(name: &'static str, label: &'static str) -> ResourceNames {
        ResourceNames {
            name,
            label,
            keyed: true,
        }
    }
}

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Resource {}

impl PartialOrd for Resource {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Resource {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.name.cmp(other.0.name)
    }
}

impl std::hash::Hash for Resource {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state)
    }
}

impl Resource {
    pub const ACCOUNT: Resource = Resource(&ResourceNames {
        name: "account",
        label: "account",
        keyed: false,
    });
    pub const FINAL_CUSTOMER: Resource = Resource(&ResourceNames {
        name: "finalCustomer",
        label: "final customer",
        keyed: false,
    });
    pub const AGENT: Resource = Resource(&ResourceNames {
        name: "agent",
        label: "agent",
        keyed: false,
    });
    pub const TOOL: Resource = Resource(&ResourceNames {
        name: "tool",
        label: "tool",
        keyed: true,
    });
    /// A final customer's subscription to a billing plan, named by the plan's id.
    pub const SUBSCRIPTION: Resource = Resource(&ResourceNames {
        name: "subscription",
        label: "subscription",
        keyed: true,
    });
    /// A phone line routed to an agent, named by its number (E.164).
    pub const PHONE_LINE: Resource = Resource(&ResourceNames {
        name: "phoneLine",
        label: "phone line",
        keyed: true,
    });
    /// The account's billing plans: read by refresh (the subscriptions' choice), never
    /// planned, so not in [`Resource::BUILTIN`].
    pub const PLAN: Resource = Resource(&ResourceNames {
        name: "plan",
        label: "plan",
        keyed: true,
    });

    /// The kinds a saved plan may name.
    pub(crate) const BUILTIN: [Resource; 6] = [
        Resource::ACCOUNT,
        Resource::FINAL_CUSTOMER,
        Resource::AGENT,
        Resource::TOOL,
        Resource::SUBSCRIPTION,
        Resource::PHONE_LINE,
    ];

    /// A kind defined outside this crate (see `resources::Kinds::with`), by its names:
    /// `const NOTE: Resource = Resource::custom(&ResourceNames::new("note", "note"));`.
    pub const fn custom(names: &'static ResourceNames) -> Resource {
        Resource(names)
    }

    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// How it reads in plans and messages: `final customer`.
    pub fn label(self) -> &'static str {
        self.0.label
    }

    /// How an object of this kind is named in plans: `tool end_call` (its name is a key) or
    /// `agent "Chez Marco"` (its name is free text, quoted).
    pub fn describe(self, name: &str) -> String {
        if self.0.keyed {
            format!("{} {name}", self.0.label)
        } else {
            format!(
                "{} {}",
                self.0.label,
                serde_json::Value::String(name.to_string())
            )
        }
    }

    /// The built-in kind of that wire name.
    pub fn builtin(name: &str) -> Option<Resource> {
        Resource::BUILTIN.into_iter().find(|r| r.0.name == name)
    }
}

impl fmt::Debug for Resource {
    /// `FinalCustomer`, as the old enum printed it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.name.chars();
        if let Some(c) = chars.next() {
            write!(f, "{}{}", c.to_ascii_uppercase(), chars.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl serde::Serialize for Resource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name)
    }
}

impl<'de> serde::Deserialize<'de> for Resource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Resource::builtin(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown resource kind {s:?} (expected one of {})",
                Resource::BUILTIN.map(|r| r.0.name).join(", ")
            ))
        })
    }
}

impl schemars::JsonSchema for Resource {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Resource".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": Resource::BUILTIN.map(|r| r.0.name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_keep_their_wire_names() {
        assert_eq!(
            serde_json::to_string(&Resource::FINAL_CUSTOMER)
                .ok()
                .as_deref(),
            Some("\"finalCustomer\"")
        );
        assert_eq!(format!("{:?}", Resource::FINAL_CUSTOMER), "FinalCustomer");
        assert!(serde_json::from_str::<Resource>("\"note\"").is_err());
    }
}
