//! Every command shown in the README and in `docs/*.md` runs here, so a change that breaks an
//! example turns CI red.
//!
//! In a fenced block whose language is `console`, `sh`, `bash` or `shell`, a line starting
//! with `$ ` is a command (continued by a trailing `\` or by a heredoc's body). In a `console`
//! block the lines after a command are its output: each must appear in what the command
//! printed, in order (`…` matches anything, a line of only `…` any number of lines). A command
//! must exit 0, or the code its trailing comment names (`# … exit 2`). A block that cannot run
//! here (Docker, systemd, a download, a server that runs until stopped) has a
//! `<!-- not-tested: reason -->` line just above it; any other line in a tested block that is
//! neither a command nor output (an `sh` block's bare line) fails the test.
//!
//! Each page runs as one story in its own scratch folder holding a copy of the bundled
//! project, with `sipform` on PATH, an emulator started here as `SIP_AGENT_SERVER_URL` (the
//! pages' `http://127.0.0.1:4000` and `http://localhost:4000` are that emulator), and, for a
//! page that talks to PostgreSQL, a schema of its own as the search path (`PGOPTIONS`, read by
//! psql and by sipform's driver alike), dropped at the end.

#[path = "common/db.rs"]
mod db_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sipform_emulator::{Emulator, EmulatorConfig};

const BIN: &str = env!("CARGO_BIN_EXE_sipform");
/// The longest one documented command may take (a plan or apply of a few restaurants takes
/// well under a second).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const MARKER: &str = "<!-- not-tested:";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One command of a page and what the page says of it.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    /// Where it is written (`docs/settings.md:47`).
    place: String,
    /// The command, heredoc bodies and continuation lines included.
    command: String,
    /// The output lines shown after it (console blocks).
    output: Vec<String>,
    /// The exit code its comment names, else 0.
    exit: i32,
}

/// The commands of a Markdown page, in order; an error names each line that is neither a
/// command nor output in a tested block.
fn parse(page: &str, text: &str) -> Result<Vec<Example>, Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut examples = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        if !trimmed.starts_with("```") {
            i += 1;
            continue;
        }
        let indent = lines[i].len() - trimmed.len();
        let lang = trimmed
            .trim_start_matches('`')
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let marked = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.trim_start().starts_with(MARKER));
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && !lines[end].trim_start().starts_with("```") {
            end += 1;
        }
        let body: Vec<(usize, &str)> = (start..end)
            .map(|n| (n + 1, strip_indent(lines[n], indent)))
            .collect();
        i = end + 1;
        let console = lang == "console";
        if marked || !(console || ["sh", "bash", "shell"].contains(&lang.as_str())) {
            continue;
        }
        parse_block(page, &body, console, &mut examples, &mut errors);
    }
    if errors.is_empty() {
        Ok(examples)
    } else {
        Err(errors)
    }
}

fn strip_indent(line: &str, indent: usize) -> &str {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    &line[spaces.min(indent)..]
}

fn parse_block(
    page: &str,
    body: &[(usize, &str)],
    console: bool,
    examples: &mut Vec<Example>,
    errors: &mut Vec<String>,
) {
    let mut k = 0;
    // Output belongs to a command of this block, never to one of an earlier block.
    let mut has_command = false;
    while k < body.len() {
        let (n, line) = body[k];
        k += 1;
        let Some(first) = line.strip_prefix("$ ") else {
            let bare = line.trim();
            if bare.is_empty() || (!console && bare.starts_with('#')) {
                continue;
            }
            if console && has_command {
                if let Some(last) = examples.last_mut() {
                    last.output.push(line.to_string());
                }
                continue;
            }
            errors.push(format!(
                "{page}:{n}: neither a `$ ` command nor its output: {line:?} (mark the block <!-- not-tested: reason --> if it cannot run)"
            ));
            continue;
        };
        let mut command = first.to_string();
        // A trailing backslash continues the command.
        while command.ends_with('\\') && k < body.len() {
            command.push('\n');
            command.push_str(body[k].1);
            k += 1;
        }
        // A heredoc's body runs to its terminator.
        if let Some(word) = heredoc_word(first) {
            while k < body.len() {
                let l = body[k].1;
                k += 1;
                command.push('\n');
                command.push_str(l);
                if l.trim() == word {
                    break;
                }
            }
        }
        examples.push(Example {
            place: format!("{page}:{n}"),
            command,
            output: Vec::new(),
            exit: expected_exit(first),
        });
        has_command = true;
    }
}

