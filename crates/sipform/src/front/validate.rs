//! Everything sipform wants, checked: tools, template, restaurants, rendered agents.
//!
//! JSON Schema catches shape errors per file; the semantic checks here catch what no schema can
//! express (names unique across files, expression roots and references, condition keys present
//! in every agent's config, absolute URLs). Every problem is collected; nothing touches the
//! network.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin, Skipped, Sourced};
use crate::front::expr::{self, Root};
use crate::front::load::{self, Document, LoadedTool};
use crate::front::par::par_map;
use crate::front::render::{string_leaves, RenderEnv, Renderer, TenantExpression};
use crate::front::schema::Kind;
use crate::front::yaml;
use crate::front::InventoryRead;
use crate::model::ids::RestaurantId;
use crate::model::secret::Secret;
use crate::model::spec::{
    restaurant_id_problem, Desired, DesiredPhoneLine, DesiredRestaurant, InventoryConfig,
    PhoneLineSource, PhoneLineSpec, PhoneProvider, Project, RenderedAgent, Restaurant, ToolSpec,
};

/// The context keys the session's `initialContext` provides (contract, Expressions table).
pub const INITIAL_CONTEXT_KEYS: &[&str] = &[
    "item_map",
    "customer_id",
    "customer_name",
    "customer_delivery_lat",
    "customer_delivery_lng",
    "avg_prep_time_min",
    "delivery_enabled",
    "restaurant_id",
    "transfer_phone",
];

/// The context keys the server sets itself.
pub const SERVER_CONTEXT_KEYS: &[&str] = &["call_id", "caller_phone"];

/// The project and everything it wants to exist.
#[derive(Debug, Clone)]
pub struct Validated {
    pub project: Project,
    pub desired: Desired,
}

/// What `sipform validate` reports on success.
#[derive(Debug, Clone)]
pub struct Report {
    pub validated: Validated,
    /// Tool files loaded.
    pub tools: usize,
    /// Restaurants that need an agent.
    pub agents: usize,
    /// Restaurants left out because their own input is invalid (their file or row, their
    /// rendered agent), each with its problems; the others are in `validated`. Their ids are
    /// held in [`Desired::held`], so nothing plans them as gone.
    pub skipped: Vec<Skipped>,
    /// What is worth fixing but does not stop a run (a tool parameter without a description:
    /// the voice model then guesses what to put in it).
    pub warnings: Diagnostics,
}

impl Report {
    /// Every problem is an error: the report only when no restaurant was skipped (what
    /// `validate`, `render` and the library's `desired*` functions want).
    pub fn into_strict(self) -> Result<Report, Diagnostics> {
        if self.skipped.is_empty() {
            Ok(self)
        } else {
            Err(skipped_diagnostics(&self.skipped))
        }
    }
}

/// The problems of skipped restaurants, one list; a template mistake that fails many
/// restaurants the same way is one line with a count.
pub fn skipped_diagnostics(skipped: &[Skipped]) -> Diagnostics {
    let mut all = Diagnostics::default();
    for s in skipped {
        all.extend(s.diagnostics.clone());
    }
    fold_repeats(all)
}

/// Loads, renders and checks the project at `root`, restaurants from its `inventory` folder.
pub fn desired(root: &Path, env: &RenderEnv) -> Result<Validated, Diagnostics> {
    check(root, env).map(|r| r.validated)
}

/// As [`desired`], with restaurants read elsewhere (the platform's database).
pub fn desired_with(
    root: &Path,
    env: &RenderEnv,
    restaurants: Vec<Sourced<Restaurant>>,
) -> Result<Validated, Diagnostics> {
    check_with(root, env, restaurants).map(|r| r.validated)
}

/// [`check`] with restaurants read elsewhere (the platform's database).
pub fn check_with(
    root: &Path,
    env: &RenderEnv,
    restaurants: Vec<Sourced<Restaurant>>,
) -> Result<Report, Diagnostics> {
    check_project(root, load::load_project_file(root)?, env, Some(restaurants))
}

