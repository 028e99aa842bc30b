//! The names of the kinds of server objects, as plans, state and messages carry them. Open:
//! a kind defined outside sipform has a name too ([`Resource::custom`]).

use std::fmt;

/// The name of a kind, as plans and messages carry it (`"finalCustomer"`).
/// Equal, ordered and hashed by name; the label only says how it reads.
#[derive(Clone, Copy)]
pub struct Resource(&'static str, &'static str, bool);

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
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
        self.0.cmp(other.0)
    }
}

impl std::hash::Hash for Resource {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl Resource {
    pub const ACCOUNT: Resource = Resource("account", "account", false);
    pub const FINAL_CUSTOMER: Resource = Resource("finalCustomer", "final customer", false);
    pub const AGENT: Resource = Resource("agent", "agent", false);
    pub const TOOL: Resource = Resource("tool", "tool", true);
    /// A final customer's subscription to a billing plan, named by the plan's id.
    pub const SUBSCRIPTION: Resource = Resource("subscription", "subscription", true);
    /// A phone line routed to an agent, named by its number (E.164).
    pub const PHONE_LINE: Resource = Resource("phoneLine", "phone line", true);
    /// The account's billing plans: read by refresh (the subscriptions' choice), never
    /// planned, so not in [`Resource::BUILTIN`].
    pub const PLAN: Resource = Resource("plan", "plan", true);

    /// The kinds a saved plan may name.
    pub const BUILTIN: [Resource; 6] = [
        Resource::ACCOUNT,
        Resource::FINAL_CUSTOMER,
        Resource::AGENT,
        Resource::TOOL,
        Resource::SUBSCRIPTION,
        Resource::PHONE_LINE,
    ];

    /// A kind defined outside this crate (see `resources::Kinds::with`): its wire name and
    /// how it reads in plans.
    pub const fn custom(name: &'static str, label: &'static str) -> Resource {
        Resource(name, label, true)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// How it reads in plans and messages: `final customer`.
    pub fn label(self) -> &'static str {
        self.1
    }

    /// How an object of this kind is named in plans: `tool end_call` (its name is a key) or
    /// `agent "Chez Marco"` (its name is free text, quoted).
    pub fn describe(self, name: &str) -> String {
        if self.2 {
            format!("{} {name}", self.1)
        } else {
            format!("{} {}", self.1, serde_json::Value::String(name.to_string()))
        }
    }

    /// The built-in kind of that wire name.
    pub fn builtin(name: &str) -> Option<Resource> {
        Resource::BUILTIN.into_iter().find(|r| r.0 == name)
    }
}

impl fmt::Debug for Resource {
    /// `FinalCustomer`, as the old enum printed it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        if let Some(c) = chars.next() {
            write!(f, "{}{}", c.to_ascii_uppercase(), chars.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl serde::Serialize for Resource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Resource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Resource::builtin(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown resource kind {s:?} (expected one of {})",
                Resource::BUILTIN.map(|r| r.0).join(", ")
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
            "enum": Resource::BUILTIN.map(|r| r.0),
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