/// `WORD` of `<<'WORD'`, `<<"WORD"`, `<<WORD` or `<<-WORD`.
fn heredoc_word(line: &str) -> Option<String> {
    let at = line.find("<<")?;
    let rest = line[at + 2..].trim_start_matches('-').trim_start();
    let word: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// The exit code a command's trailing comment names (`# … exit 2`), else 0.
fn expected_exit(line: &str) -> i32 {
    let Some(comment) = line.find(" #").map(|i| &line[i + 2..]) else {
        return 0;
    };
    let words: Vec<&str> = comment
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .find(|w| w[0] == "exit")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(0)
}

/// Whether `expected` (with `…` wildcards) appears in `actual`'s lines, in order; else the
/// first expected line that does not.
fn missing_output<'a>(expected: &'a [String], actual: &str) -> Option<&'a str> {
    let lines: Vec<&str> = actual.lines().map(str::trim_end).collect();
    let mut from = 0;
    for want in expected {
        let want_t = want.trim_end();
        if want_t.trim() == "…" {
            continue;
        }
        match (from..lines.len()).find(|&j| matches_line(want_t, lines[j])) {
            Some(j) => from = j + 1,
            None => return Some(want.as_str()),
        }
    }
    None
}

/// `pattern` with each `…` matching any text, against the whole of `line`.
fn matches_line(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let Some(mut rest) = line.strip_prefix(parts[0]) else {
        return false;
    };
    let last = parts.len() - 1;
    for (idx, part) in parts.iter().enumerate().skip(1) {
        if idx == last {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// A throwaway PostgreSQL schema, dropped on drop.
struct PgSchema {
    name: String,
}

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

impl PgSchema {
    fn new(rt: &tokio::runtime::Runtime) -> PgSchema {
        use sqlx::Connection;
        let name = format!("sipform_docs_{}", uuid::Uuid::new_v4().simple());
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(PG_URL)
                .await
                .expect("PostgreSQL must run at 127.0.0.1:5432 with trust auth (see .ci/run)");
            sqlx::raw_sql(&format!("CREATE SCHEMA {name}"))
                .execute(&mut c)
                .await
                .expect("create schema");
            c.close().await.ok();
        });
        PgSchema { name }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        use sqlx::Connection;
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Runtime::new() else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(PG_URL).await {
                    let _ = sqlx::raw_sql(&format!("DROP SCHEMA {name} CASCADE"))
                        .execute(&mut c)
                        .await;
                    c.close().await.ok();
                }
            });
        })
        .join();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

/// A scratch folder holding the bundled project, as a clone of the repository has it.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["tools", "templates", "restaurants", "schema"] {
        copy_tree(&repo().join(sub), &dir.path().join(sub));
    }
    std::fs::copy(repo().join("sipform.yaml"), dir.path().join("sipform.yaml")).expect("copy");
    dir
}

