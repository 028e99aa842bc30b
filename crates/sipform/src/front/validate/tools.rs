//! The tools' checks: names and sort orders unique, each tool in its own file, every tool doing
//! something, required parameters declared, expressions naming what exists, URLs absolute once
//! `BASE_URL` is known, and the warnings about parameters without a description.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::agents::RenderedOne;
use super::expressions::{
    allowed_roots, is_tool_expression_site, root_not_allowed, INITIAL_CONTEXT_KEYS,
    SERVER_CONTEXT_KEYS,
};
use crate::front::diagnostics::{Diagnostics, Origin};
use crate::front::expr::{self, Reference, Root};
use crate::front::load::{Document, LoadedTool};
use crate::front::render::string_leaves;
use crate::front::yaml;

/// What every tool is checked against: the other tools and the rendered agents.
struct Context<'a> {
    /// The context keys something sets: the session, the server, or a tool's `contextUpdates`.
    producers: BTreeSet<&'a str>,
    /// The agents' `BASE_URL`s a tool URL is completed with.
    bases: BTreeSet<&'a str>,
    rendered: &'a [RenderedOne],
}

/// Checks every tool. A problem of a tool goes to `diags` (it fails the whole check); a config
/// key some rendered agents lack goes to those restaurants' `problems` (they are skipped).
pub(super) fn check_tools(
    tools: &[LoadedTool],
    rendered: &[RenderedOne],
    diags: &mut Diagnostics,
    problems: &mut [Diagnostics],
) {
    let cx = Context {
        producers: producers(tools),
        bases: base_urls(rendered),
        rendered,
    };
    let mut seen = Seen::default();
    for t in tools {
        seen.check(t, diags);
        check_shape(t, diags);
        check_condition(t, &cx, diags, problems);
        check_required(t, diags);
        check_expressions(t, &cx, diags, problems);
        check_url(t, &cx, diags);
    }
}

fn producers(tools: &[LoadedTool]) -> BTreeSet<&str> {
    let mut producers: BTreeSet<&str> = INITIAL_CONTEXT_KEYS
        .iter()
        .chain(SERVER_CONTEXT_KEYS)
        .copied()
        .collect();
    for t in tools {
        if let Some(cu) = &t.spec.context_updates {
            producers.extend(cu.keys().map(String::as_str));
        }
    }
    producers
}

fn base_urls(rendered: &[RenderedOne]) -> BTreeSet<&str> {
    if rendered.is_empty() {
        // No restaurant: still check that a tool URL is absolute once BASE_URL is a URL.
        BTreeSet::from(["http://localhost"])
    } else {
        rendered
            .iter()
            .map(|o| o.agent.agent.api_base_url.as_str())
            .collect()
    }
}

/// The names and sort orders of the tools checked so far: each must be unique.
#[derive(Default)]
struct Seen<'a> {
    names: HashMap<&'a str, Origin>,
    orders: HashMap<i64, (Origin, &'a str)>,
}

impl<'a> Seen<'a> {
    fn check(&mut self, t: &'a LoadedTool, diags: &mut Diagnostics) {
        let (s, d) = (&t.spec, &t.doc);
        if let Some(first) = self.names.get(s.name.as_str()) {
            diags.push(d.diag(
                "/name",
                format!("duplicate tool name `{}` (also at {first})", s.name),
            ));
        } else {
            self.names.insert(&s.name, d.origin("/name"));
        }
        if let Some((first, other)) = self.orders.get(&s.sort_order) {
            diags.push(d.diag(
                "/sortOrder",
                format!(
                    "duplicate sortOrder {} (tool `{other}` at {first} has it too)",
                    s.sort_order
                ),
            ));
        } else {
            self.orders
                .insert(s.sort_order, (d.origin("/sortOrder"), &s.name));
        }
    }
}

