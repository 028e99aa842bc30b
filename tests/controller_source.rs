//! The controller follows a git repository (`controller.source`): a bare repository stands for
//! origin, a clone for CI pushing merges, the controller's own project folder holds only its
//! settings, restaurants and state. Local repositories only, no network (issue 26).

mod common;
use common::controller::*;
use common::*;

use serde_json::Value;

const TOKEN: &str = "source-test-token";

/// origin (bare) and a clone holding the bundled project (sipform.yaml, tools, template, the
/// platform's document), pushed to `main`.
struct Repos {
    _dir: tempfile::TempDir,
    origin: std::path::PathBuf,
    ci: std::path::PathBuf,
}

impl Repos {
    fn new() -> Repos {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = dir.path().join("origin.git");
        let ci = dir.path().join("ci");
        git(dir.path(), &["init", "--quiet", "--bare", "origin.git"]);
        git(dir.path(), &["init", "--quiet", "-b", "main", "ci"]);
        let project = project_copy();
        for part in ["tools", "templates", "docs"] {
            copy_tree(&project.path().join(part), &ci.join(part));
        }
        std::fs::copy(project.path().join("sipform.yaml"), ci.join("sipform.yaml"))
            .expect("sipform.yaml");
        let repos = Repos {
            origin,
            ci,
            _dir: dir,
        };
        repos.push("the bundled project");
        repos
    }

    /// Commits everything in the clone and pushes it; the new commit's sha.
    fn push(&self, message: &str) -> String {
        git(&self.ci, &["add", "-A"]);
        git(&self.ci, &["commit", "--quiet", "-m", message]);
        let origin = self.origin.display().to_string();
        git(&self.ci, &["push", "--quiet", &origin, "main"]);
        git(&self.ci, &["rev-parse", "HEAD"])
    }

    fn set_end_call_description(&self, text: &str) -> String {
        edit_yaml(&self.ci.join("tools/end_call.yaml"), |v| {
            v["description"] = Value::String(text.into());
        });
        self.push(&format!("end_call: {text}"))
    }
}

/// The controller's own project: restaurants and state here, `controller.source` naming
/// origin. Its tools are emptied, so only the repository can provide them.
fn controller_project(repos: &Repos, interval: &str, restaurants: usize) -> tempfile::TempDir {
    let dir = project_copy();
    generate_restaurants(dir.path(), restaurants);
    let yaml = std::fs::read_to_string(dir.path().join("sipform.yaml")).expect("sipform.yaml");
    let yaml = format!(
        "{yaml}\ncontroller:\n  source:\n    git: {}\n    branch: main\n    interval: {interval}\n",
        repos.origin.display()
    );
    std::fs::write(dir.path().join("sipform.yaml"), yaml).expect("sipform.yaml");
    std::fs::remove_dir_all(dir.path().join("tools")).expect("rm tools");
    std::fs::remove_dir_all(dir.path().join("templates")).expect("rm templates");
    dir
}

