//! The typed model: what a file may say, and what sipform sends.
//!
//! Tool and agent specs use the server's own field names (camelCase), so a spec serializes
//! straight into the request body and a reader of `tools/*.yaml` sees the contract's words.
//! Restaurants use the platform's column names (snake_case); `sipform.yaml` uses snake_case
//! like every other project file a human writes. Every struct denies unknown keys: a typo must
//! fail validation, not vanish.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::secret::Secret;

fn default_true() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

// ---------------------------------------------------------------------------------------------
// ToolConfig
// ---------------------------------------------------------------------------------------------

/// One ToolConfig, as in `tools/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    title = "sipform tool",
    description = "One sip-agent-server ToolConfig."
)]
pub struct ToolSpec {
    /// The function name the model calls; unique per agent.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]{0,63}$"))]
    pub name: String,
    /// Instructions to the phone agent: what the tool does, when to call it, when not to.
    #[schemars(length(min = 1))]
    pub description: String,
    /// JSON Schema of the arguments the model passes (`$ai.*`).
    pub parameters: Parameters,
    /// The HTTP call the server makes; absent or null for a built-in tool.
    #[serde(default)]
    pub http: Option<HttpSpec>,
    /// Context keys set from the response (`$res`), readable by later tools as `ctx.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_updates: Option<IndexMap<String, String>>,
    /// The tool is offered on a call only when the agent's config passes this test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// Expression over `$res` giving the extra cost of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_cost_response_field: Option<String>,
    #[serde(default)]
    pub triggers_hangup: bool,
    #[serde(default)]
    pub triggers_transfer: bool,
    #[serde(default)]
    pub mutes_client_audio: bool,
    #[serde(default)]
    pub skip_response_create: bool,
    #[serde(default = "default_true")]
    pub is_enabled: bool,
    /// Position in the agent's tool list; unique per agent.
    #[schemars(range(min = 0))]
    pub sort_order: i64,
}

/// The JSON Schema object describing a tool's arguments. Only `type: object` is allowed at the
/// top, as the model's function-calling API requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parameters {
    #[serde(rename = "type")]
    pub kind: ObjectType,
    #[serde(default)]
    pub properties: IndexMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_properties: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    Object,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSpec {
    pub method: HttpMethod,
    /// An expression (`={{BASE_URL}}/api/…`) or an absolute URL.
    #[schemars(length(min = 1))]
    pub url: String,
    /// Request body: each value an expression or a literal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_template: Option<IndexMap<String, Value>>,
    /// Fixed answer given to the model instead of the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mapping: Option<IndexMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// A key of the agent's `config`.
    #[schemars(length(min = 1))]
    pub config_key: String,
    pub operator: ConditionOperator,
    /// Compared with `config[configKey]` by `eq` / `neq`; ignored by `truthy` / `falsy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConditionOperator {
    Eq,
    Neq,
    Truthy,
    Falsy,
}

impl ConditionOperator {
    /// `eq` and `neq` compare with a value; the others look at the key alone.
    pub fn needs_value(self) -> bool {
        matches!(self, ConditionOperator::Eq | ConditionOperator::Neq)
    }
}

// ---------------------------------------------------------------------------------------------
// Agent and final customer (rendered from templates/agent.yaml.j2)
// ---------------------------------------------------------------------------------------------

/// What the template renders for one restaurant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    title = "sipform rendered agent",
    description = "One restaurant's FinalCustomer and Agent, as rendered by templates/agent.yaml.j2."
)]
pub struct RenderedAgent {
    pub final_customer: FinalCustomerSpec,
    pub agent: AgentSpec,
}

/// A FinalCustomer: the billing entity, one per restaurant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FinalCustomerSpec {
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// ISO 4217 code.
    #[schemars(regex(pattern = r"^[A-Z]{3}$"))]
    pub currency: String,
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub cost_margin_pct: f64,
    pub is_active: bool,
}

