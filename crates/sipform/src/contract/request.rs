//! The request a tool makes: its URL read as the platform's path and query, and the request
//! built from the model's arguments, the call's context and the agent's config, as
//! sip-agent-server would build it. One code path for `validate` (which reads what is sent
//! where), `sipform call` and `sipform test` (which build the request).
//!
//! Known (the API contract): a string starting with `=` is an expression in which each
//! `{{path}}` is replaced at call time; a value that is a single `{{path}}` keeps the JSON type
//! of what it points at. Assumed (documented in `docs/tools-contract.md`): a reference in a
//! URL's query string is percent-encoded as a query value (`+` → `%2B`), one in its path as a
//! path segment, `BASE_URL` as is; a missing value is JSON `null` as a whole value and empty
//! text inside text; an object or array inside text is its JSON text.

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::front::expr::{self, ExprError, Reference, Root};
use crate::model::spec::ToolSpec;

/// The parts of a tool's URL a check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlParts {
    /// The URL starts with `{{BASE_URL}}`: it targets the platform.
    pub on_platform: bool,
    /// The path after the base, literal (`/api/orders/status`); references in it are kept as
    /// written.
    pub path: String,
    /// The query's keys, in order, with each value's template text.
    pub query: Vec<(String, String)>,
}

/// Why a URL cannot be read as a path and query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UrlError {
    #[error(transparent)]
    Expr(#[from] ExprError),
    #[error("a reference in the path (`{0}`): the route it targets cannot be known offline")]
    PathReference(String),
    #[error("the query's key `{0}` is not literal text")]
    QueryKey(String),
}

/// Reads a tool's URL (`={{BASE_URL}}/api/x?a={{config.y}}`).
pub(crate) fn split_url(url: &str) -> Result<UrlParts, UrlError> {
    let refs = expr::parse(url)?.unwrap_or_default();
    let chars: Vec<char> = url.chars().collect();
    let body_start = usize::from(expr::is_expression(url));
    let (on_platform, rest_start) = match refs.first() {
        Some(r) if r.root == Root::BaseUrl && r.offset == body_start => (true, r.offset + r.len),
        _ => (false, body_start),
    };
    let rest: String = chars[rest_start..].iter().collect();
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (rest.clone(), None),
    };
    let path = if on_platform {
        path
    } else {
        // An absolute URL: its path (a literal URL is not on the platform, but read it anyway).
        match url::Url::parse(&path) {
            Ok(u) => u.path().to_string(),
            Err(_) => path,
        }
    };
    if on_platform && path.contains("{{") {
        return Err(UrlError::PathReference(path));
    }
    let mut pairs = Vec::new();
    for pair in query
        .iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k.contains("{{") {
            return Err(UrlError::QueryKey(k.to_string()));
        }
        pairs.push((k.to_string(), v.to_string()));
    }
    Ok(UrlParts {
        on_platform,
        path,
        query: pairs,
    })
}

/// Every reference of a value (strings, and strings inside objects and arrays), with the JSON
/// pointer below the value where each was found.
pub fn references(v: &Value) -> Vec<Reference> {
    match v {
        Value::String(s) => expr::parse(s).ok().flatten().unwrap_or_default(),
        Value::Array(a) => a.iter().flat_map(references).collect(),
        Value::Object(m) => m.values().flat_map(references).collect(),
        _ => Vec::new(),
    }
}

/// What the expressions of one call see.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The agent's apiBaseUrl, without a trailing slash.
    pub base_url: String,
    /// The agent's config.
    pub config: Value,
    /// The model's arguments.
    pub ai: Map<String, Value>,
    /// The call's context store.
    pub ctx: Map<String, Value>,
    /// The answer's body, once there is one.
    pub res: Option<Value>,
    pub caller_phone: Option<String>,
}