/// [`desired`] with counts for a summary line.
pub fn check(root: &Path, env: &RenderEnv) -> Result<Report, Diagnostics> {
    check_project(root, load::load_project_file(root)?, env, None)
}

/// [`check`] for a project already read (settings parse `sipform.yaml` once per run):
/// restaurants from `restaurants` when given, else from the project's files inventory. Every
/// problem is an error, a skipped restaurant's too (see [`check_inventory`] for a run that
/// goes on without them).
pub fn check_project(
    root: &Path,
    project: Project,
    env: &RenderEnv,
    restaurants: Option<Vec<Sourced<Restaurant>>>,
) -> Result<Report, Diagnostics> {
    let read = restaurants.map(|restaurants| InventoryRead {
        restaurants,
        ..InventoryRead::default()
    });
    check_inventory(root, project, env, read).and_then(Report::into_strict)
}

/// [`check_project`] for plan and apply: a restaurant whose own input is invalid is skipped
/// (in [`Report::skipped`]) and the others are checked and returned. A problem in what every
/// restaurant shares (tools, the template's syntax, `sipform.yaml`, an unreadable inventory
/// folder) fails the whole check, with every problem found. `inventory` is what a database
/// read (restaurants and rows already refused); `None` reads the project's files inventory.
pub fn check_inventory(
    root: &Path,
    project: Project,
    env: &RenderEnv,
    inventory: Option<InventoryRead>,
) -> Result<Report, Diagnostics> {
    let read = match inventory {
        Some(read) => Ok(read),
        None => match &project.inventory {
            InventoryConfig::Files { path } => load::read_restaurant_files(&root.join(path)),
            InventoryConfig::Database { .. } => Err(Diagnostics::from(Diagnostic::new(
                Origin::file_start(root.join(load::PROJECT_FILE)),
                "inventory",
                "restaurants come from the database here; this check reads files only",
            ))),
        },
    };
    match read {
        Ok(read) => {
            // Each restaurant with its file, when it has one (rows have none).
            let docs = read.docs.into_iter().map(Some).chain(std::iter::repeat(None));
            let entries = read
                .restaurants
                .into_iter()
                .zip(docs)
                .map(|(restaurant, doc)| Entry { restaurant, doc })
                .collect();
            build(root, project, env, entries, read.skipped)
        }
        Err(mut diags) => {
            // Still check tools and template, so one run shows every problem.
            if let Err(more) = build(root, project, env, Vec::new(), Vec::new()) {
                diags.extend(more);
            }
            Err(diags)
        }
    }
}

/// One restaurant of the inventory, with its file when it has one (to point at a column).
struct Entry {
    restaurant: Sourced<Restaurant>,
    doc: Option<Document>,
}

impl Entry {
    /// Where the restaurant's `column` is written: its line in a file, else its row.
    fn origin_of(&self, column: &str) -> Origin {
        match &self.doc {
            Some(d) => d.origin(&format!("/{}", yaml::escape_token(column))),
            None => self.restaurant.origin.clone(),
        }
    }
}

/// One rendered restaurant, with what is needed to point at its problems.
struct RenderedOne {
    /// Its index among the entries (and their problems).
    index: usize,
    restaurant: Sourced<Restaurant>,
    agent: RenderedAgent,
    config_keys: HashSet<String>,
    /// What [`check_agent`] found, checked while rendering (the rendered tree is not kept:
    /// 100,000 of them were most of a large inventory's memory), reported after the tools'.
    checked: Diagnostics,
}

