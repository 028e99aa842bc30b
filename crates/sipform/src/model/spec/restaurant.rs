//! A restaurant of the inventory (a file or the platform's row), its phone line, and the rule
//! for its id.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{default_true, ChatMode};
use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::secret::Secret;

/// One row of the platform's `restaurants` table, or one `restaurants/*.yaml` file. Column
/// names are the platform's; a NULL column is an absent key, and the template picks the default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sipform restaurant",
    description = "One restaurant of the inventory."
)]
pub struct Restaurant {
    /// The platform's id: a UUID (8-4-4-4-12 hex digits, either case). It is spliced into
    /// externalSessionUrl and keys state, so nothing else is accepted.
    #[schemars(
        with = "String",
        regex(
            pattern = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
        )
    )]
    pub id: RestaurantId,
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20))]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub contact_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50))]
    pub ai_voice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50))]
    pub timezone: Option<String>,
    #[serde(default)]
    pub delivery_enabled: bool,
    #[serde(default)]
    pub reservation_enabled: bool,
    #[serde(default)]
    pub order_status_enabled: bool,
    #[serde(default)]
    pub transfer_enabled: bool,
    #[serde(default)]
    pub transfer_automatic: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20))]
    pub transfer_phone_number: Option<String>,
    #[serde(default)]
    pub chat_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_mode: Option<ChatMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub chat_title: Option<String>,
    #[serde(default)]
    pub chat_open_on_load: bool,
    #[serde(default = "default_true")]
    pub sip_enabled: bool,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub max_call_duration_sec: Option<u32>,
    /// The phone line routed to the agent (files mode). Its password is never written here:
    /// `sip_password_env` names the environment variable that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_line: Option<PhoneLineSpec>,
    /// What only the platform's tables say (never a file): the row's own links and its phone
    /// line's decrypted password. Not serialized: templates never see it.
    #[serde(skip)]
    #[schemars(skip)]
    pub platform: PlatformRow,
}

/// A restaurant as the platform's database links it (database mode only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlatformRow {
    /// The row's `agent_id`, when set and a valid server id: adoption trusts it first.
    pub agent_id: Option<ObjectId>,
    /// The row's `final_customer_id`, when set and a valid server id.
    pub final_customer_id: Option<ObjectId>,
    /// Its row of the platform's `phone_lines` table (then `phone_line` holds its fields).
    pub phone_line: Option<PlatformLine>,
}

/// One row of the platform's `phone_lines` table, as far as the spec does not hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformLine {
    /// The line's `id`: the PBKDF2 salt, and what a plan's password marker names.
    pub id: String,
    /// The decrypted `sip_password` (none when NULL), or why it cannot be used (naming the
    /// line and the restaurant, never a value).
    pub password: Result<Option<Secret<String>>, String>,
}

/// A restaurant's phone line: the number routed to its agent and the SIP trunk credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneLineSpec {
    /// E.164: `+` and up to 15 digits.
    #[schemars(regex(pattern = r"^\+[1-9][0-9]{1,14}$"))]
    pub phone_number: String,
    /// `sip` when `sip_domain` is set, else `twilio`, when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<PhoneProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_transport: Option<SipTransport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub stun_server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub sip_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub sip_username: Option<String>,
    /// The NAME of the environment variable holding the SIP password (a literal password is
    /// refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    pub sip_password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub twilio_trunk_sid: Option<String>,
    #[serde(default = "default_true")]
    pub is_active: bool,
}

impl PhoneLineSpec {
    /// The provider sent: the one written, else `sip` when a SIP domain is set, else `twilio`.
    pub fn provider(&self) -> PhoneProvider {
        self.provider.unwrap_or(if self.sip_domain.is_some() {
            PhoneProvider::Sip
        } else {
            PhoneProvider::Twilio
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PhoneProvider {
    Sip,
    Twilio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    Udp,
    Tcp,
    Tls,
}

/// Whether `s` has the platform's restaurant id format: a UUID, 8-4-4-4-12 hex digits in
/// either case (the same rule as the schema's pattern for `Restaurant.id`). Inventory ids are
/// tenant data spliced into `externalSessionUrl` and used as state keys: an id like `x?y/../`
/// or `=1+1` must be refused where it enters, never sent.
pub(crate) fn is_restaurant_id(s: &str) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == GROUPS.len()
        && parts
            .iter()
            .zip(GROUPS)
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Why an inventory id is refused, for a diagnostic.
pub fn restaurant_id_problem(s: &str) -> Option<String> {
    (!is_restaurant_id(s)).then(|| {
        format!("{s:?} is not a platform restaurant id (a UUID: 8-4-4-4-12 hex digits); the restaurant is skipped")
    })
}

impl Restaurant {
    /// The platform provisions an agent for a restaurant with SIP or chat enabled.
    pub fn needs_agent(&self) -> bool {
        self.sip_enabled || self.chat_enabled
    }
}

/// `+` then 2 to 15 digits, the first not 0: a phone number as the files' schema, the rows and
/// the phone lines accept it (E.164).
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}