/// An Agent's managed fields: every field the contract lets a client set, except the two ids
/// (`accountId`, `finalCustomerId`) that apply fills in from its dependencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSpec {
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Usually `={{data.systemPrompt}}`: the prompt comes from externalSessionUrl.
    pub base_prompt: String,
    pub ai_model: String,
    #[schemars(length(min = 1, max = 50))]
    pub ai_voice: String,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub vad_threshold: f64,
    #[schemars(range(min = 0))]
    pub vad_silence_ms: u32,
    #[schemars(range(min = 0))]
    pub vad_prefix_padding_ms: u32,
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: f64,
    pub transport_type: TransportType,
    /// IANA time zone name.
    #[schemars(regex(pattern = r"^(UTC|[A-Za-z_]+(/[A-Za-z0-9_+\-]+)+)$"))]
    pub timezone: String,
    /// The platform's base URL: what `{{BASE_URL}}` means in tools.
    #[schemars(regex(pattern = r"^https?://[^\s/]+"))]
    pub api_base_url: String,
    #[schemars(range(min = 1, max = 86400))]
    pub max_call_duration_sec: u32,
    pub on_call_end_webhook: String,
    pub external_session_url: String,
    pub chat_enabled: bool,
    pub chat_mode: ChatMode,
    #[serde(default)]
    pub chat_title: Option<String>,
    pub chat_open_on_load: bool,
    pub config: AgentConfig,
    pub is_active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransportType {
    SipBridge,
    Twilio,
    Webrtc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChatMode {
    Text,
    SttTts,
    Realtime,
}

/// The agent's `config`: the keys tools' conditions and `config.*` expressions read. Open by
/// design (a template may add keys); the five the platform uses are required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    pub restaurant_id: RestaurantId,
    pub delivery_enabled: bool,
    pub reservation_enabled: bool,
    pub order_status_enabled: bool,
    pub transfer_enabled: bool,
    #[serde(flatten)]
    pub extra: IndexMap<String, Value>,
}

// ---------------------------------------------------------------------------------------------
// Restaurant (the inventory)
// ---------------------------------------------------------------------------------------------

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
pub fn is_restaurant_id(s: &str) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Project (sipform.yaml)
// ---------------------------------------------------------------------------------------------

/// `sipform.yaml`: where the server is, which account, where state and restaurants live.
/// Environment variables and flags override it (see `settings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sipform project",
    description = "sipform.yaml: project settings."
)]
pub struct Project {
    /// This project's id: the state it opens must have been written by the same project (and
    /// account), so two projects pointed at one state backend never read each other's ids.
    /// When absent, the account name is the project's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub project: Option<String>,
    #[serde(default)]
    pub server: ServerConfig,
    pub account: AccountSpec,
    #[serde(default)]
    pub app: AppConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub inventory: InventoryConfig,
    /// Folder of tool files, relative to the project.
    #[serde(default = "default_tools_dir")]
    pub tools_dir: PathBuf,
    /// The agent template, relative to the project.
    #[serde(default = "default_template")]
    pub template: PathBuf,
    /// Which plan each final customer is subscribed to (the platform bills by subscription).
    #[serde(default)]
    pub billing: BillingConfig,
    /// Where each restaurant's phone line comes from.
    #[serde(default)]
    pub phone_lines: PhoneLinesConfig,
    /// The platform the tools call: its OpenAPI document and the accepted findings.
    #[serde(
        default,
        skip_serializing_if = "crate::contract::PlatformConfig::is_empty"
    )]
    pub platform: crate::contract::PlatformConfig,
}

/// `phone_lines:` of `sipform.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneLinesConfig {
    #[serde(default)]
    pub source: PhoneLineSource,
}

/// `block`: a restaurant's `phone_line:` block, none without one. `restaurant_phone`: the
/// platform's old behaviour, a line for the restaurant's own `phone`, provider `twilio`, no
/// credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhoneLineSource {
    #[default]
    Block,
    RestaurantPhone,
}

/// Billing: the plan every final customer is subscribed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// `default`: the account's first active plan that is not an option, by `sortOrder` (the
    /// platform's rule); `none`: sipform subscribes no one; anything else: the name of an
    /// active plan of the account. Changing it replaces subscriptions only with
    /// `--allow-replace`.
    #[serde(default = "default_plan")]
    #[schemars(length(min = 1))]
    pub plan: String,
}

fn default_plan() -> String {
    "default".to_string()
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            plan: default_plan(),
        }
    }
}

fn default_tools_dir() -> PathBuf {
    PathBuf::from("tools")
}

fn default_template() -> PathBuf {
    PathBuf::from("templates/agent.yaml.j2")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Overridden by `SIP_AGENT_SERVER_URL` (or `SIP_AGENT_INTERNAL_URL`).
    #[serde(default = "default_server_url")]
    pub url: String,
    /// Per-request timeout, as the platform uses.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_sec: u64,
    /// The largest answer body read from the server, in bytes: a bigger one is an error, so a
    /// broken or hostile server cannot exhaust memory. The default (256 MiB) holds the agents
    /// list of about 150,000 restaurants.
    #[serde(default = "default_max_answer_bytes")]
    #[schemars(range(min = 1024))]
    pub max_answer_bytes: u64,
    /// How long one request may spend waiting on a throttling server (429 + `Retry-After`)
    /// before the run gives up.
    #[serde(default = "default_max_throttle_secs")]
    #[schemars(range(min = 1, max = 86400))]
    pub max_throttle_secs: u64,
}