impl Scope {
    /// The value a reference points at; `None` when it is missing.
    pub fn lookup(&self, r: &Reference) -> Option<Value> {
        let start: Value = match r.root {
            Root::BaseUrl => Value::String(self.base_url.clone()),
            Root::Config => self.config.clone(),
            Root::CallerPhone => Value::String(self.caller_phone.clone()?),
            Root::Data => return None,
            Root::Ai => Value::Object(self.ai.clone()),
            Root::Ctx => Value::Object(self.ctx.clone()),
            Root::Res => self.res.clone()?,
        };
        let mut at = &start;
        for seg in &r.segments {
            at = match at {
                Value::Object(m) => m.get(seg)?,
                Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(at.clone())
    }
}

/// Where a reference's text lands, which decides how it is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Text,
    UrlPath,
    UrlQuery,
}

/// A value as text: strings as they are, `null` empty, others as JSON.
pub(crate) fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (what
/// `encodeURIComponent` leaves, less `!'()*`).
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn render(s: &str, scope: &Scope, url: bool) -> Result<String, ExprError> {
    let Some(refs) = expr::parse(s)? else {
        return Ok(s.to_string());
    };
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 1;
    let mut in_query = false;
    for r in &refs {
        let literal: String = chars[i..r.offset].iter().collect();
        in_query |= url && literal.contains('?');
        out.push_str(&literal);
        let value = scope.lookup(r).map(|v| text_of(&v)).unwrap_or_default();
        let place = match (url, in_query, r.root) {
            (true, _, Root::BaseUrl) | (false, _, _) => Place::Text,
            (true, true, _) => Place::UrlQuery,
            (true, false, _) => Place::UrlPath,
        };
        match place {
            Place::Text => out.push_str(&value),
            Place::UrlQuery | Place::UrlPath => out.push_str(&encode_component(&value)),
        }
        i = r.offset + r.len;
    }
    out.extend(&chars[i..]);
    Ok(out)
}

/// A URL expression resolved: references in the query string percent-encoded as query values,
/// in the path as path segments; `BASE_URL` as is.
pub(crate) fn resolve_url(s: &str, scope: &Scope) -> Result<String, ExprError> {
    render(s, scope, true)
}

/// A value (a body field, a contextUpdates entry) resolved: a single `{{path}}` keeps its JSON
/// type (`null` when missing); text with references is text; objects and arrays are resolved
/// inside; other literals are themselves.
pub(crate) fn resolve_value(v: &Value, scope: &Scope) -> Result<Value, ExprError> {
    Ok(match v {
        Value::String(s) => match expr::parse(s)? {
            None => v.clone(),
            Some(refs) => {
                let whole = refs.len() == 1 && {
                    let r = &refs[0];
                    let inner: String = s.chars().skip(1).collect();
                    r.offset == 1 && inner.chars().count() == r.len
                };
                if whole {
                    scope.lookup(&refs[0]).unwrap_or(Value::Null)
                } else {
                    Value::String(render(s, scope, false)?)
                }
            }
        },
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve_value(x, scope))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), resolve_value(x, scope)?)))
                .collect::<Result<_, ExprError>>()?,
        ),
        other => other.clone(),
    })
}

/// The request a tool makes for one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub method: String,
    pub url: String,
    /// Name and value; none is a secret today (the platform's routes read no credential), and
    /// any a later version adds is shown redacted by the printers.
    pub headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// Why a request cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("tool `{0}` is built in (no `http`): it makes no request")]
    BuiltIn(String),
    #[error("{field}: {source}")]
    Expr {
        field: String,
        #[source]
        source: ExprError,
    },
}