/// Every end_call tool on the server has `text` as its description.
fn end_call_descriptions(emu: &sipform_emulator::EmulatorHandle) -> Vec<String> {
    agents(emu)
        .iter()
        .flat_map(|a| a["tools"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["name"] == "end_call")
        .map(|t| t["description"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn all_say(emu: &sipform_emulator::EmulatorHandle, text: &str, n: usize) -> bool {
    let d = end_call_descriptions(emu);
    d.len() == n && d.iter().all(|d| d == text)
}

/// A pushed commit reaches every agent without a restart; an invalid one is refused, the
/// last good revision keeps running, `/readyz` stays 200 and the log names the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_branch_and_refuses_an_invalid_commit() {
    let emu = emulator().await;
    let repos = Repos::new();
    let first = repos.set_end_call_description("Raccroche (v1).");
    let dir = controller_project(&repos, "300ms", 2);
    let ctl = start(dir.path(), &emu.base_url(), &[], &[]);
    eventually("the first commit provisioned", 60, || async {
        all_say(&emu, "Raccroche (v1).", 2) && tool_count(&emu) == 2 * bundled_tool_count()
    })
    .await;
    assert_eq!(ctl.readyz().await["revision"], first.as_str());

    let second = repos.set_end_call_description("Raccroche (v2).");
    eventually("the pushed description on every agent", 60, || async {
        all_say(&emu, "Raccroche (v2).", 2)
    })
    .await;
    eventually("readyz names the new revision", 30, || async {
        ctl.readyz().await["revision"] == second.as_str()
    })
    .await;

    std::fs::write(
        repos.ci.join("tools/end_call.yaml"),
        "name: end_call\ndescription: [unclosed\n",
    )
    .expect("break the tool");
    let bad = repos.push("a broken tool");
    eventually("the refusal logged with its commit", 60, || async {
        ctl.log_text()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains(&bad) && l.contains("refused"))
    })
    .await;
    let (code, _) = ctl.get("/readyz").await.expect("readyz");
    assert_eq!(code, 200, "{}", ctl.log_text());
    assert_eq!(ctl.readyz().await["revision"], second.as_str());
    assert_eq!(
        ctl.metric("sipform_controller_source_last_error").await,
        Some(1.0)
    );
    assert!(
        all_say(&emu, "Raccroche (v2).", 2),
        "the last good revision keeps running"
    );
    assert_eq!(tool_count(&emu), 2 * bundled_tool_count());

    // The operator's working tree is never written: the snapshots are the controller's own.
    let snapshots = dir.path().join(".sipform-controller/source/snapshots");
    let kept = std::fs::read_dir(&snapshots).expect("snapshots").count();
    assert!(kept <= 2, "at most two snapshots kept, found {kept}");
    assert_eq!(git(&repos.ci, &["status", "--porcelain"]), "");
}

/// `POST /v1/reload` fetches at once (the interval is an hour) and answers the new revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_fetches_at_once() {
    let emu = emulator().await;
    let repos = Repos::new();
    let dir = controller_project(&repos, "1h", 1);
    let ctl = start(
        dir.path(),
        &emu.base_url(),
        &[],
        &[("SIPFORM_CONTROLLER_TOKEN", TOKEN)],
    );
    eventually("the restaurant provisioned", 60, || async {
        tool_count(&emu) == bundled_tool_count()
    })
    .await;
    let next = repos.set_end_call_description("Raccroche (reload).");
    let (code, body) = ctl.post("/v1/reload", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["revision"], next.as_str(), "{body}");
    assert_eq!(answer["requeuedAll"], true, "{body}");
    eventually("the reloaded description on the agent", 60, || async {
        all_say(&emu, "Raccroche (reload).", 1)
    })
    .await;
}

/// Two writers, one branch: CI applies a merged commit from its own clone while the controller
/// still runs the commit before it (it fetches hourly). The controller never goes back: not at
/// a full resync, not after a restart on its stale snapshot (origin unreachable); it refuses
/// those restaurants naming both revisions, then rolls forward once it fetches the new commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_never_reverts_what_ci_applied() {
    let emu = emulator().await;
    let repos = Repos::new();
    let dir = controller_project(&repos, "1h", 2);
    // CI and the controller share the inventory and the state (absolute paths, committed).
    let shared = |v: &mut Value| {
        v["state"]["path"] =
            Value::String(dir.path().join("sipform.state.json").display().to_string());
        v["inventory"]["path"] =
            Value::String(dir.path().join("restaurants").display().to_string());
    };
    edit_yaml(&repos.ci.join("sipform.yaml"), shared);
    edit_yaml(&dir.path().join("sipform.yaml"), shared);
    let old = repos.set_end_call_description("Raccroche (old).");
    let mut ctl = start(
        dir.path(),
        &emu.base_url(),
        &[],
        &[("SIPFORM_CONTROLLER_TOKEN", TOKEN)],
    );
    eventually("the old commit provisioned", 60, || async {
        all_say(&emu, "Raccroche (old).", 2) && tool_count(&emu) == 2 * bundled_tool_count()
    })
    .await;
    assert_eq!(ctl.readyz().await["revision"], old.as_str());

    // CI merges and applies from its clone; the controller has not fetched it.
    let new = repos.set_end_call_description("Raccroche (new).");
    let out = sipform(&repos.ci, &emu.base_url(), &["apply", "--auto-approve"]);
    expect_code(&out, 0);
    assert!(all_say(&emu, "Raccroche (new).", 2), "{}", all_output(&out));

    // A full resync of the controller, still on the old commit: refused, nothing reverted.
    let (code, body) = ctl.post("/v1/reconcile", Some(TOKEN)).await;
    assert!(code < 300, "{code} {body}");
    let short = |sha: &str| sha[..7].to_string();
    eventually("the refusal naming both revisions", 60, || async {
        let log = ctl.log_text();
        log.contains(&short(&old)) && log.lines().any(|l| l.contains(&short(&new)))
    })
    .await;
    assert!(
        all_say(&emu, "Raccroche (new).", 2),
        "the resync reverted CI's apply"
    );

    // A restart with origin unreachable starts on the last commit it used: still no revert.
    ctl.signal(libc::SIGTERM);
    ctl.exited(10).await;
    let moved = repos.origin.with_extension("away");
    std::fs::rename(&repos.origin, &moved).expect("hide origin");
    let mark = writes(&emu);
    let ctl = start(
        dir.path(),
        &emu.base_url(),
        &[],
        &[("SIPFORM_CONTROLLER_TOKEN", TOKEN)],
    );
    eventually("the restarted controller leading", 60, || async {
        ctl.is_leader().await
    })
    .await;
    let (code, body) = ctl.post("/v1/reconcile", Some(TOKEN)).await;
    assert!(code < 300, "{code} {body}");
    eventually(
        "the restarted controller's refusal naming CI's revision",
        60,
        || async { ctl.log_text().lines().any(|l| l.contains(&short(&new))) },
    )
    .await;
    assert!(
        all_say(&emu, "Raccroche (new).", 2),
        "the stale snapshot reverted CI's apply\n{}",
        ctl.log_text()
    );
    assert!(
        writes_since(&emu, &mark).is_empty(),
        "nothing written from the stale snapshot: {:?}",
        writes_since(&emu, &mark)
    );

    // Origin back and a reload: the controller rolls forward to CI's commit.
    std::fs::rename(&moved, &repos.origin).expect("origin back");
    let (code, body) = ctl.post("/v1/reload", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    eventually("readyz names CI's commit", 60, || async {
        ctl.readyz().await["revision"] == new.as_str()
    })
    .await;
    assert!(all_say(&emu, "Raccroche (new).", 2));
}

/// The shipped action's controller step (action.yml, "Roll out through the controller"), run
/// as GitHub runs it (`bash -eo pipefail`) in CI's clone at a newly pushed commit: it reloads
/// the controller and returns only once every restaurant is reconciled at that commit, and
/// its report lists each restaurant changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actions_controller_step_waits_until_every_restaurant_runs_the_commit() {
    let emu = emulator().await;
    let repos = Repos::new();
    let n = 6;
    let dir = controller_project(&repos, "1h", n);
    let ctl = start(
        dir.path(),
        &emu.base_url(),
        &[],
        &[("SIPFORM_CONTROLLER_TOKEN", TOKEN)],
    );
    eventually("every restaurant provisioned", 60, || async {
        tool_count(&emu) == n * bundled_tool_count()
    })
    .await;
    // A little latency, so the rollout is still under way when the reload answers.
    emu.set_faults(
        serde_json::from_value(serde_json::json!({"latency": {"fixedMs": 40, "jitterMs": 0}}))
            .expect("faults"),
    );
    let commit = repos.set_end_call_description("Raccroche (action).");
    let before = emu.request_counts();

    let action: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("action.yml")).expect("action.yml"),
    )
    .expect("action.yml");
    let step = action["runs"]["steps"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["name"] == "Roll out through the controller")
        })
        .expect("the controller step");
    let script = step["run"].as_str().expect("its script");
    let out = std::process::Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(&repos.ci)
        .env("CONTROLLER_URL", ctl.url(""))
        .env("CONTROLLER_TIMEOUT", "120")
        .env("SIPFORM_CONTROLLER_TOKEN", TOKEN)
        .output()
        .expect("bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        all_say(&emu, "Raccroche (action).", n),
        "the step returned before every agent ran the commit: {text}"
    );
    assert!(text.contains(&format!("{n} synced")), "{text}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(repos.ci.join("sipform-apply.json")).expect("the report"),
    )
    .expect("JSON");
    assert_eq!(report["controllerRevision"], commit.as_str(), "{report}");
    let rows = report["restaurants"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), n, "{report}");
    assert!(
        rows.iter().all(|r| r["status"] == "done" && r["done"] == 1),
        "{report}"
    );
    // A new configuration is rolled out against the controller's cache: one PUT per agent,
    // no list or child re-read (drift is the timed resync's to find).
    let after = emu.request_counts();
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert_eq!(delta("PUT /api/agents/:id/tools/:toolId"), n as u64);
    for read in [
        "GET /api/agents",
        "GET /api/agents/:id/tools",
        "GET /api/final-customers",
    ] {
        assert_eq!(delta(read), 0, "{read} during the rollout: {after:?}");
    }
}
