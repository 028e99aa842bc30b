//! A tool: one ToolConfig, as in `tools/<name>.yaml`, in the server's own field names.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::default_true;

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
    pub(crate) fn needs_value(self) -> bool {
        matches!(self, ConditionOperator::Eq | ConditionOperator::Neq)
    }
}