/// A tool is in the file named after it and does something (a call, a hangup or a transfer).
fn check_shape(t: &LoadedTool, diags: &mut Diagnostics) {
    let (s, d) = (&t.spec, &t.doc);
    let stem = d.path.file_stem().and_then(|x| x.to_str()).unwrap_or("");
    if stem != s.name {
        diags.push(d.diag(
            "/name",
            format!(
                "the tool `{}` must be in a file named `{}.yaml`",
                s.name, s.name
            ),
        ));
    }
    if s.http.is_none() && !s.triggers_hangup && !s.triggers_transfer {
        diags.push(d.diag(
            "/http",
            "a tool without http must set triggersHangup or triggersTransfer (it would do nothing)",
        ));
    }
}

/// A condition compares with a value when its operator needs one, on a key every agent has.
fn check_condition(
    t: &LoadedTool,
    cx: &Context,
    diags: &mut Diagnostics,
    problems: &mut [Diagnostics],
) {
    let Some(c) = &t.spec.condition else {
        return;
    };
    if c.operator.needs_value() && c.value.is_none() {
        diags.push(t.doc.diag(
            "/condition/operator",
            "operator eq/neq needs a `value` to compare with",
        ));
    }
    require_config_key(
        &t.doc,
        "/condition/configKey",
        &format!("config key `{}` is not", c.config_key),
        &c.config_key,
        cx.rendered,
        diags,
        problems,
    );
}

fn check_required(t: &LoadedTool, diags: &mut Diagnostics) {
    let s = &t.spec;
    for (i, r) in s.parameters.required.iter().enumerate() {
        if !s.parameters.properties.contains_key(r) {
            diags.push(t.doc.diag(
                &format!("/parameters/required/{i}"),
                format!("required parameter `{r}` is not among the properties"),
            ));
        }
    }
}

/// Every expression of the tool parses, uses only the roots its site allows, and names what
/// exists (a parameter, a context key something sets, a config key every agent has).
fn check_expressions(
    t: &LoadedTool,
    cx: &Context,
    diags: &mut Diagnostics,
    problems: &mut [Diagnostics],
) {
    let d = &t.doc;
    let mut sites = Vec::new();
    string_leaves(&d.value, String::new(), &mut sites);
    for (pointer, text) in sites {
        if !is_tool_expression_site(&pointer) {
            continue;
        }
        let refs = match expr::parse(text) {
            Ok(Some(refs)) => refs,
            Ok(None) => continue,
            Err(e) => {
                diags.push(d.diag(&pointer, format!("expression `{text}`: {e}")));
                continue;
            }
        };
        let allowed = allowed_roots(&pointer);
        for r in refs {
            if let Some(m) = root_not_allowed(&r, allowed) {
                diags.push(d.diag(&pointer, m));
                continue;
            }
            check_reference(t, &pointer, &r, cx, diags, problems);
        }
    }
}

/// One reference of an expression at `pointer`, its root allowed there: what it names exists.
fn check_reference(
    t: &LoadedTool,
    pointer: &str,
    r: &Reference,
    cx: &Context,
    diags: &mut Diagnostics,
    problems: &mut [Diagnostics],
) {
    let (s, d) = (&t.spec, &t.doc);
    let first = r.segments.first().map(String::as_str);
    match (r.root, first) {
        (Root::Ai, None) => {
            diags.push(d.diag(pointer, "`$ai` needs a parameter name: `$ai.<parameter>`"))
        }
        (Root::Ai, Some(p)) if !s.parameters.properties.contains_key(p) => diags.push(d.diag(
            pointer,
            format!("`$ai.{p}`: `{p}` is not a parameter of tool `{}`", s.name),
        )),
        (Root::Ctx, None) => diags.push(d.diag(pointer, "`ctx` needs a key: `ctx.<key>`")),
        (Root::Ctx, Some(k)) if !cx.producers.contains(k) => diags.push(d.diag(
            pointer,
            format!(
                "`ctx.{k}`: no tool's contextUpdates, initialContext key or server key sets `{k}`"
            ),
        )),
        (Root::Config, Some(k)) => require_config_key(
            d,
            pointer,
            &format!("`config.{k}`: not"),
            k,
            cx.rendered,
            diags,
            problems,
        ),
        _ => {}
    }
}

