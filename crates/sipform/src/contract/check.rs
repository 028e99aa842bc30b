//! The checks: every tool's request, and every rendered agent's webhook, against the document.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin};
use crate::front::expr::{self, Root};
use crate::front::load::LoadedTool;
use crate::front::yaml::escape_token;
use crate::model::spec::{DesiredRestaurant, HttpSpec};

use super::openapi::{Api, Operation, RouteDef, Shape};
use super::request::{references, split_url};
use super::{CheckKind, PlatformConfig, Waiver};

/// One thing the document says a tool gets wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub tool: String,
    pub check: CheckKind,
    /// The parameter, key or field it is about, when there is one.
    pub subject: Option<String>,
    /// Where in the tool (or template) file, with the message (which names the OpenAPI path).
    pub diagnostic: Diagnostic,
}

/// What the contract check found.
#[derive(Debug, Clone, Default)]
pub struct ContractReport {
    /// Findings no waiver covers: `validate` fails on them.
    pub errors: Diagnostics,
    /// Findings a waiver covers, with it.
    pub waived: Vec<(Finding, Waiver)>,
    /// Waivers that cover nothing (stale: the finding was fixed, or the waiver is misspelt).
    pub unused: Vec<Waiver>,
    /// The revision the document describes.
    pub revision: String,
}

impl ContractReport {
    /// The waived findings and unused waivers as warnings, in the diagnostics style.
    pub fn warnings(&self, project_file: &Path) -> Diagnostics {
        let mut out = Diagnostics::default();
        for (f, w) in &self.waived {
            let mut d = f.diagnostic.clone();
            d.message = format!("waived ({}): {}", w.reason, d.message);
            out.push(d);
        }
        for w in &self.unused {
            out.push(Diagnostic::new(
                Origin::file_start(project_file),
                "platform.waivers",
                format!(
                    "the waiver for {} matches no finding: remove it",
                    w.summary()
                ),
            ));
        }
        out
    }
}

/// Checks `tools` and the rendered agents of `restaurants` against `api`, applying the
/// configuration's waivers. `template` is the agent template's path (its webhook line is named).
pub(crate) fn check_project(
    api: &Api,
    config: &PlatformConfig,
    tools: &[LoadedTool],
    restaurants: &[DesiredRestaurant],
    template: &Path,
) -> ContractReport {
    let mut findings = Vec::new();
    for t in tools {
        findings.extend(check_tool(api, t));
    }
    findings.extend(check_agents(api, restaurants, template));
    let mut report = ContractReport {
        revision: api.revision.clone(),
        ..ContractReport::default()
    };
    let mut used = vec![false; config.waivers.len()];
    for f in findings {
        match config
            .waivers
            .iter()
            .position(|w| w.covers(&f.tool, f.check, f.subject.as_deref()))
        {
            Some(i) => {
                used[i] = true;
                report.waived.push((f, config.waivers[i].clone()));
            }
            None => report.errors.push(f.diagnostic),
        }
    }
    report.unused = config
        .waivers
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(w, _)| w.clone())
        .collect();
    report
}

/// Every finding of one tool.
pub(crate) fn check_tool(api: &Api, tool: &LoadedTool) -> Vec<Finding> {
    let Some(http) = &tool.spec.http else {
        return Vec::new();
    };
    let mut f = ToolFindings {
        tool,
        out: Vec::new(),
    };
    dead_parameters(http, &mut f);
    let parts = match split_url(&http.url) {
        Ok(p) => p,
        Err(e) => {
            let message = format!("cannot check against the platform's API: {e}");
            f.add(CheckKind::BadUrl, None, "/http/url", message);
            return f.out;
        }
    };
    if !parts.on_platform {
        // Not the platform (no `{{BASE_URL}}`): the document says nothing about it.
        return f.out;
    }
    let method = format!("{:?}", http.method).to_ascii_uppercase();
    let Some(op) = operation(api, &parts.path, &method, &mut f) else {
        return f.out;
    };
    let place = api.place(op.0, Some(&method));
    query_keys(op.1, &parts.query, &place, &mut f);
    body_keys(op.1, http, &place, &mut f);
    response_reads(op.1, http, &place, &mut f);
    f.out
}

/// The findings of one tool, each placed in its file.
struct ToolFindings<'a> {
    tool: &'a LoadedTool,
    out: Vec<Finding>,
}

