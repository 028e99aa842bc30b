//! `tool-tests/*.yaml`: cases of one tool's request, run by `sipform test` (`ops::tooltest`).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::HttpMethod;

/// One file of tool tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sipform tool tests",
    description = "tool-tests/*.yaml: cases of one tool's request, checked by `sipform test`."
)]
pub struct ToolTestFile {
    /// The tool's name (as in tools/).
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]{0,63}$"))]
    pub tool: String,
    #[schemars(length(min = 1))]
    pub cases: Vec<ToolTestCase>,
}

/// One call of the tool and what it must send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolTestCase {
    /// Shown on the case's result line.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The id of the restaurant whose agent calls (its config and apiBaseUrl are used).
    #[schemars(length(min = 1))]
    pub restaurant: String,
    /// The model's arguments (`$ai.*`), with their JSON types.
    #[serde(default)]
    pub params: IndexMap<String, Value>,
    /// The call's context (`ctx.*`).
    #[serde(default)]
    pub ctx: IndexMap<String, Value>,
    /// The request expected; absent for a built-in tool (transfer_call, end_call), which must
    /// make none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// Checked only when a platform URL is given (`sipform test --platform URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Live>,
}

/// The request expected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub method: HttpMethod,
    /// The whole URL, with the agent's apiBaseUrl and query values encoded.
    #[schemars(length(min = 1))]
    pub url: String,
    /// Body fields that must equal these (others are not compared); `null` for a field sent
    /// as null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<IndexMap<String, Value>>,
}

/// What the platform must answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Live {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub status: Option<u16>,
    /// Top-level answer fields that must equal these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<IndexMap<String, Value>>,
}
