//! The rendered agents: each restaurant's template rendered, parsed and checked against the
//! agent schema, tenant data kept out of expressions, and the agent's own expressions checked.
//! Problems point at the template line that writes the field, naming the restaurant.

use std::collections::HashSet;

use serde_json::Value;

use super::expressions::{allowed_roots, root_not_allowed};
use super::Entry;
use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin, Sourced};
use crate::front::expr::{self, Root};
use crate::front::load;
use crate::front::par::par_map;
use crate::front::render::{string_leaves, RenderEnv, Renderer, TenantExpression};
use crate::front::schema::Kind;
use crate::front::yaml;
use crate::model::spec::{Project, RenderedAgent, Restaurant};

/// One rendered restaurant, with what is needed to point at its problems.
pub(super) struct RenderedOne {
    /// Its index among the entries (and their problems).
    pub(super) index: usize,
    pub(super) restaurant: Sourced<Restaurant>,
    pub(super) agent: RenderedAgent,
    pub(super) config_keys: HashSet<String>,
    /// What [`check_agent`] found, checked while rendering (the rendered tree is not kept:
    /// 100,000 of them were most of a large inventory's memory), reported after the tools'.
    pub(super) checked: Diagnostics,
}

/// What rendering one restaurant gave: its agent, tenant values that would become
/// expressions, its config's keys, and the problems of its own expressions.
type Outcome = (
    RenderedAgent,
    Vec<TenantExpression>,
    HashSet<String>,
    Diagnostics,
);

/// Renders every entry without problems so far, on every core; a restaurant whose rendering
/// fails gets its problems in `problems`, the others are returned in entry order.
pub(super) fn render_all(
    renderer: &Renderer,
    project: &Project,
    env: &RenderEnv,
    entries: &[Entry],
    problems: &mut [Diagnostics],
) -> Vec<RenderedOne> {
    // Rendering and parsing is most of the work, and each restaurant's is its own.
    let outcomes = par_map(entries, |i, e| {
        if !problems[i].is_empty() {
            return None;
        }
        Some(render_checked(renderer, project, env, &e.restaurant))
    });
    let mut rendered: Vec<RenderedOne> = Vec::with_capacity(entries.len());
    for (i, (e, outcome)) in entries.iter().zip(outcomes).enumerate() {
        match outcome {
            None => {}
            Some(Ok((agent, tainted, config_keys, checked))) => {
                if !tainted.is_empty() {
                    for t in tainted {
                        problems[i].push(tenant_diag(e, &t));
                    }
                    continue;
                }
                rendered.push(RenderedOne {
                    index: i,
                    restaurant: e.restaurant.clone(),
                    agent,
                    config_keys,
                    checked,
                });
            }
            Some(Err(d)) => problems[i].extend(d),
        }
    }
    rendered
}

/// One restaurant rendered, and its agent's expressions checked when no tenant value would
/// become one.
fn render_checked(
    renderer: &Renderer,
    project: &Project,
    env: &RenderEnv,
    r: &Sourced<Restaurant>,
) -> Result<Outcome, Diagnostics> {
    render_one(renderer, project, env, r).map(|(agent, value)| {
        let tainted = renderer.tenant_expressions(&r.value, env, &project.account, &value);
        let config_keys = match serde_json::to_value(&agent.agent.config) {
            Ok(Value::Object(m)) => m.keys().cloned().collect(),
            _ => HashSet::new(),
        };
        let mut checked = Diagnostics::default();
        if tainted.is_empty() {
            check_agent(renderer, r, &value, &config_keys, &mut checked);
        }
        (agent, tainted, config_keys, checked)
    })
}

fn render_one(
    renderer: &Renderer,
    project: &Project,
    env: &RenderEnv,
    r: &Sourced<Restaurant>,
) -> Result<(RenderedAgent, Value), Diagnostics> {
    let text = renderer
        .render(&r.value, env, &project.account)
        .map_err(|e| {
            let line = e.line.unwrap_or(0);
            Diagnostics::from(Diagnostic::new(
                Origin::file(&renderer.path, line, usize::from(line > 0)),
                "",
                format!(
                    "{} (rendering restaurant {} from {})",
                    e.message, r.value.id, r.origin
                ),
            ))
        })?;
    let value = yaml::parse_value(&text).map_err(|e| {
        Diagnostics::from(Diagnostic::new(
            Origin::file(&renderer.path, e.line, e.column),
            "",
            format!(
                "the rendered text is not valid YAML at its line {}: {} (restaurant {} from {}); quote values with `| tojson`",
                e.line, e.message, r.value.id, r.origin
            ),
        ))
    })?;
    let errors = load::schema_errors(&value, Kind::Agent)
        .map_err(|e| Diagnostics::from(Diagnostic::new(r.origin.clone(), "", e.to_string())))?;
    if !errors.is_empty() {
        return Err(Diagnostics(
            errors
                .iter()
                .map(|(p, m)| rendered_diag(renderer, r, p, m))
                .collect(),
        ));
    }
    let agent = load::deserialize::<RenderedAgent>(&value)
        .map_err(|(p, m)| Diagnostics::from(rendered_diag(renderer, r, &p, m)))?;
    Ok((agent, value))
}