impl ToolFindings<'_> {
    fn add(&mut self, check: CheckKind, subject: Option<&str>, pointer: &str, message: String) {
        self.out.push(Finding {
            tool: self.tool.spec.name.clone(),
            check,
            subject: subject.map(String::from),
            diagnostic: self.tool.doc.diag(pointer, message),
        })
    }
}

/// Parameters asked of the voice model that the request never sends.
fn dead_parameters(http: &HttpSpec, f: &mut ToolFindings<'_>) {
    let mut sent: BTreeSet<String> = BTreeSet::new();
    let mut note_ai = |refs: &[expr::Reference]| {
        for r in refs.iter().filter(|r| r.root == Root::Ai) {
            if let Some(first) = r.segments.first() {
                sent.insert(first.clone());
            }
        }
    };
    note_ai(&references(&Value::String(http.url.clone())));
    for v in http.body_template.iter().flat_map(|b| b.values()) {
        note_ai(&references(v));
    }
    let names: Vec<String> = f.tool.spec.parameters.properties.keys().cloned().collect();
    for name in names.iter().filter(|n| !sent.contains(*n)) {
        f.add(
            CheckKind::DeadParameter,
            Some(name),
            &format!("/parameters/properties/{}", escape_token(name)),
            format!(
                "dead parameter: the voice model is asked for `{name}` but the request never sends it (no `$ai.{name}` in http.url or http.bodyTemplate)"
            ),
        );
    }
}

/// The route and operation the tool calls, or the finding that it has none.
fn operation<'a>(
    api: &'a Api,
    path: &str,
    method: &str,
    f: &mut ToolFindings<'_>,
) -> Option<(&'a RouteDef, &'a Operation)> {
    let Some(route) = api.route(path) else {
        let doc_name = api.doc.path.display().to_string();
        f.add(
            CheckKind::UnknownRoute,
            Some(path),
            "/http/url",
            format!(
                "{method} {path}: no such route in {doc_name} (the platform at {}); every call of this tool gets a 404",
                api.revision
            ),
        );
        return None;
    };
    let Some(op) = route.operations.get(method) else {
        let allowed: Vec<&str> = route.operations.keys().map(String::as_str).collect();
        f.add(
            CheckKind::MethodNotAllowed,
            Some(method),
            "/http/method",
            format!(
                "{method} is not a method of {} (it answers {}) [{}]",
                route.path,
                allowed.join(", "),
                api.place(route, None)
            ),
        );
        return None;
    };
    Some((route, op))
}

/// Query parameters: known to the route, and its required ones sent.
fn query_keys(op: &Operation, query: &[(String, String)], place: &str, f: &mut ToolFindings<'_>) {
    let query_keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    for k in &query_keys {
        if !op.query.iter().any(|q| q.name == *k) {
            let known: Vec<&str> = op.query.iter().map(|q| q.name.as_str()).collect();
            f.add(
                CheckKind::UnknownQueryParameter,
                Some(k),
                "/http/url",
                format!(
                    "query parameter `{k}` is not read by the route (it reads: {}) [{place}]",
                    list(&known)
                ),
            );
        }
    }
    for q in op.query.iter().filter(|q| q.required) {
        if !query_keys.contains(&q.name.as_str()) {
            f.add(
                CheckKind::MissingQueryParameter,
                Some(&q.name),
                "/http/url",
                format!(
                    "the route requires query parameter `{}`, which the URL does not send [{place}]",
                    q.name
                ),
            );
        }
    }
}

/// Body keys: known to the route, and its required ones sent.
fn body_keys(op: &Operation, http: &HttpSpec, place: &str, f: &mut ToolFindings<'_>) {
    let sent_keys: Vec<&str> = http
        .body_template
        .iter()
        .flat_map(|b| b.keys().map(String::as_str))
        .collect();
    let Some(body) = &op.body else {
        for k in &sent_keys {
            f.add(
                CheckKind::UnknownBodyKey,
                Some(k),
                &format!("/http/bodyTemplate/{}", escape_token(k)),
                format!("body key `{k}`: the route reads no request body [{place}]"),
            );
        }
        return;
    };
    for k in sent_keys.iter().filter(|k| !body.has(&[k.to_string()])) {
        f.add(
            CheckKind::UnknownBodyKey,
            Some(k),
            &format!("/http/bodyTemplate/{}", escape_token(k)),
            format!(
                "body key `{k}` is not read by the route (it reads: {}) [{place}]",
                list(&body.keys().iter().map(String::as_str).collect::<Vec<_>>())
            ),
        );
    }
    let Shape::Object { required, .. } = body else {
        return;
    };
    let pointer = if http.body_template.is_some() {
        "/http/bodyTemplate"
    } else {
        "/http"
    };
    for r in required.iter().filter(|r| !sent_keys.contains(&r.as_str())) {
        f.add(
            CheckKind::MissingBodyKey,
            Some(r),
            pointer,
            format!("the route requires body key `{r}`, which the tool does not send [{place}]"),
        );
    }
}