/// Runs every command of `page` (relative to the repository) in order; panics naming each
/// that fails.
fn run_page(page: &str) {
    let text = std::fs::read_to_string(repo().join(page)).expect("read page");
    let examples = parse(page, &text).unwrap_or_else(|errors| panic!("{}", errors.join("\n")));
    if examples.is_empty() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let emulator = rt
        .block_on(Emulator::start(EmulatorConfig::default()))
        .expect("emulator starts");
    let url = emulator.base_url().trim_end_matches('/').to_string();
    let pg = (text.contains("psql") || text.contains("postgres://")).then(|| PgSchema::new(&rt));

    let work = scratch();
    let state = tempfile::tempdir().expect("tempdir");
    let bin = state.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::os::unix::fs::symlink(BIN, bin.join("sipform")).expect("symlink");
    let env_file = state.path().join("env");
    let cwd_file = state.path().join("cwd");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut env = format!(
        "export PATH={}\nexport SIP_AGENT_SERVER_URL={url}\nexport SIP_ACCOUNT_API_KEY=\nexport NO_COLOR=1\n",
        sh_quote(&path)
    );
    if let Some(pg) = &pg {
        env.push_str(&format!(
            "export PGOPTIONS={}\n",
            sh_quote(&format!("-c search_path={}", pg.name))
        ));
    }
    std::fs::write(&env_file, env).expect("write env");
    std::fs::write(&cwd_file, work.path().display().to_string()).expect("write cwd");

    let mut failures = Vec::new();
    for ex in &examples {
        let command = ex
            .command
            .replace("http://127.0.0.1:4000", &url)
            .replace("http://localhost:4000", &url);
        let script = format!(
            "set -o pipefail\n. {env}\ncd \"$(cat {cwd})\"\n{command}\n__rc=$?\nexport -p > {env}\npwd > {cwd}\nexit $__rc\n",
            env = sh_quote(&env_file.display().to_string()),
            cwd = sh_quote(&cwd_file.display().to_string()),
        );
        let (code, out) = run_bash(&script, state.path());
        if code != Some(ex.exit) {
            failures.push(format!(
                "{}: `{}` exited {code:?}, the page says {}; it printed:\n{}",
                ex.place,
                ex.command,
                ex.exit,
                tail(&out)
            ));
            continue;
        }
        if let Some(line) = missing_output(&ex.output, &out) {
            failures.push(format!(
                "{}: `{}` did not print {line:?}; it printed:\n{}",
                ex.place,
                ex.command,
                tail(&out)
            ));
        }
    }
    drop(emulator);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Runs `script` with bash in a clean environment (only HOME and the state's exports);
/// returns the exit code (None when killed) and stdout then stderr.
fn run_bash(script: &str, home: &Path) -> (Option<i32>, String) {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    let started = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => break,
            None if started.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                break;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The last lines of a command's output, enough to see why it failed.
fn tail(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    let from = lines.len().saturating_sub(40);
    let mut t = lines[from..].join("\n");
    if from > 0 {
        t.insert_str(0, &format!("[{from} lines before]\n"));
    }
    t
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The pages with a test of their own: the README and the book. A page added to docs/ later
/// runs in `every_other_page`, so none goes untested.
const PAGES: &[&str] = &[
    "README.md",
    "docs/README.md",
    "docs/install.md",
    "docs/project.md",
    "docs/settings.md",
    "docs/plan-and-apply.md",
    "docs/ci.md",
    "docs/state.md",
    "docs/phone-lines-and-billing.md",
    "docs/database.md",
    "docs/controller.md",
    "docs/deploy.md",
    "docs/security.md",
    "docs/troubleshooting.md",
    "docs/emulator.md",
    "docs/performance.md",
    "docs/development.md",
    "docs/plan-format.md",
    "docs/apply-report.md",
    "docs/example-plan-comment.md",
    "docs/architecture.md",
    "docs/guardrails.md",
];

#[test]
fn every_other_page() {
    let mut pages: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| format!("docs/{}", e.expect("entry").file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".md") && !PAGES.contains(&p.as_str()))
        .collect();
    pages.sort();
    for page in pages {
        run_page(&page);
    }
}

macro_rules! page_tests {
    ($($name:ident => $page:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_page($page);
            }
        )*
    };
}

page_tests! {
    readme => "README.md",
    docs_index => "docs/README.md",
    docs_install => "docs/install.md",
    docs_project => "docs/project.md",
    docs_settings => "docs/settings.md",
    docs_plan_and_apply => "docs/plan-and-apply.md",
    docs_ci => "docs/ci.md",
    docs_state => "docs/state.md",
    docs_phone_lines_and_billing => "docs/phone-lines-and-billing.md",
    docs_database => "docs/database.md",
    docs_controller => "docs/controller.md",
    docs_deploy => "docs/deploy.md",
    docs_security => "docs/security.md",
    docs_troubleshooting => "docs/troubleshooting.md",
    docs_emulator => "docs/emulator.md",
    docs_performance => "docs/performance.md",
    docs_development => "docs/development.md",
    docs_plan_format => "docs/plan-format.md",
    docs_apply_report => "docs/apply-report.md",
    docs_example_plan_comment => "docs/example-plan-comment.md",
    docs_architecture => "docs/architecture.md",
    docs_guardrails => "docs/guardrails.md",
}

/// `deploy/sipform.yaml`, the controller's settings in the compose example, is a valid
/// project with the repository's tools and template, read from a platform database such as
/// the one the compose file mounts.
#[test]
fn the_compose_settings_validate() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let db = rt.block_on(db_support::TestDb::new(db_support::Engine::Sqlite));
    rt.block_on(db.create_restaurants("restaurants"));
    rt.block_on(db.exec(
        "INSERT INTO restaurants (id, name, sip_enabled) VALUES ('3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01', 'Chez Compose', 1)",
    ));
    let work = scratch();
    let settings = std::fs::read_to_string(repo().join("deploy/sipform.yaml")).expect("read");
    assert!(settings.contains("sqlite:///data/database.db"));
    let settings = settings.replace("sqlite:///data/database.db", &db.url);
    std::fs::write(work.path().join("sipform.yaml"), settings).expect("write");
    let out = Command::new(BIN)
        .arg("validate")
        .current_dir(work.path())
        .env("DATABASE_URL", &db.url)
        .env_remove("SIPFORM_LOG")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 restaurants"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// The harness itself: what it must refuse or catch, so that a page it passes is one whose
// commands ran.

#[test]
fn a_bare_line_in_an_sh_block_is_an_error_unless_marked() {
    let page = "intro\n\n```sh\nsipform plan\n```\n";
    let errors = parse("p.md", page).expect_err("a bare command is refused");
    assert!(errors[0].starts_with("p.md:4:"), "{errors:?}");
    let marked = "<!-- not-tested: example -->\n```sh\nsipform plan\n```\n";
    assert_eq!(parse("p.md", marked).expect("marked"), vec![]);
}

#[test]
fn console_output_exit_codes_and_heredocs_are_read() {
    let page = "```console\n$ sipform plan --detailed-exitcode   # changes: exit 2\n…\nPlan: 1 to add, 0 to change, 0 to delete.\n$ cat > f <<'YAML'\na: 1\nYAML\n$ true \\\n  --x\n```\n";
    let ex = parse("p.md", page).expect("parses");
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[0].exit, 2);
    assert_eq!(ex[0].output.len(), 2);
    assert_eq!(ex[1].command, "cat > f <<'YAML'\na: 1\nYAML");
    assert!(ex[1].output.is_empty());
    assert_eq!(ex[2].command, "true \\\n  --x");
}

#[test]
fn output_must_appear_in_order_with_wildcards() {
    let want = vec![
        "…".to_string(),
        "Apply complete: 2 …, 30 actions, …".to_string(),
    ];
    assert_eq!(
        missing_output(
            &want,
            "x\nApply complete: 2 restaurants done, 30 actions, 1s.\n"
        ),
        None
    );
    assert!(missing_output(
        &want,
        "Apply complete: 2 restaurants done, 31 actions, 1s.\n"
    )
    .is_some());
    let two = vec!["b".to_string(), "a".to_string()];
    assert_eq!(missing_output(&two, "a\nb\n"), Some("a"));
}
