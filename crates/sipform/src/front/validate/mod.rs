//! Everything sipform wants, checked: tools, template, restaurants, rendered agents.
//!
//! JSON Schema catches shape errors per file; the semantic checks here catch what no schema can
//! express (names unique across files, expression roots and references, condition keys present
//! in every agent's config, absolute URLs). Every problem is collected; nothing touches the
//! network.
//!
//! One file per job: `restaurants` (each restaurant's id and phone line), `agents` (rendering
//! the template per restaurant and checking the rendered agent), `tools` (the tools' checks
//! and warnings), `expressions` (which roots and context keys an expression may name). This
//! file strings them together and assembles what the project wants.

mod agents;
mod expressions;
mod restaurants;
mod tools;

use std::path::Path;

use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin, Skipped, Sourced};
use crate::front::load::{self, Document, LoadedTool};
use crate::front::render::{RenderEnv, Renderer};
use crate::front::yaml;
use crate::front::InventoryRead;
use crate::model::ids::RestaurantId;
use crate::model::spec::{
    parse_timezone, Desired, DesiredPhoneLine, DesiredRestaurant, Project, Restaurant, SharedTools,
    ToolSpec, DEFAULT_TIMEZONE,
};

use agents::RenderedOne;

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
    pub(crate) fn into_strict(self) -> Result<Report, Diagnostics> {
        if self.skipped.is_empty() {
            Ok(self)
        } else {
            Err(skipped_diagnostics(&self.skipped))
        }
    }
}

/// The problems of skipped restaurants, one list; a template mistake that fails many
/// restaurants the same way is one line with a count.
pub(crate) fn skipped_diagnostics(skipped: &[Skipped]) -> Diagnostics {
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
pub(crate) fn check_with(
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
pub(crate) fn check_project(
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

/// The restaurant files of a project whose inventory is a folder (the offline entry points
/// above; plan, apply and the controller read through `inventory::open`).
fn read_files_inventory(root: &Path, project: &Project) -> Result<InventoryRead, Diagnostics> {
    let Some(dir) = project.inventory.files_dir() else {
        return Err(Diagnostics::from(Diagnostic::new(
            Origin::file_start(root.join(load::PROJECT_FILE)),
            "inventory",
            "restaurants come from the database here; this check reads files only",
        )));
    };
    load::read_restaurant_files(&root.join(dir))
}

/// [`check_project`] for plan and apply: a restaurant whose own input is invalid is skipped
/// (in [`Report::skipped`]) and the others are checked and returned. A problem in what every
/// restaurant shares (tools, the template's syntax, `sipform.yaml`, an unreadable inventory
/// folder) fails the whole check, with every problem found. `inventory` is what the
/// inventory read (restaurants and rows already refused); `None` reads the project's files.
pub(crate) fn check_inventory(
    root: &Path,
    project: Project,
    env: &RenderEnv,
    inventory: Option<InventoryRead>,
) -> Result<Report, Diagnostics> {
    let read = match inventory {
        Some(read) => Ok(read),
        None => read_files_inventory(root, &project),
    };
    match read {
        Ok(read) => {
            // Each restaurant with its file, when it has one (rows have none).
            let docs = read
                .docs
                .into_iter()
                .map(Some)
                .chain(std::iter::repeat(None));
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

/// Checks what every restaurant shares (tools, template) and each entry; a restaurant whose
/// own input is invalid joins `skipped`, a shared problem fails the whole check.
fn build(
    root: &Path,
    project: Project,
    env: &RenderEnv,
    entries: Vec<Entry>,
    mut skipped: Vec<Skipped>,
) -> Result<Report, Diagnostics> {
    // Problems of what every restaurant shares: they fail the whole check.
    let mut diags = Diagnostics::default();
    let tools = load_tools(root, &project, &mut diags);
    let renderer = load_template(root, &project, &mut diags);

    // Problems of one restaurant, by entry: they skip that restaurant only.
    let mut problems = restaurants::id_problems(&entries);
    restaurants::value_problems(&entries, &mut problems);
    let mut lines = restaurants::phone_lines(&project, &entries, &mut problems);
    let mut rendered = match &renderer {
        Some(renderer) => agents::render_all(renderer, &project, env, &entries, &mut problems),
        None => Vec::new(),
    };
    tools::check_tools(&tools, &rendered, &mut diags, &mut problems);
    for one in &mut rendered {
        problems[one.index].extend(std::mem::take(&mut one.checked));
    }

    let bad: Vec<bool> = problems.iter().map(|p| !p.is_empty()).collect();
    skip_refused(&entries, &mut problems, &mut skipped);
    let ok: Vec<RenderedOne> = rendered.into_iter().filter(|o| !bad[o.index]).collect();
    if !diags.is_empty() {
        diags.extend(skipped_diagnostics(&skipped));
        return Err(diags);
    }

    let agents = ok
        .iter()
        .filter(|o| o.restaurant.value.needs_agent())
        .count();
    let desired = assemble(&project, &tools, ok, &mut lines, &skipped);
    Ok(Report {
        warnings: tools::warnings(&tools),
        validated: Validated { project, desired },
        tools: tools.len(),
        agents,
        skipped,
    })
}

/// The project's tools; a problem reading them joins `diags`.
fn load_tools(root: &Path, project: &Project, diags: &mut Diagnostics) -> Vec<LoadedTool> {
    match load::load_tools(&root.join(&project.tools_dir)) {
        Ok(t) => t,
        Err(d) => {
            diags.extend(d);
            Vec::new()
        }
    }
}

/// The project's agent template, compiled; a syntax error joins `diags`.
fn load_template(root: &Path, project: &Project, diags: &mut Diagnostics) -> Option<Renderer> {
    let template_path = root.join(&project.template);
    let template_root = load::project_root_of(template_path.parent().unwrap_or(root));
    if let Err(d) = load::check_inside(&template_root, &template_path) {
        diags.push(d);
        return None;
    }
    match Renderer::from_file(&template_path) {
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
    }
}

/// Every entry with problems joins `skipped`, its problems taken.
fn skip_refused(entries: &[Entry], problems: &mut [Diagnostics], skipped: &mut Vec<Skipped>) {
    for (e, p) in entries.iter().zip(problems) {
        if !p.is_empty() {
            skipped.push(Skipped::new(
                Some(e.restaurant.value.id.to_string()),
                e.restaurant.origin.clone(),
                std::mem::take(p),
            ));
        }
    }
}

/// What the project wants: the checked restaurants (`ok`) with the tools every one shares and
/// their phone lines (taken from `lines`), the skipped ones held.
fn assemble(
    project: &Project,
    tools: &[LoadedTool],
    ok: Vec<RenderedOne>,
    lines: &mut [Option<DesiredPhoneLine>],
    skipped: &[Skipped],
) -> Desired {
    let mut sorted: Vec<ToolSpec> = tools.iter().map(|t| t.spec.clone()).collect();
    sorted.sort_by_key(|t| t.sort_order);
    let sorted = SharedTools::from(sorted);
    Desired {
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
                // Checked by `restaurants::value_problems`: an unknown zone skipped the row.
                timezone: parse_timezone(o.restaurant.value.timezone.as_deref())
                    .unwrap_or(DEFAULT_TIMEZONE),
                platform_agent: o.restaurant.value.platform.agent_id.clone(),
                platform_final_customer: o.restaurant.value.platform.final_customer_id.clone(),
            })
            .collect(),
        held: skipped
            .iter()
            .filter_map(|s| s.id.as_deref().map(RestaurantId::new))
            .collect(),
        hold_all: skipped.iter().any(|s| s.id.is_none()),
    }
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
