//! `call`: the exact request sip-agent-server would make for one tool call, built offline with
//! the contract's expression code (the same `validate` checks), and optionally sent.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::Settings;
use crate::contract::request::{self, BuildError, Derived, Request, Scope};
use crate::front::load::{self, LoadedTool};
use crate::front::validate::{self as front_validate, Report};
use crate::model::spec::AgentSpec;

use super::OpsError;

/// The largest answer body kept from the platform.
const MAX_ANSWER: usize = 1 << 20;

/// Why a call cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Ops(Box<OpsError>),
    #[error("no tool named `{0}` in the tools folder")]
    NoSuchTool(String),
    #[error("no restaurant with id `{0}` has an agent to call from")]
    NoSuchRestaurant(String),
    #[error("tool `{tool}` has no parameter `{name}` (its parameters: {known})")]
    UnknownParameter {
        tool: String,
        name: String,
        known: String,
    },
    #[error("parameter `{name}` is {ty}: `{value}` is not valid JSON of that type")]
    BadParameter {
        name: String,
        ty: String,
        value: String,
    },
    #[error("`{0}`: expected KEY=VALUE")]
    NotKeyValue(String),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("sending {method} {url}: {message}")]
    Send {
        method: String,
        url: String,
        message: String,
    },
}

impl From<OpsError> for CallError {
    fn from(e: OpsError) -> Self {
        CallError::Ops(Box::new(e))
    }
}

/// The project's tools and rendered agents, loaded once for any number of calls.
pub(crate) struct Calls {
    pub tools: Vec<LoadedTool>,
    agents: HashMap<String, AgentSpec>,
}

impl Calls {
    /// Loads and renders the project (files or the platform's table), as `validate` does but
    /// without the contract check: a call is how a broken tool is looked at.
    pub async fn load(settings: &Settings) -> Result<Calls, CallError> {
        let env = settings.render_env();
        // The same inventory read as validate's, whichever source it is.
        let source = super::workspace::open_inventory(settings).await?;
        let read = source.read_all(&std::collections::BTreeSet::new()).await;
        let read = read.map_err(|e| super::workspace::read_failed(settings, e))?;
        let restaurants = Some(read);
        let report =
            front_validate::check_inventory(&settings.root, settings.project(), &env, restaurants)
                .and_then(Report::into_strict)
                .map_err(OpsError::from)?;
        let tools =
            load::load_tools(&settings.root.join(&settings.tools_dir)).map_err(OpsError::from)?;
        let agents = report
            .validated
            .desired
            .restaurants
            .into_iter()
            .map(|r| (r.id.to_string(), r.agent))
            .collect();
        Ok(Calls { tools, agents })
    }

    pub fn tool(&self, name: &str) -> Result<&LoadedTool, CallError> {
        self.tools
            .iter()
            .find(|t| t.spec.name == name)
            .ok_or_else(|| CallError::NoSuchTool(name.to_string()))
    }

    /// What the expressions see on a call to `restaurant`'s agent: its config, its apiBaseUrl
    /// (or `base_url`), the model's arguments and the call's context.
    pub fn scope(
        &self,
        restaurant: &str,
        base_url: Option<&str>,
        ai: Map<String, Value>,
        ctx: Map<String, Value>,
    ) -> Result<Scope, CallError> {
        let agent = self
            .agents
            .get(restaurant)
            .ok_or_else(|| CallError::NoSuchRestaurant(restaurant.to_string()))?;
        let caller_phone = ctx
            .get("caller_phone")
            .and_then(Value::as_str)
            .map(String::from);
        Ok(Scope {
            base_url: base_url
                .unwrap_or(&agent.api_base_url)
                .trim_end_matches('/')
                .to_string(),
            config: serde_json::to_value(&agent.config).unwrap_or(Value::Null),
            ai,
            ctx,
            res: None,
            caller_phone,
        })
    }
}

/// The model's arguments from `KEY=VALUE` texts, typed by the tool's parameter schema: a
/// `string` parameter takes the text as is; any other type is read as JSON.
pub(crate) fn parse_params(
    tool: &LoadedTool,
    pairs: &[String],
) -> Result<Map<String, Value>, CallError> {
    let mut out = Map::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| CallError::NotKeyValue(pair.clone()))?;
        let Some(schema) = tool.spec.parameters.properties.get(k) else {
            return Err(CallError::UnknownParameter {
                tool: tool.spec.name.clone(),
                name: k.to_string(),
                known: tool
                    .spec
                    .parameters
                    .properties
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let ty = schema.get("type").and_then(Value::as_str);
        let value = match ty {
            Some("string") => Value::String(v.to_string()),
            Some(ty) => serde_json::from_str(v).map_err(|_| CallError::BadParameter {
                name: k.to_string(),
                ty: ty.to_string(),
                value: v.to_string(),
            })?,
            None => serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string())),
        };
        out.insert(k.to_string(), value);
    }
    Ok(out)
}

/// The call's context from `KEY=VALUE` texts: JSON when the text is JSON, else a string.
pub(crate) fn parse_ctx(pairs: &[String]) -> Result<Map<String, Value>, CallError> {
    let mut out = Map::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| CallError::NotKeyValue(pair.clone()))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        out.insert(k.to_string(), value);
    }
    Ok(out)
}

/// What `call` was asked.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    pub tool: String,
    pub restaurant: String,
    /// `KEY=VALUE`, the model's arguments.
    pub params: Vec<String>,
    /// `KEY=VALUE`, the call's context.
    pub ctx: Vec<String>,
    pub send: bool,
    /// Instead of the agent's apiBaseUrl.
    pub base_url: Option<String>,
}

/// The platform's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub status: u16,
    /// JSON when it parses, else the text.
    pub body: Value,
}

/// What `call` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallOutcome {
    pub tool: String,
    pub restaurant: String,
    pub request: Request,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived: Option<Derived>,
}

pub async fn call(settings: &Settings, opts: &CallOptions) -> Result<CallOutcome, CallError> {
    let calls = Calls::load(settings).await?;
    let tool = calls.tool(&opts.tool)?;
    let ai = parse_params(tool, &opts.params)?;
    let ctx = parse_ctx(&opts.ctx)?;
    let scope = calls.scope(&opts.restaurant, opts.base_url.as_deref(), ai, ctx)?;
    let request = request::build(&tool.spec, &scope)?;
    let mut outcome = CallOutcome {
        tool: opts.tool.clone(),
        restaurant: opts.restaurant.clone(),
        request,
        answer: None,
        derived: None,
    };
    if opts.send {
        let answer = send(&outcome.request, settings.timeout).await?;
        outcome.derived = Some(request::derive(&tool.spec, &scope, &answer.body)?);
        outcome.answer = Some(answer);
    }
    Ok(outcome)
}

/// Sends `req` and reads the answer (at most [`MAX_ANSWER`] bytes).
pub async fn send(req: &Request, timeout: Duration) -> Result<Answer, CallError> {
    let err = |message: String| CallError::Send {
        method: req.method.clone(),
        url: crate::model::secret::redact_url(&req.url),
        message,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| err(e.to_string()))?;
    let method =
        reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|e| err(e.to_string()))?;
    let mut builder = client.request(method, &req.url);
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    if let Some(body) = &req.body {
        builder = builder.body(body.to_string());
    }
    let mut answer = builder.send().await.map_err(|e| err(e.to_string()))?;
    let status = answer.status().as_u16();
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| err(e.to_string()))? {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            return Err(err(format!("the answer is larger than {MAX_ANSWER} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(Answer { status, body })
}