fn default_server_url() -> String {
    "http://localhost:4000".to_string()
}

fn default_timeout() -> u64 {
    10
}

fn default_max_answer_bytes() -> u64 {
    256 * 1024 * 1024
}

fn default_max_throttle_secs() -> u64 {
    300
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            url: default_server_url(),
            timeout_sec: default_timeout(),
            max_answer_bytes: default_max_answer_bytes(),
            max_throttle_secs: default_max_throttle_secs(),
        }
    }
}

/// The platform's one Account, found by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    #[schemars(length(min = 3, max = 255))]
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The platform's base URL; overridden by `NEXT_PUBLIC_APP_URL`.
    #[serde(default = "default_app_url")]
    pub url: String,
}

fn default_app_url() -> String {
    "http://localhost:3000".to_string()
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            url: default_app_url(),
        }
    }
}

/// Where remote ids are kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum StateConfig {
    /// A JSON file (default `sipform.state.json`), written atomically, mode 0600.
    File {
        #[serde(default = "default_state_path")]
        path: PathBuf,
        /// Keep agents' apiTokens in state. Off by default: a token is a credential.
        #[serde(default, skip_serializing_if = "is_false")]
        store_tokens: bool,
    },
    /// A table in a SQLite database (`sqlite://path`).
    Sqlite {
        url: String,
        #[serde(default, skip_serializing_if = "is_false")]
        store_tokens: bool,
    },
    /// A table in PostgreSQL (`postgres://…`), guarded by an advisory lock.
    Postgres {
        /// Defaults to `DATABASE_URL` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        store_tokens: bool,
    },
}

fn default_state_path() -> PathBuf {
    PathBuf::from("sipform.state.json")
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig::File {
            path: default_state_path(),
            store_tokens: false,
        }
    }
}

impl StateConfig {
    pub fn store_tokens(&self) -> bool {
        match self {
            StateConfig::File { store_tokens, .. }
            | StateConfig::Sqlite { store_tokens, .. }
            | StateConfig::Postgres { store_tokens, .. } => *store_tokens,
        }
    }
}

/// Where restaurants come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "source", rename_all = "lowercase", deny_unknown_fields)]
pub enum InventoryConfig {
    /// One YAML file per restaurant in a folder.
    Files {
        #[serde(default = "default_restaurants_dir")]
        path: PathBuf,
    },
    /// The platform's `restaurants` table (`sqlite://…` or `postgres://…`; `DATABASE_URL` when
    /// absent). apply writes the ids back to each row.
    Database {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default = "default_table")]
        table: String,
        /// Column name overrides, platform column → actual column.
        #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
        columns: IndexMap<String, String>,
        /// Also write `agent_api_token` and `agent_public_token` back.
        #[serde(default = "default_true")]
        write_back_tokens: bool,
    },
}

fn default_restaurants_dir() -> PathBuf {
    PathBuf::from("restaurants")
}

