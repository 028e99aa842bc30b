//! `sipform.yaml`: the project's settings as written.

use std::path::PathBuf;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{default_true, is_false};

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
    #[serde(default, skip_serializing_if = "super::PlatformConfig::is_empty")]
    pub platform: super::PlatformConfig,
    /// `sipform controller`'s own settings.
    #[serde(default, skip_serializing_if = "ControllerConfig::is_empty")]
    pub controller: ControllerConfig,
    /// How much of the fleet one plan may delete, deactivate or change before `apply` and
    /// the controller refuse it (`--allow-changes N` overrides).
    #[serde(default, skip_serializing_if = "super::GuardrailsConfig::is_empty")]
    pub guardrails: super::GuardrailsConfig,
    /// Where the controller's notifications go (a webhook).
    #[serde(default, skip_serializing_if = "super::NotifyConfig::is_empty")]
    pub notify: super::NotifyConfig,
    /// When existing agents may be updated (each restaurant's own time zone), and how long an
    /// update waits for live calls to end.
    #[serde(default, skip_serializing_if = "super::WindowsConfig::is_empty")]
    pub windows: super::WindowsConfig,
    /// How a change of existing agents reaches the fleet: a canary, then waves
    /// (`docs/rollout.md`). Absent: every change goes out in one apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<super::RolloutPolicy>,
}

/// `controller:` of `sipform.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// A git repository the controller follows: its tools, template and settings come from
    /// the branch's newest valid commit instead of the project folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceConfig>,
}

impl ControllerConfig {
    pub fn is_empty(&self) -> bool {
        self.source.is_none()
    }
}

/// `controller.source:`: the repository, the branch, how often it is fetched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A path (relative to the project) or URL `git fetch` understands; credentials come from
    /// the operator's git configuration (credential helpers, SSH keys), never from here.
    #[schemars(length(min = 1))]
    pub git: String,
    #[serde(default = "default_branch")]
    #[schemars(length(min = 1))]
    pub branch: String,
    /// How often the branch is fetched (`30s`, `2m`); `POST /v1/reload` fetches at once.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = r"^[0-9]+ *(ms|s|m|h)?$"))]
    pub interval: String,
    /// The project's folder inside the repository (its root when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

fn default_branch() -> String {
    "main".into()
}

fn default_interval() -> String {
    "30s".into()
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

impl InventoryConfig {
    /// The folder of restaurant files, for a files inventory (the offline checks read it
    /// directly; every other reader goes through `inventory::open`).
    pub(crate) fn files_dir(&self) -> Option<&std::path::Path> {
        match self {
            InventoryConfig::Files { path } => Some(path),
            InventoryConfig::Database { .. } => None,
        }
    }
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig::Files {
            path: default_restaurants_dir(),
        }
    }
}
