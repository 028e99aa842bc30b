//! The agent and final customer the template renders for one restaurant.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::ids::RestaurantId;

/// What the template renders for one restaurant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    title = "sipform rendered agent",
    description = "One restaurant's FinalCustomer and Agent, as rendered by templates/agent.yaml.j2."
)]
pub(crate) struct RenderedAgent {
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