/// The tool's URL is an absolute http(s) URL with each agent's `BASE_URL` in it.
fn check_url(t: &LoadedTool, cx: &Context, diags: &mut Diagnostics) {
    let Some(http) = &t.spec.http else {
        return;
    };
    for base in &cx.bases {
        match expr::substitute_base_url(&http.url, base) {
            Ok(url) if !is_absolute_http(&url) => diags.push(t.doc.diag(
                "/http/url",
                format!("`{url}` is not an absolute http(s) URL once BASE_URL is `{base}`"),
            )),
            _ => {}
        }
    }
}

/// A config key a tool uses must be in every rendered agent's config. When no restaurant has
/// it the tool is wrong: a shared error, at the tool. When only some lack it, their rendered
/// agents are: those restaurants are skipped, the others go on. `prefix` begins the message.
fn require_config_key(
    doc: &Document,
    pointer: &str,
    prefix: &str,
    key: &str,
    rendered: &[RenderedOne],
    diags: &mut Diagnostics,
    problems: &mut [Diagnostics],
) {
    let missing: Vec<&RenderedOne> = rendered
        .iter()
        .filter(|o| !o.config_keys.contains(key))
        .collect();
    if missing.is_empty() {
        return;
    }
    if missing.len() == rendered.len() {
        let ids: Vec<String> = missing
            .iter()
            .map(|o| o.restaurant.value.id.to_string())
            .collect();
        diags.push(doc.diag(
            pointer,
            format!(
                "{prefix} in the rendered config of restaurant {}",
                list(&ids)
            ),
        ));
        return;
    }
    for o in missing {
        problems[o.index].push(doc.diag(
            pointer,
            format!(
                "{prefix} in this restaurant's rendered config (restaurant {} from {})",
                o.restaurant.value.id, o.restaurant.origin
            ),
        ));
    }
}

fn list(ids: &[String]) -> String {
    if ids.len() > 3 {
        format!("{} and {} more", ids[..3].join(", "), ids.len() - 3)
    } else {
        ids.join(", ")
    }
}

/// `http://host…` or `https://host…` with a non-empty host.
pub(crate) fn is_absolute_http(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty() && !host.contains(char::is_whitespace)
}

/// What is worth fixing in the tools but does not stop a run: parameters without a description.
pub(super) fn warnings(tools: &[LoadedTool]) -> Diagnostics {
    let mut warnings = Diagnostics::default();
    for t in tools {
        for (name, p) in &t.spec.parameters.properties {
            undescribed(
                &t.doc,
                &format!("/parameters/properties/{}", yaml::escape_token(name)),
                p,
                &mut warnings,
            );
        }
    }
    warnings
}

/// Warns on a parameter (or a nested property of one) the voice model gets no description
/// for: the platform describes each, and without one the model guesses the format.
fn undescribed(doc: &Document, pointer: &str, p: &Value, out: &mut Diagnostics) {
    let Value::Object(m) = p else { return };
    let described = m
        .get("description")
        .and_then(Value::as_str)
        .is_some_and(|d| !d.trim().is_empty());
    if !described {
        out.push(doc.diag(
            pointer,
            "this parameter has no description: the voice model will guess what to put in it",
        ));
    }
    let mut nested = |base: String, v: &Value| {
        if let Some(Value::Object(props)) = v.get("properties") {
            for (k, c) in props {
                undescribed(
                    doc,
                    &format!("{base}/properties/{}", yaml::escape_token(k)),
                    c,
                    out,
                );
            }
        }
    };
    nested(pointer.to_string(), p);
    if let Some(items) = m.get("items") {
        nested(format!("{pointer}/items"), items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_urls() {
        assert!(is_absolute_http("http://localhost:3000/api"));
        assert!(is_absolute_http("https://a.b?x={{config.y}}"));
        assert!(!is_absolute_http("/api/x"));
        assert!(!is_absolute_http("http:///x"));
        assert!(!is_absolute_http("ftp://a"));
    }

    #[test]
    fn long_id_lists_are_cut() {
        let ids: Vec<String> = (1..=5).map(|i| i.to_string()).collect();
        assert_eq!(list(&ids), "1, 2, 3 and 2 more");
        assert_eq!(list(&ids[..2]), "1, 2");
    }
}