/// Every `$res` read back must be in the route's successful answers.
fn response_reads(op: &Operation, http: &HttpSpec, place: &str, f: &mut ToolFindings<'_>) {
    let spec = &f.tool.spec;
    let mut res_reads: Vec<(String, String)> = Vec::new();
    for (k, v) in spec.context_updates.iter().flatten() {
        res_reads.push((format!("/contextUpdates/{}", escape_token(k)), v.clone()));
    }
    if let Some(e) = &spec.extra_cost_response_field {
        res_reads.push(("/extraCostResponseField".into(), e.clone()));
    }
    for (k, v) in http.response_mapping.iter().flatten() {
        res_reads.push((
            format!("/http/responseMapping/{}", escape_token(k)),
            v.clone(),
        ));
    }
    for (pointer, text) in res_reads {
        for r in references(&Value::String(text)) {
            if r.root != Root::Res || r.segments.is_empty() || op.response.has(&r.segments) {
                continue;
            }
            let field = r.segments.join(".");
            let known = op.response.keys();
            f.add(
                CheckKind::UnknownResponseField,
                Some(&field),
                &pointer,
                format!(
                    "`$res.{field}` is not in the route's answer (its fields: {}): the value is always empty [{place}]",
                    list(&known.iter().map(String::as_str).collect::<Vec<_>>())
                ),
            );
        }
    }
}

/// The rendered agents' `onCallEndWebhook` (a POST the server makes at the end of each call):
/// one finding per distinct problem, at the template's line.
fn check_agents(api: &Api, restaurants: &[DesiredRestaurant], template: &Path) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for r in restaurants {
        let url = &r.agent.on_call_end_webhook;
        if !seen.insert(url.clone()) {
            continue;
        }
        let Ok(parts) = split_url(url) else { continue };
        if !parts.on_platform {
            continue;
        }
        let problem = match api.route(&parts.path) {
            None => Some(format!(
                "POST {}: no such route in {} (the platform at {})",
                parts.path,
                api.doc.path.display(),
                api.revision
            )),
            Some(route) if !route.operations.contains_key("POST") => Some(format!(
                "POST is not a method of {} [{}]",
                route.path,
                api.place(route, None)
            )),
            Some(_) => None,
        };
        if let Some(message) = problem {
            out.push(Finding {
                tool: "onCallEndWebhook".into(),
                check: CheckKind::UnknownRoute,
                subject: Some(parts.path.clone()),
                diagnostic: Diagnostic::new(
                    line_of(template, "onCallEndWebhook"),
                    "agent.onCallEndWebhook",
                    format!("restaurant {}: {message}", r.id),
                ),
            });
        }
    }
    out
}

/// The first line of `path` mentioning `needle` (the file's start when none does).
fn line_of(path: &Path, needle: &str) -> Origin {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().position(|l| l.contains(needle)))
        .map_or_else(
            || Origin::file_start(path),
            |i| Origin::file(path, i + 1, 1),
        )
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}

/// `validate`'s hook: with `platform.openapi` set, loads the document and the tools, checks
/// them and the rendered agents of `report`; unwaived findings are errors, waived ones and
/// unused waivers join the report's warnings. Without a document, nothing happens.
pub(crate) fn check_validated(
    root: &Path,
    tools_dir: &Path,
    template: &Path,
    config: &PlatformConfig,
    report: &mut crate::front::validate::Report,
) -> Result<Option<ContractReport>, Diagnostics> {
    let Some(doc) = &config.openapi else {
        return Ok(None);
    };
    let api = Api::load(&root.join(doc))?;
    let tools = crate::front::load::load_tools(&root.join(tools_dir))?;
    let found = check_project(
        &api,
        config,
        &tools,
        &report.validated.desired.restaurants,
        &root.join(template),
    );
    if !found.errors.is_empty() {
        return Err(found.errors);
    }
    report
        .warnings
        .extend(found.warnings(&root.join(crate::front::load::PROJECT_FILE)));
    Ok(Some(found))
}
