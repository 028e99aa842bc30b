//! `sipform init [DIR]`: a new project folder that validates as it is: `sipform.yaml`, the 12
//! shipped tools, the agent template, one example restaurant, the JSON Schemas the files name
//! for editors, and a `.gitignore` for state and saved plans. Nothing existing is overwritten:
//! when any file it would write is there, it writes nothing and names them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use sipform::front::schema::{to_text, SCHEMA_FILES};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// The folder to create or fill (relative to `-C`; default: the project folder itself).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The sip-agent-server account the project manages (`account.name`).
    #[arg(long, value_name = "NAME", default_value = "My platform")]
    pub account: String,
    /// The account's e-mail (`account.email`).
    #[arg(long, value_name = "EMAIL", default_value = "ops@example.com")]
    pub email: String,
}

/// The files every new project gets, beside `sipform.yaml` and the schemas: the tools and
/// template this binary was built with, and one restaurant to copy.
const FILES: &[(&str, &str)] = &[
    (
        "templates/agent.yaml.j2",
        include_str!("../../templates/agent.yaml.j2"),
    ),
    (
        "tools/cancel_order.yaml",
        include_str!("../../tools/cancel_order.yaml"),
    ),
    (
        "tools/cancel_reservation.yaml",
        include_str!("../../tools/cancel_reservation.yaml"),
    ),
    (
        "tools/check_availability.yaml",
        include_str!("../../tools/check_availability.yaml"),
    ),
    (
        "tools/check_order_status.yaml",
        include_str!("../../tools/check_order_status.yaml"),
    ),
    (
        "tools/confirm_order.yaml",
        include_str!("../../tools/confirm_order.yaml"),
    ),
    (
        "tools/confirm_reservation.yaml",
        include_str!("../../tools/confirm_reservation.yaml"),
    ),
    (
        "tools/end_call.yaml",
        include_str!("../../tools/end_call.yaml"),
    ),
    (
        "tools/leave_message.yaml",
        include_str!("../../tools/leave_message.yaml"),
    ),
    (
        "tools/log_new_faq.yaml",
        include_str!("../../tools/log_new_faq.yaml"),
    ),
    (
        "tools/lookup_reservation.yaml",
        include_str!("../../tools/lookup_reservation.yaml"),
    ),
    (
        "tools/save_customer_info.yaml",
        include_str!("../../tools/save_customer_info.yaml"),
    ),
    (
        "tools/transfer_call.yaml",
        include_str!("../../tools/transfer_call.yaml"),
    ),
    (
        "restaurants/le-bistrot-du-port.yaml",
        include_str!("../../restaurants/le-bistrot-du-port.yaml"),
    ),
];

const GITIGNORE: &str = "\
# sipform's state (the file backend), its journal and lock, and saved plans: never commit them.
sipform.state.json*
plan.json
";

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let root = match &args.dir {
        Some(d) if global.project == Path::new(".") => d.clone(),
        Some(d) => global.project.join(d),
        None => global.project.clone(),
    };
    let files = project_files(&args);
    let existing: Vec<String> = files
        .iter()
        .filter(|(rel, _)| root.join(rel).symlink_metadata().is_ok())
        .map(|(rel, _)| rel.clone())
        .collect();
    if !existing.is_empty() {
        let mut named = existing[..existing.len().min(3)].join(", ");
        if existing.len() > 3 {
            named.push_str(&format!(" and {} more", existing.len() - 3));
        }
        anyhow::bail!(
            "{} already holds {named}: init writes nothing over existing files (choose a new folder: sipform init DIR)",
            shown(&root),
        );
    }
    for (rel, text) in &files {
        write_new(&root.join(rel), text)?;
    }
    println!(
        "created a sipform project in {} ({} files): next, `sipform -C {} validate`",
        shown(&root),
        files.len(),
        root.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Every file of a new project, by path relative to its folder.
fn project_files(args: &Args) -> Vec<(String, String)> {
    let mut files = vec![
        ("sipform.yaml".to_string(), settings(args)),
        (".gitignore".to_string(), GITIGNORE.to_string()),
    ];
    files.extend(FILES.iter().map(|(p, t)| (p.to_string(), t.to_string())));
    files.extend(
        SCHEMA_FILES
            .iter()
            .map(|f| (format!("schema/{}", f.file_name), to_text(&(f.generate)()))),
    );
    files
}

/// `sipform.yaml`: the account, a local emulator as the server, file state and inventory.
fn settings(args: &Args) -> String {
    // A JSON string is a YAML scalar: any name or address stays one value.
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    format!(
        "# yaml-language-server: $schema=schema/project.schema.json
# sipform's settings: docs/settings.md lists each one and what overrides it.
account:
  name: {}
  email: {}
server:
  url: http://localhost:4000   # SIP_AGENT_SERVER_URL wins; the key is SIP_ACCOUNT_API_KEY
app:
  url: http://localhost:3000   # the agents' apiBaseUrl; NEXT_PUBLIC_APP_URL wins
state:
  backend: file
  path: sipform.state.json
inventory:
  source: files
  path: restaurants
",
        q(&args.account),
        q(&args.email)
    )
}

/// Writes a file that must not exist yet (another process may have made it since the check).
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn shown(root: &Path) -> String {
    if root.as_os_str().is_empty() || root == Path::new(".") {
        "the current folder".to_string()
    } else {
        root.display().to_string()
    }
}
