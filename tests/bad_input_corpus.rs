//! The bad-input corpus: every folder of `tests/bad-inputs/corpus/` is one broken project.
//!
//! A case folder holds `case.yaml` and files that override the bundled project copy (same
//! relative paths). `case.yaml`:
//!
//! ```yaml
//! args: [validate]                  # the command under test
//! expect: ["./tools/x.yaml:3:1", "…"]  # substrings of stdout+stderr naming the place
//! remove: [tools/end_call.yaml]     # optional: paths deleted from the copy
//! mkdir: [tools]                    # optional: folders created (after remove)
//! replace: [{file: f, from: a, to: b}]   # optional: text edits of the copy
//! prepare: [[plan, --out, plan.json]]    # optional: commands run first, against a separate
//!                                        # emulator whose URL is then rewritten in *.json
//! edit: [{file: plan.json, set: {/formatVersion: 99}, remove: [/lineage], truncate: 40}]
//! ```
//!
//! Each case must exit 1, print every `expect` substring, never panic, and send **zero**
//! requests to the emulator it is pointed at.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    description: String,
    args: Vec<String>,
    expect: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    mkdir: Vec<String>,
    #[serde(default)]
    replace: Vec<Replace>,
    #[serde(default)]
    prepare: Vec<Vec<String>>,
    #[serde(default)]
    edit: Vec<Edit>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Replace {
    file: String,
    from: String,
    to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    file: String,
    /// JSON pointer → new value (the parent must exist).
    #[serde(default)]
    set: BTreeMap<String, Value>,
    /// JSON pointers removed.
    #[serde(default)]
    remove: Vec<String>,
    /// Keep only this many bytes of the (re-serialized) file.
    #[serde(default)]
    truncate: Option<usize>,
}

fn corpus_dir() -> PathBuf {
    common::repo().join("tests/bad-inputs/corpus")
}

fn case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("corpus folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Copies every file of the case folder except `case.yaml` over the project copy.
fn overlay(from: &Path, to: &Path, top: bool) {
    for e in std::fs::read_dir(from).expect("read case") {
        let e = e.expect("entry");
        let name = e.file_name();
        if top && name == "case.yaml" {
            continue;
        }
        if e.path().is_dir() {
            std::fs::create_dir_all(to.join(&name)).expect("mkdir");
            overlay(&e.path(), &to.join(&name), false);
        } else {
            std::fs::copy(e.path(), to.join(&name)).expect("copy");
        }
    }
}

fn set_pointer(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer starts with /");
    let parent = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no parent for {pointer}"));
    match parent {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
        }
        Value::Array(a) => {
            let i: usize = key.parse().expect("index");
            a[i] = value;
        }
        _ => panic!("parent of {pointer} is not a container"),
    }
}

fn remove_pointer(doc: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer starts with /");
    if let Some(Value::Object(m)) = doc.pointer_mut(parent) {
        m.shift_remove(key);
    }
}

fn apply_edit(dir: &Path, e: &Edit) {
    let path = dir.join(&e.file);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("edit {}: {err}", path.display()));
    if !e.set.is_empty() || !e.remove.is_empty() {
        let mut doc: Value = serde_json::from_str(&text).expect("edit target is JSON");
        for (p, v) in &e.set {
            set_pointer(&mut doc, p, v.clone());
        }
        for p in &e.remove {
            remove_pointer(&mut doc, p);
        }
        text = serde_json::to_string_pretty(&doc).expect("json");
    }
    if let Some(n) = e.truncate {
        text.truncate(n.min(text.len()));
    }
    std::fs::write(&path, text).expect("write edit");
}

/// Builds the case's project and runs it; `Err` explains what went wrong.
async fn run_case(name: &str) -> Result<(), String> {
    let folder = corpus_dir().join(name);
    let case_text =
        std::fs::read_to_string(folder.join("case.yaml")).map_err(|e| format!("case.yaml: {e}"))?;
    let case: Case = serde_saphyr::from_str(&case_text).map_err(|e| format!("case.yaml: {e}"))?;
    let _ = &case.description;
    let project = common::project_copy();
    let dir = project.path();
    for r in &case.remove {
        let p = dir.join(r);
        if p.is_dir() {
            std::fs::remove_dir_all(&p).map_err(|e| format!("remove {r}: {e}"))?;
        } else {
            std::fs::remove_file(&p).map_err(|e| format!("remove {r}: {e}"))?;
        }
    }
    for m in &case.mkdir {
        std::fs::create_dir_all(dir.join(m)).map_err(|e| format!("mkdir {m}: {e}"))?;
    }
    for r in &case.replace {
        let p = dir.join(&r.file);
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", r.file))?;
        if !text.contains(&r.from) {
            return Err(format!("replace: {:?} not found in {}", r.from, r.file));
        }
        std::fs::write(&p, text.replacen(&r.from, &r.to, 1)).map_err(|e| e.to_string())?;
    }
    // The emulator under test: it must see no request at all.
    let emu = common::emulator().await;
    if !case.prepare.is_empty() {
        // Preparation (making a real saved plan or state) talks to its own emulator; what it
        // wrote is then pointed at the emulator under test, as if it were the same server.
        let prep = common::emulator().await;
        for args in &case.prepare {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = common::sipform(dir, &prep.base_url(), &a);
            if o.status.code() != Some(0) {
                return Err(format!(
                    "prepare {args:?} failed\n--- stdout\n{}\n--- stderr\n{}",
                    common::stdout(&o),
                    common::stderr(&o)
                ));
            }
        }
        for e in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let text = std::fs::read_to_string(&p).map_err(|e| e.to_string())?;
                let text = text.replace(&prep.base_url(), &emu.base_url());
                std::fs::write(&p, text).map_err(|e| e.to_string())?;
            }
        }
        prep.shutdown().await;
    }
    overlay(&folder, dir, true);
    for e in &case.edit {
        apply_edit(dir, e);
    }

    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let mut cmd = common::command(dir, &emu.base_url(), &args);
    for (k, v) in &case.env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| format!("run: {e}"))?;
    let text = common::all_output(&out);
    let counts = emu.request_counts();
    emu.shutdown().await;
    let mut problems = Vec::new();
    if out.status.code() != Some(1) {
        problems.push(format!("exit code {:?}, expected 1", out.status.code()));
    }
    if text.contains("panicked") || text.contains("RUST_BACKTRACE") {
        problems.push("panicked".to_string());
    }
    for want in &case.expect {
        if !text.contains(want.as_str()) {
            problems.push(format!("missing {want:?}"));
        }
    }
    if !counts.is_empty() {
        problems.push(format!("requests were sent: {counts:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n--- output\n{text}", problems.join("; ")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_exits_1_naming_the_place_without_a_request() {
    let names = case_names();
    assert!(
        names.len() >= 50,
        "the corpus must hold at least 50 cases, has {}",
        names.len()
    );
    let only = std::env::var("SIPFORM_CORPUS_CASE").ok();
    let mut failures = Vec::new();
    for name in &names {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        if let Err(e) = run_case(name).await {
            failures.push(format!("=== {name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}