fn default_table() -> String {
    "restaurants".to_string()
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig::Files {
            path: default_restaurants_dir(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Desired state: what validate hands to plan
// ---------------------------------------------------------------------------------------------

/// Everything sipform wants to exist, after load, render and validate. The pure input of diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub account: AccountSpec,
    /// In inventory order; ids unique. Every restaurant of the inventory, including those that
    /// need no agent (see [`DesiredRestaurant::create_if_missing`]).
    pub restaurants: Vec<DesiredRestaurant>,
    /// Restaurants of the inventory left out of this run because their own input is invalid
    /// (reported as skipped): their objects are left as they are, never planned as gone.
    pub held: BTreeSet<RestaurantId>,
    /// A restaurant was left out whose id could not be read: then no restaurant in state may be
    /// taken for one gone from the inventory.
    pub hold_all: bool,
}

impl Desired {
    /// Whether restaurant `id`, absent from [`Desired::restaurants`], must be left alone rather
    /// than planned as gone from the inventory.
    pub fn holds(&self, id: &RestaurantId) -> bool {
        self.hold_all || self.held.contains(id)
    }
}

/// One restaurant's objects: its final customer, its agent and the agent's tools.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredRestaurant {
    pub id: RestaurantId,
    pub final_customer: FinalCustomerSpec,
    pub agent: AgentSpec,
    /// Sorted by sortOrder; one list shared by every restaurant.
    pub tools: SharedTools,
    /// False for a restaurant with neither SIP nor chat enabled: its objects are not created,
    /// but an agent it already has is updated to the rendered spec (which is inactive), never
    /// deleted.
    pub create_if_missing: bool,
    /// `sipform.yaml`'s `billing.plan` (`default`, `none` or a plan name): resolved against
    /// the account's plans once refresh has read them.
    pub billing_plan: String,
    /// Its phone line, if it has one, with the password read from the environment at
    /// validate time (never printed: [`Secret`]).
    pub phone_line: Option<DesiredPhoneLine>,
    /// The agent and final customer the platform's row names (database mode): adoption
    /// trusts them before any match by `restaurantId` or by name.
    #[serde(skip)]
    pub platform_agent: Option<ObjectId>,
    #[serde(skip)]
    pub platform_final_customer: Option<ObjectId>,
}

/// The project's tools, built once and shared by every restaurant (a copy each made memory grow
/// by tens of kilobytes per restaurant), with the request body of each, made on first use.
/// Reads as a slice of [`ToolSpec`].
#[derive(Debug, Clone, Default)]
pub struct SharedTools(Arc<ToolSet>);

#[derive(Debug, Default)]
struct ToolSet {
    specs: Vec<ToolSpec>,
    bodies: OnceLock<Vec<Value>>,
}

impl SharedTools {
    /// The body of each tool, in order, made by `make` the first time (the same `make` for
    /// every call: `resources::tool::body`).
    pub fn bodies(&self, make: impl Fn(&ToolSpec) -> Value) -> &[Value] {
        self.0
            .bodies
            .get_or_init(|| self.0.specs.iter().map(make).collect())
    }
}

impl From<Vec<ToolSpec>> for SharedTools {
    fn from(specs: Vec<ToolSpec>) -> Self {
        SharedTools(Arc::new(ToolSet {
            specs,
            bodies: OnceLock::new(),
        }))
    }
}

impl std::ops::Deref for SharedTools {
    type Target = [ToolSpec];

    fn deref(&self) -> &[ToolSpec] {
        &self.0.specs
    }
}

impl PartialEq for SharedTools {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.specs == other.0.specs
    }
}

impl Serialize for SharedTools {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.specs.serialize(s)
    }
}

/// A phone line as wanted: the spec (provider resolved) and its password.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredPhoneLine {
    pub spec: PhoneLineSpec,
    /// Never serialized: `Secret` serializes its value, so it is skipped here.
    #[serde(skip)]
    pub password: Option<crate::model::secret::Secret<String>>,
    /// The platform's line id when the password comes from its `phone_lines` table: the plan
    /// names it (`{"fromPlatform": id}`), apply finds the value in [`crate::crypto::recall`].
    pub platform_line: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_defaults_fill_in() {
        let t: ToolSpec = serde_json::from_value(serde_json::json!({
            "name": "end_call",
            "description": "Raccrocher.",
            "parameters": {"type": "object", "properties": {}},
            "triggersHangup": true,
            "sortOrder": 12
        }))
        .unwrap();
        assert!(t.is_enabled);
        assert!(t.http.is_none());
        assert!(!t.mutes_client_audio);
    }

    #[test]
    fn unknown_tool_key_is_refused() {
        let r: Result<ToolSpec, _> = serde_json::from_value(serde_json::json!({
            "name": "x", "description": "d", "parameters": {"type": "object"},
            "sortOrder": 1, "sortOrdre": 2
        }));
        assert!(r.is_err());
    }

    #[test]
    fn state_config_is_tagged_by_backend() {
        let s: StateConfig =
            serde_json::from_value(serde_json::json!({"backend": "file"})).unwrap();
        assert_eq!(s, StateConfig::default());
        let bad: Result<StateConfig, _> =
            serde_json::from_value(serde_json::json!({"backend": "file", "url": "x"}));
        assert!(bad.is_err());
    }

    #[test]
    fn restaurant_ids_are_uuids() {
        assert!(is_restaurant_id("3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01"));
        assert!(is_restaurant_id("3F6C2A1E-8B4D-4C59-9A2E-1D7F5B6C8E01"));
        for bad in [
            "x?y/../",
            "=1+1",
            "r-001",
            "",
            "3f6c2a1e8b4d4c599a2e1d7f5b6c8e01",
            "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e0g",
            "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01-",
        ] {
            assert!(!is_restaurant_id(bad), "{bad}");
        }
    }

    #[test]
    fn agent_config_keeps_extra_keys() {
        let c: AgentConfig = serde_json::from_value(serde_json::json!({
            "restaurantId": "r1", "deliveryEnabled": true, "reservationEnabled": false,
            "orderStatusEnabled": false, "transferEnabled": false, "vip": true
        }))
        .unwrap();
        assert_eq!(c.extra.get("vip"), Some(&Value::Bool(true)));
    }
}