/// A restaurant value that would reach the server as an expression: pointed at where the value
/// is written (its file's line, or its row), naming the rendered field.
fn tenant_diag(e: &Entry, t: &TenantExpression) -> Diagnostic {
    let field = yaml::pointer_to_field(&t.pointer);
    let what = if t.leading {
        "starts with `=`"
    } else {
        "holds braces that land inside a `={{…}}` expression"
    };
    Diagnostic::new(
        e.origin_of(&t.column),
        t.column.clone(),
        format!(
            "{:?} {what}: rendered into {field} it would be sent to the server as an expression, not as text, and the API has no escape for it; the restaurant is skipped: change the value (restaurant {})",
            t.value, e.restaurant.value.id
        ),
    )
}

/// The expressions of one rendered agent (`value`): parseable, with allowed roots, and every
/// `config.x` in its config (`config_keys`).
fn check_agent(
    renderer: &Renderer,
    restaurant: &Sourced<Restaurant>,
    value: &Value,
    config_keys: &HashSet<String>,
    diags: &mut Diagnostics,
) {
    let Some(agent) = value.get("agent") else {
        return;
    };
    let mut sites = Vec::new();
    string_leaves(agent, "/agent".to_string(), &mut sites);
    for (pointer, text) in sites {
        let refs = match expr::parse(text) {
            Ok(Some(refs)) => refs,
            Ok(None) => continue,
            Err(e) => {
                diags.push(rendered_diag(
                    renderer,
                    restaurant,
                    &pointer,
                    format!("expression `{text}`: {e}"),
                ));
                continue;
            }
        };
        let allowed = allowed_roots(&pointer);
        for r in refs {
            if let Some(m) = root_not_allowed(&r, allowed) {
                diags.push(rendered_diag(renderer, restaurant, &pointer, m));
            } else if let (Root::Config, Some(k)) = (r.root, r.segments.first()) {
                if !config_keys.contains(k) {
                    diags.push(rendered_diag(
                        renderer,
                        restaurant,
                        &pointer,
                        format!("`config.{k}`: not in this agent's config"),
                    ));
                }
            }
        }
    }
}

/// A diagnostic about a rendered field: it points at the template line that writes the field,
/// and names the restaurant and where it came from.
fn rendered_diag(
    renderer: &Renderer,
    restaurant: &Sourced<Restaurant>,
    pointer: &str,
    message: impl std::fmt::Display,
) -> Diagnostic {
    let (line, column) = template_position(&renderer.source, pointer);
    Diagnostic::new(
        Origin::file(&renderer.path, line, column),
        yaml::pointer_to_field(pointer),
        format!(
            "{message} (restaurant {} from {})",
            restaurant.value.id, restaurant.origin
        ),
    )
}

/// The template line writing the field at `pointer`: each key of the pointer is looked for,
/// in order, as `key:` at the start of a line after the previous one.
pub(crate) fn template_position(source: &str, pointer: &str) -> (usize, usize) {
    let lines: Vec<&str> = source.lines().collect();
    let mut at = (1, 1);
    let mut from = 0;
    for tok in pointer.split('/').skip(1) {
        let key = format!("{}:", tok.replace("~1", "/").replace("~0", "~"));
        if let Some(i) = (from..lines.len()).find(|i| lines[*i].trim_start().starts_with(&key)) {
            let indent = lines[i].len() - lines[i].trim_start().len();
            at = (i + 1, indent + 1);
            from = i + 1;
        } else {
            break;
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_lines_follow_the_pointer() {
        let src = "a:\n  name: x\nagent:\n  name: y\n  config:\n    k: 1\n";
        assert_eq!(template_position(src, "/agent/name"), (4, 3));
        assert_eq!(template_position(src, "/agent/config/k"), (6, 5));
        assert_eq!(template_position(src, "/agent/zzz"), (3, 1));
    }
}