fn build(
    root: &Path,
    project: Project,
    env: &RenderEnv,
    entries: Vec<Entry>,
    mut skipped: Vec<Skipped>,
) -> Result<Report, Diagnostics> {
    // Problems of what every restaurant shares: they fail the whole check.
    let mut diags = Diagnostics::default();
    let tools = match load::load_tools(&root.join(&project.tools_dir)) {
        Ok(t) => t,
        Err(d) => {
            diags.extend(d);
            Vec::new()
        }
    };
    let template_path = root.join(&project.template);
    let renderer = match Renderer::from_file(&template_path) {
        Ok(r) => Some(r),
        Err(e) => {
            diags.push(Diagnostic::new(
                Origin::file(
                    &template_path,
                    e.line.unwrap_or(0),
                    usize::from(e.line.is_some()),
                ),
                "",
                e.message,
            ));
            None
        }
    };

    // Problems of one restaurant, by entry: they skip that restaurant only.
    let mut problems: Vec<Diagnostics> = vec![Diagnostics::default(); entries.len()];
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let id = e.restaurant.value.id.as_str();
        if let Some(m) = restaurant_id_problem(id) {
            problems[i].push(Diagnostic::new(e.origin_of("id"), "id", m));
            continue;
        }
        by_id.entry(id).or_default().push(i);
    }
    // Two restaurants claiming one id: which is right cannot be told, so neither is planned.
    for (id, at) in &by_id {
        if at.len() < 2 {
            continue;
        }
        for &i in at {
            let others: Vec<String> = at
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| entries[j].origin_of("id").to_string())
                .collect();
            problems[i].push(Diagnostic::new(
                entries[i].origin_of("id"),
                "id",
                format!(
                    "duplicate restaurant id `{id}` (also at {})",
                    others.join(", ")
                ),
            ));
        }
    }

    // Phone lines: the password is read from the environment variable a block names; one
    // that is unset refuses the restaurant (naming the variable, never a value).
    let mut lines: Vec<Option<DesiredPhoneLine>> = vec![None; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if !problems[i].is_empty() {
            continue;
        }
        match phone_line(&project, &e.restaurant.value) {
            Ok(l) => lines[i] = l,
            Err(m) => {
                let (at, field) = match (&e.doc, &e.restaurant.value.platform.phone_line) {
                    (_, Some(line)) => (
                        Origin::Row {
                            table: "phone_lines".into(),
                            key: line.id.clone(),
                        },
                        "sip_password",
                    ),
                    (Some(d), None) => (
                        d.origin("/phone_line/sip_password_env"),
                        "phone_line.sip_password_env",
                    ),
                    (None, None) => (e.restaurant.origin.clone(), "phone_line.sip_password_env"),
                };
                problems[i].push(Diagnostic::new(at, field, m))
            }
        }
    }

    let mut rendered: Vec<RenderedOne> = Vec::with_capacity(entries.len());
    if let Some(renderer) = &renderer {
        // Rendering and parsing is most of the work, and each restaurant's is its own.
        let outcomes = par_map(&entries, |i, e| {
            if !problems[i].is_empty() {
                return None;
            }
            let r = &e.restaurant;
            Some(
                render_one(renderer, &project, env, r).map(|(agent, value)| {
                    let tainted =
                        renderer.tenant_expressions(&r.value, env, &project.account, &value);
                    let config_keys = match serde_json::to_value(&agent.agent.config) {
                        Ok(Value::Object(m)) => m.keys().cloned().collect(),
                        _ => HashSet::new(),
                    };
                    let mut checked = Diagnostics::default();
                    if tainted.is_empty() {
                        check_agent(renderer, r, &value, &config_keys, &mut checked);
                    }
                    (agent, tainted, config_keys, checked)
                }),
            )
        });
        for (i, (e, outcome)) in entries.iter().zip(outcomes).enumerate() {
            let Some(outcome) = outcome else {
                continue;
            };
            let r = &e.restaurant;
            match outcome {
                Ok((agent, tainted, config_keys, checked)) => {
                    if !tainted.is_empty() {
                        for t in tainted {
                            problems[i].push(tenant_diag(e, &t));
                        }
                        continue;
                    }
                    rendered.push(RenderedOne {
                        index: i,
                        restaurant: r.clone(),
                        agent,
                        config_keys,
                        checked,
                    });
                }
                Err(d) => problems[i].extend(d),
            }
        }
    }

    check_tools(&tools, &rendered, &mut diags, &mut problems);
    for one in &mut rendered {
        problems[one.index].extend(std::mem::take(&mut one.checked));
    }

    let bad: Vec<bool> = problems.iter().map(|p| !p.is_empty()).collect();
    for (e, p) in entries.iter().zip(&mut problems) {
        if !p.is_empty() {
            skipped.push(Skipped::new(
                Some(e.restaurant.value.id.to_string()),
                e.restaurant.origin.clone(),
                std::mem::take(p),
            ));
        }
    }
    let ok: Vec<RenderedOne> = rendered.into_iter().filter(|o| !bad[o.index]).collect();
    if !diags.is_empty() {
        diags.extend(skipped_diagnostics(&skipped));
        return Err(diags);
    }

    let mut sorted: Vec<ToolSpec> = tools.iter().map(|t| t.spec.clone()).collect();
    sorted.sort_by_key(|t| t.sort_order);
    let sorted = crate::model::spec::SharedTools::from(sorted);
    let agents = ok
        .iter()
        .filter(|o| o.restaurant.value.needs_agent())
        .count();
    let desired = Desired {
        account: project.account.clone(),
        restaurants: ok
            .into_iter()
            .map(|o| DesiredRestaurant {
                id: o.restaurant.value.id.clone(),
                create_if_missing: o.restaurant.value.needs_agent(),
                final_customer: o.agent.final_customer,
                agent: o.agent.agent,
                tools: sorted.clone(),
                billing_plan: project.billing.plan.clone(),
                phone_line: lines[o.index].take(),
                platform_agent: o.restaurant.value.platform.agent_id.clone(),
                platform_final_customer: o.restaurant.value.platform.final_customer_id.clone(),
            })
            .collect(),
        held: skipped
            .iter()
            .filter_map(|s| s.id.as_deref().map(RestaurantId::new))
            .collect(),
        hold_all: skipped.iter().any(|s| s.id.is_none()),
    };
    let mut warnings = Diagnostics::default();
    for t in &tools {
        for (name, p) in &t.spec.parameters.properties {
            undescribed(
                &t.doc,
                &format!("/parameters/properties/{}", yaml::escape_token(name)),
                p,
                &mut warnings,
            );
        }
    }
    Ok(Report {
        validated: Validated { project, desired },
        tools: tools.len(),
        agents,
        skipped,
        warnings,
    })
}

