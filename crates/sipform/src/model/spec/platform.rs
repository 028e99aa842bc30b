//! `platform:` of `sipform.yaml`: the platform's API document the tools are checked against
//! (`contract`), and the findings the project accepts.

use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `platform:` of `sipform.yaml`: the platform the tools call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformConfig {
    /// An OpenAPI 3 document (YAML or JSON) of the platform's routes the tools call, relative
    /// to the project. When set, `validate` checks every tool's request against it; when
    /// absent, no contract check is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<PathBuf>,
    /// Findings of the contract check the project accepts, each with its reason: reported in
    /// `validate` as warnings and listed in every plan, never silently dropped. A waiver that
    /// matches nothing is a warning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waivers: Vec<Waiver>,
}

impl PlatformConfig {
    pub fn is_empty(&self) -> bool {
        self.openapi.is_none() && self.waivers.is_empty()
    }
}

/// One accepted finding: a tool, optionally narrowed to one check and one subject (a
/// parameter, a key, a field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    /// The tool's name.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]{0,63}$"))]
    pub tool: String,
    /// Only this check (every check of the tool when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckKind>,
    /// Only this subject of the check: the parameter, query parameter, body key or response
    /// field it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Why the finding is accepted: shown in every plan.
    #[schemars(length(min = 1))]
    pub reason: String,
}

impl Waiver {
    /// Whether this waiver covers a finding of `check` on `tool` about `subject`.
    pub fn covers(&self, tool: &str, check: CheckKind, subject: Option<&str>) -> bool {
        self.tool == tool
            && self.check.is_none_or(|c| c == check)
            && self.subject.as_deref().is_none_or(|s| subject == Some(s))
    }

    /// One line for a plan's header: `log_new_faq (unknown-route): the reason`.
    pub fn summary(&self) -> String {
        let mut what = self.tool.clone();
        match (&self.check, &self.subject) {
            (Some(c), Some(s)) => what.push_str(&format!(" ({c} `{s}`)")),
            (Some(c), None) => what.push_str(&format!(" ({c})")),
            (None, Some(s)) => what.push_str(&format!(" (`{s}`)")),
            (None, None) => {}
        }
        format!("{what}: {}", self.reason)
    }
}

/// What a finding is about; the name a waiver uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// The tool's path is not a route of the document.
    UnknownRoute,
    /// The route exists but does not answer the tool's method.
    MethodNotAllowed,
    /// A query parameter the route does not read.
    UnknownQueryParameter,
    /// A query parameter the route requires is not sent.
    MissingQueryParameter,
    /// A body key the route does not read.
    UnknownBodyKey,
    /// A body key the route requires is not sent.
    MissingBodyKey,
    /// A `$res.x` read (contextUpdates, extraCostResponseField, responseMapping) that the
    /// route's answers do not have.
    UnknownResponseField,
    /// A parameter asked of the voice model that the request never sends.
    DeadParameter,
    /// The tool's URL cannot be read as the platform's path and query.
    BadUrl,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::UnknownRoute => "unknown-route",
            CheckKind::MethodNotAllowed => "method-not-allowed",
            CheckKind::UnknownQueryParameter => "unknown-query-parameter",
            CheckKind::MissingQueryParameter => "missing-query-parameter",
            CheckKind::UnknownBodyKey => "unknown-body-key",
            CheckKind::MissingBodyKey => "missing-body-key",
            CheckKind::UnknownResponseField => "unknown-response-field",
            CheckKind::DeadParameter => "dead-parameter",
            CheckKind::BadUrl => "bad-url",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