/// Builds `tool`'s request in `scope`.
pub fn build(tool: &ToolSpec, scope: &Scope) -> Result<Request, BuildError> {
    let http = tool
        .http
        .as_ref()
        .ok_or_else(|| BuildError::BuiltIn(tool.name.clone()))?;
    let url = resolve_url(&http.url, scope).map_err(|source| BuildError::Expr {
        field: "http.url".into(),
        source,
    })?;
    let body = match &http.body_template {
        None => None,
        Some(t) => {
            let mut out = Map::new();
            for (k, v) in t {
                let v = resolve_value(v, scope).map_err(|source| BuildError::Expr {
                    field: format!("http.bodyTemplate.{k}"),
                    source,
                })?;
                out.insert(k.clone(), v);
            }
            Some(Value::Object(out))
        }
    };
    let mut headers = vec![("Accept".to_string(), "application/json".to_string())];
    if body.is_some() {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    Ok(Request {
        method: format!("{:?}", http.method).to_ascii_uppercase(),
        url,
        headers,
        body,
    })
}

/// What the server derives from an answer: each contextUpdates key's value, the extra cost,
/// and what the model is shown (the responseMapping when there is one, else the body).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Derived {
    pub context_updates: IndexMap<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_cost: Option<Value>,
    pub model_sees: Value,
}

/// [`Derived`] for `tool` once its answer `res` is known.
pub fn derive(tool: &ToolSpec, scope: &Scope, res: &Value) -> Result<Derived, BuildError> {
    let mut scope = scope.clone();
    scope.res = Some(res.clone());
    let err = |field: String| move |source| BuildError::Expr { field, source };
    let mut context_updates = IndexMap::new();
    for (k, v) in tool.context_updates.iter().flatten() {
        let value = resolve_value(&Value::String(v.clone()), &scope)
            .map_err(err(format!("contextUpdates.{k}")))?;
        context_updates.insert(k.clone(), value);
    }
    let extra_cost = match &tool.extra_cost_response_field {
        Some(e) => Some(
            resolve_value(&Value::String(e.clone()), &scope)
                .map_err(err("extraCostResponseField".into()))?,
        ),
        None => None,
    };
    let model_sees = match tool.http.as_ref().and_then(|h| h.response_mapping.as_ref()) {
        Some(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(
                    k.clone(),
                    resolve_value(&Value::String(v.clone()), &scope)
                        .map_err(err(format!("http.responseMapping.{k}")))?,
                );
            }
            Value::Object(out)
        }
        None => res.clone(),
    };
    Ok(Derived {
        context_updates,
        extra_cost,
        model_sees,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_splits_into_path_and_query() {
        let u = split_url(
            "={{BASE_URL}}/api/orders/status?restaurantId={{config.restaurantId}}&phone={{$ai.customer_phone}}",
        )
        .unwrap();
        assert!(u.on_platform);
        assert_eq!(u.path, "/api/orders/status");
        assert_eq!(
            u.query[1],
            ("phone".into(), "{{$ai.customer_phone}}".into())
        );
        assert!(!split_url("https://x.y/api/a").unwrap().on_platform);
        assert!(matches!(
            split_url("={{BASE_URL}}/api/{{ctx.a}}"),
            Err(UrlError::PathReference(_))
        ));
    }

    #[test]
    fn query_values_are_encoded_and_whole_values_keep_their_type() {
        let scope = Scope {
            base_url: "http://h:3000".into(),
            config: json!({"restaurantId": "r 1"}),
            ai: json!({"customer_phone": "+33 6&x", "n": 4})
                .as_object()
                .unwrap()
                .clone(),
            ..Scope::default()
        };
        assert_eq!(
            resolve_url(
                "={{BASE_URL}}/api/x/{{config.restaurantId}}?phone={{$ai.customer_phone}}&m={{$ai.missing}}",
                &scope
            )
            .unwrap(),
            "http://h:3000/api/x/r%201?phone=%2B33%206%26x&m="
        );
        assert_eq!(
            resolve_value(&json!("={{$ai.n}}"), &scope).unwrap(),
            json!(4)
        );
        assert_eq!(
            resolve_value(&json!("= {{$ai.n}}"), &scope).unwrap(),
            json!(" 4")
        );
        assert_eq!(
            resolve_value(&json!("={{ctx.none}}"), &scope).unwrap(),
            Value::Null
        );
        assert_eq!(
            resolve_value(&json!("confirmed"), &scope).unwrap(),
            json!("confirmed")
        );
    }
}