/// The phone line `r` wants under `project.phone_lines`; `Err` says why it is refused.
fn phone_line(project: &Project, r: &Restaurant) -> Result<Option<DesiredPhoneLine>, String> {
    match project.phone_lines.source {
        PhoneLineSource::RestaurantPhone => Ok(r.phone.as_ref().map(|phone| DesiredPhoneLine {
            spec: PhoneLineSpec {
                phone_number: phone.clone(),
                provider: Some(PhoneProvider::Twilio),
                sip_transport: None,
                stun_server: None,
                sip_domain: None,
                sip_username: None,
                sip_password_env: None,
                twilio_trunk_sid: None,
                is_active: true,
            },
            password: None,
            platform_line: None,
        })),
        PhoneLineSource::Block => {
            // A platform row that could not be read or decrypted refuses the restaurant.
            if let Some(Err(m)) = r.platform.phone_line.as_ref().map(|l| &l.password) {
                return Err(m.clone());
            }
            let Some(spec) = &r.phone_line else {
                return Ok(None);
            };
            let password = match (&spec.sip_password_env, &r.platform.phone_line) {
                // The platform's table: decrypted by the inventory, or why it could not be.
                (None, Some(line)) => line.password.clone()?,
                (None, None) => None,
                (Some(name), _) => match std::env::var(name) {
                    Ok(v) if !v.is_empty() => Some(Secret::new(v)),
                    _ => {
                        return Err(format!(
                            "names the environment variable `{name}`, which is not set (or empty): this restaurant is skipped, nothing is sent for it"
                        ))
                    }
                },
            };
            let mut spec = spec.clone();
            spec.provider = Some(spec.provider());
            let platform_line = r.platform.phone_line.as_ref().map(|l| l.id.clone());
            Ok(Some(DesiredPhoneLine {
                spec,
                password,
                platform_line,
            }))
        }
    }
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

/// A template mistake fails every restaurant the same way: report it once, with a count, instead
/// of a thousand identical lines.
fn fold_repeats(diags: Diagnostics) -> Diagnostics {
    let mut out: Vec<(Diagnostic, String, usize)> = Vec::new();
    for d in diags.0 {
        let base = d
            .message
            .split(" (rendering restaurant ")
            .next()
            .and_then(|m| m.split(" (restaurant ").next())
            .unwrap_or(&d.message)
            .to_string();
        match out
            .iter_mut()
            .find(|(o, b, _)| o.origin == d.origin && o.field == d.field && *b == base)
        {
            Some((_, _, n)) => *n += 1,
            None => out.push((d, base, 0)),
        }
    }
    Diagnostics(
        out.into_iter()
            .map(|(mut d, _, n)| {
                if n > 0 {
                    d.message.push_str(&format!(
                        " (and {n} more restaurant{})",
                        if n == 1 { "" } else { "s" }
                    ));
                }
                d
            })
            .collect(),
    )
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
pub fn template_position(source: &str, pointer: &str) -> (usize, usize) {
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

/// Where an expression sits decides which roots it may use.
fn allowed_roots(pointer: &str) -> &'static [Root] {
    use Root::*;
    if pointer == "/http/url" {
        &[BaseUrl, Config, Ai, Ctx]
    } else if pointer.starts_with("/http/bodyTemplate") {
        &[Config, Ai, Ctx]
    } else if pointer.starts_with("/contextUpdates") || pointer == "/extraCostResponseField" {
        &[Res, Config]
    } else if pointer == "/agent/basePrompt" {
        &[Data, Config]
    } else if pointer == "/agent/onCallEndWebhook" {
        &[BaseUrl, Config]
    } else if pointer == "/agent/externalSessionUrl" {
        &[CallerPhone, Config]
    } else {
        &[Config]
    }
}

/// A config key a tool uses must be in every rendered agent's config. When no restaurant has
/// it the tool is wrong: a shared error, at the tool. When only some lack it, their rendered
/// agents are: those restaurants are skipped, the others go on. `prefix` begins the message.
#[allow(clippy::too_many_arguments)]
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

fn roots_list(roots: &[Root]) -> String {
    roots
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_tools(
    tools: &[LoadedTool],
    rendered: &[RenderedOne],
    diags: &mut Diagnostics,
    problems: &mut [Diagnostics],
) {
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
    let mut names: HashMap<&str, Origin> = HashMap::new();
    let mut orders: HashMap<i64, (Origin, &str)> = HashMap::new();
    let bases: BTreeSet<&str> = if rendered.is_empty() {
        // No restaurant: still check that a tool URL is absolute once BASE_URL is a URL.
        BTreeSet::from(["http://localhost"])
    } else {
        rendered
            .iter()
            .map(|o| o.agent.agent.api_base_url.as_str())
            .collect()
    };

    for t in tools {
        let s = &t.spec;
        let d = &t.doc;
        if let Some(first) = names.get(s.name.as_str()) {
            diags.push(d.diag(
                "/name",
                format!("duplicate tool name `{}` (also at {first})", s.name),
            ));
        } else {
            names.insert(&s.name, d.origin("/name"));
        }
        if let Some((first, other)) = orders.get(&s.sort_order) {
            diags.push(d.diag(
                "/sortOrder",
                format!(
                    "duplicate sortOrder {} (tool `{other}` at {first} has it too)",
                    s.sort_order
                ),
            ));
        } else {
            orders.insert(s.sort_order, (d.origin("/sortOrder"), &s.name));
        }
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
        if let Some(c) = &s.condition {
            if c.operator.needs_value() && c.value.is_none() {
                diags.push(d.diag(
                    "/condition/operator",
                    "operator eq/neq needs a `value` to compare with",
                ));
            }
            require_config_key(
                d,
                "/condition/configKey",
                &format!("config key `{}` is not", c.config_key),
                &c.config_key,
                rendered,
                diags,
                problems,
            );
        }
        for (i, r) in s.parameters.required.iter().enumerate() {
            if !s.parameters.properties.contains_key(r) {
                diags.push(d.diag(
                    &format!("/parameters/required/{i}"),
                    format!("required parameter `{r}` is not among the properties"),
                ));
            }
        }

        let mut sites = Vec::new();
        string_leaves(&d.value, String::new(), &mut sites);
        for (pointer, text) in sites {
            let expression_site = pointer == "/http/url"
                || pointer.starts_with("/http/bodyTemplate/")
                || pointer.starts_with("/contextUpdates/")
                || pointer == "/extraCostResponseField";
            if !expression_site {
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
                if !allowed.contains(&r.root) {
                    diags.push(d.diag(
                        &pointer,
                        format!(
                            "`{}` cannot be used here (at character {}); allowed: {}",
                            r.root,
                            r.offset + 1,
                            roots_list(allowed)
                        ),
                    ));
                    continue;
                }
                let first = r.segments.first().map(String::as_str);
                match (r.root, first) {
                    (Root::Ai, None) => diags.push(d.diag(&pointer, "`$ai` needs a parameter name: `$ai.<parameter>`")),
                    (Root::Ai, Some(p)) if !s.parameters.properties.contains_key(p) => {
                        diags.push(d.diag(
                            &pointer,
                            format!("`$ai.{p}`: `{p}` is not a parameter of tool `{}`", s.name),
                        ))
                    }
                    (Root::Ctx, None) => diags.push(d.diag(&pointer, "`ctx` needs a key: `ctx.<key>`")),
                    (Root::Ctx, Some(k)) if !producers.contains(k) => diags.push(d.diag(
                        &pointer,
                        format!("`ctx.{k}`: no tool's contextUpdates, initialContext key or server key sets `{k}`"),
                    )),
                    (Root::Config, Some(k)) => require_config_key(
                        d,
                        &pointer,
                        &format!("`config.{k}`: not"),
                        k,
                        rendered,
                        diags,
                        problems,
                    ),
                    _ => {}
                }
            }
        }

        if let Some(http) = &s.http {
            for base in &bases {
                match expr::substitute_base_url(&http.url, base) {
                    Ok(url) if !is_absolute_http(&url) => diags.push(d.diag(
                        "/http/url",
                        format!("`{url}` is not an absolute http(s) URL once BASE_URL is `{base}`"),
                    )),
                    _ => {}
                }
            }
        }
    }
}

/// `http://host…` or `https://host…` with a non-empty host.
pub fn is_absolute_http(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    !host.is_empty() && !host.contains(char::is_whitespace)
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
            if !allowed.contains(&r.root) {
                diags.push(rendered_diag(
                    renderer,
                    restaurant,
                    &pointer,
                    format!(
                        "`{}` cannot be used here (at character {}); allowed: {}",
                        r.root,
                        r.offset + 1,
                        roots_list(allowed)
                    ),
                ));
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

/// The folder of restaurants a project reads, when it reads files.
pub fn restaurants_dir(root: &Path, project: &Project) -> Option<PathBuf> {
    match &project.inventory {
        InventoryConfig::Files { path } => Some(root.join(path)),
        InventoryConfig::Database { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_template_errors_fold() {
        let d = |id: &str| {
            Diagnostic::new(
                Origin::file("t.j2", 3, 1),
                "",
                format!("undefined (rendering restaurant {id} from r/{id}.yaml:1:1)"),
            )
        };
        let folded = fold_repeats(Diagnostics(vec![d("a"), d("b"), d("c")]));
        assert_eq!(folded.len(), 1);
        assert!(
            folded.0[0].message.ends_with("(and 2 more restaurants)"),
            "{folded}"
        );
    }

    #[test]
    fn absolute_urls() {
        assert!(is_absolute_http("http://localhost:3000/api"));
        assert!(is_absolute_http("https://a.b?x={{config.y}}"));
        assert!(!is_absolute_http("/api/x"));
        assert!(!is_absolute_http("http:///x"));
        assert!(!is_absolute_http("ftp://a"));
    }

    #[test]
    fn template_lines_follow_the_pointer() {
        let src = "a:\n  name: x\nagent:\n  name: y\n  config:\n    k: 1\n";
        assert_eq!(template_position(src, "/agent/name"), (4, 3));
        assert_eq!(template_position(src, "/agent/config/k"), (6, 5));
        assert_eq!(template_position(src, "/agent/zzz"), (3, 1));
    }

    #[test]
    fn roots_per_site() {
        assert!(allowed_roots("/http/url").contains(&Root::BaseUrl));
        assert!(!allowed_roots("/http/bodyTemplate/x").contains(&Root::Res));
        assert!(allowed_roots("/contextUpdates/x").contains(&Root::Res));
        assert!(!allowed_roots("/agent/name").contains(&Root::Data));
    }

    #[test]
    fn a_bad_restaurant_is_skipped_and_held_the_others_go_on() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let env = RenderEnv {
            app_url: "http://localhost:3000".into(),
        };
        let row = |id: &str, name: &str| Sourced {
            value: serde_json::from_value::<Restaurant>(
                serde_json::json!({"id": id, "name": name}),
            )
            .unwrap(),
            origin: Origin::Row {
                table: "restaurants".into(),
                key: id.into(),
            },
        };
        let a = "00000000-0000-4000-8000-00000000000a";
        let b = "00000000-0000-4000-8000-00000000000b";
        let read = InventoryRead {
            restaurants: vec![row(a, "A"), row(b, "={{callerPhone}}"), row("x?y/../", "C")],
            ..InventoryRead::default()
        };
        let project = load::load_project_file(&root).unwrap();
        let r = check_inventory(&root, project.clone(), &env, Some(read.clone())).unwrap();
        let ids: Vec<&str> = r
            .validated
            .desired
            .restaurants
            .iter()
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(ids, [a]);
        assert_eq!(r.skipped.len(), 2);
        assert!(r.validated.desired.holds(&RestaurantId::new(b)));
        assert!(r.validated.desired.holds(&RestaurantId::new("x?y/../")));
        assert!(!r.validated.desired.hold_all);
        let text = skipped_diagnostics(&r.skipped).to_string();
        assert!(
            text.contains("agent.name") && text.contains("UUID"),
            "{text}"
        );
        // The strict form fails with the same problems.
        let strict = check_project(&root, project, &env, Some(read.restaurants)).unwrap_err();
        assert_eq!(strict.to_string(), text);
    }

    #[test]
    fn bundled_project_is_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.as_path();
        let env = RenderEnv {
            app_url: "http://localhost:3000".into(),
        };
        let r = check(root, &env).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(r.tools, 12);
        let d = &r.validated.desired;
        assert!(d.restaurants.len() >= 3);
        for one in &d.restaurants {
            let orders: Vec<i64> = one.tools.iter().map(|t| t.sort_order).collect();
            assert_eq!(orders, (1..=12).collect::<Vec<_>>());
        }
    }
}
