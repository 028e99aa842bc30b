//! The management API: path → route template → store operation.
//!
//! Routing is done by hand rather than with axum's router so that the route template (the key
//! of request counts and fault rules) is known before any fault is applied.

use serde_json::Value;

use super::store::{Answer, ApiError, Store};

/// Every management route: `(methods, template)`. Count keys are `"METHOD template"`.
pub(crate) const TEMPLATES: &[(&[&str], &str)] = &[
    (&["GET", "POST"], "/api/accounts"),
    (&["GET", "POST"], "/api/final-customers"),
    (&["GET", "PUT", "DELETE"], "/api/final-customers/:id"),
    (&["GET", "POST"], "/api/final-customers/:id/subscriptions"),
    (&["DELETE"], "/api/subscriptions/:id"),
    (&["GET"], "/api/plans"),
    (&["GET", "POST"], "/api/agents"),
    (&["GET", "PUT", "DELETE"], "/api/agents/:id"),
    (&["PUT"], "/api/agents/:id/brain"),
    (&["GET", "POST"], "/api/agents/:id/tools"),
    (&["PUT", "DELETE"], "/api/agents/:id/tools/:toolId"),
    (&["GET", "POST"], "/api/agents/:id/phone-lines"),
    (&["PUT", "DELETE"], "/api/agents/:id/phone-lines/:lineId"),
    (&["GET"], super::bridges::ROUTE),
];

/// A matched path: its template and the ids it carries.
pub(crate) struct Matched<'a> {
    pub template: &'static str,
    pub ids: Vec<&'a str>,
}

/// Matches `path` against [`TEMPLATES`]; `None` for a path no route has.
pub(crate) fn match_path(path: &str) -> Option<Matched<'_>> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    for (_, template) in TEMPLATES {
        let tsegs: Vec<&str> = template.split('/').skip(1).collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut ids = Vec::new();
        let ok = tsegs.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with(':') {
                ids.push(*s);
                !s.is_empty()
            } else {
                t == s
            }
        });
        if ok {
            return Some(Matched { template, ids });
        }
    }
    None
}

/// Whether `method` changes state (and so triggers a snapshot and commit-then-fail rules).
pub(crate) fn is_write(method: &str) -> bool {
    method != "GET"
}

/// Whether the route takes a JSON body.
fn needs_body(method: &str) -> bool {
    method == "POST" || method == "PUT"
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(
            "the request body is empty: a JSON object is expected",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("malformed JSON: {e}")))
}

/// Runs one management request against the store. `read` and `write` give the lock the
/// operation needs, so reads run in parallel.
pub(crate) fn dispatch(
    store: &std::sync::RwLock<Store>,
    method: &str,
    m: &Matched<'_>,
    account: Option<&str>,
    body: &[u8],
) -> Answer {
    let allowed = TEMPLATES
        .iter()
        .find(|(_, t)| *t == m.template)
        .is_some_and(|(methods, _)| methods.contains(&method));
    if !allowed {
        return Err(ApiError {
            status: 405,
            message: format!("{method} is not allowed on {}", m.template),
        });
    }
    let body = if needs_body(method) {
        parse_body(body)?
    } else {
        Value::Null
    };
    let id = |i: usize| m.ids.get(i).copied().unwrap_or_default();
    if !is_write(method) {
        let s = store.read().unwrap_or_else(|e| e.into_inner());
        return match m.template {
            "/api/accounts" => s.list_accounts(),
            "/api/final-customers" => s.list_final_customers(account),
            "/api/final-customers/:id" => s.get_final_customer(id(0)),
            "/api/final-customers/:id/subscriptions" => s.list_subscriptions(id(0)),
            "/api/plans" => s.list_plans(account),
            "/api/agents" => s.list_agents(account),
            "/api/agents/:id" => s.get_agent(id(0)),
            "/api/agents/:id/tools" => s.list_tools(id(0)),
            "/api/agents/:id/phone-lines" => s.list_lines(id(0)),
            _ => Err(ApiError::not_found("route", m.template)),
        };
    }
    let mut s = store.write().unwrap_or_else(|e| e.into_inner());
    match (method, m.template) {
        ("POST", "/api/accounts") => s.create_account(body),
        ("POST", "/api/final-customers") => s.create_final_customer(body),
        ("PUT", "/api/final-customers/:id") => s.put_final_customer(id(0), body),
        ("DELETE", "/api/final-customers/:id") => s.delete_final_customer(id(0)),
        ("POST", "/api/final-customers/:id/subscriptions") => s.create_subscription(id(0), body),
        ("DELETE", "/api/subscriptions/:id") => s.delete_subscription(id(0)),
        ("POST", "/api/agents") => s.create_agent(body),
        ("PUT", "/api/agents/:id") => s.put_agent(id(0), body),
        ("DELETE", "/api/agents/:id") => s.delete_agent(id(0)),
        ("PUT", "/api/agents/:id/brain") => s.put_brain(id(0), body),
        ("POST", "/api/agents/:id/tools") => s.create_tool(id(0), body),
        ("PUT", "/api/agents/:id/tools/:toolId") => s.put_tool(id(0), id(1), body),
        ("DELETE", "/api/agents/:id/tools/:toolId") => s.delete_tool(id(0), id(1)),
        ("POST", "/api/agents/:id/phone-lines") => s.create_line(id(0), body),
        ("PUT", "/api/agents/:id/phone-lines/:lineId") => s.put_line(id(0), id(1), body),
        ("DELETE", "/api/agents/:id/phone-lines/:lineId") => s.delete_line(id(0), id(1)),
        _ => Err(ApiError::not_found("route", m.template)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_templates() {
        let m = match_path("/api/agents/a1/tools/t9").unwrap();
        assert_eq!(m.template, "/api/agents/:id/tools/:toolId");
        assert_eq!(m.ids, vec!["a1", "t9"]);
        assert_eq!(
            match_path("/api/accounts").unwrap().template,
            "/api/accounts"
        );
        assert!(match_path("/api/nope").is_none());
        assert!(match_path("/api/agents//tools").is_none());
    }
}
