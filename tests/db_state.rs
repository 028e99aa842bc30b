//! State in SQLite and PostgreSQL: what only the database backends do (rows written per change,
//! lineage and table-layout checks, advisory locks, private files), and the `sipform state`
//! commands through the real binary. What every backend does is in `state_conformance.rs`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::db::{Engine, TestDb};
use sipform::model::ids::{AgentId, FinalCustomerId, RestaurantId, ToolId};
use sipform::model::secret::Secret;
use sipform::model::spec::StateConfig;
use sipform::state::{
    AgentTokens, Change, FileState, LockInfo, PostgresState, ProjectRef, SqliteState, State,
    StateBackend, StateError, StateWriter,
};

fn backend(db: &TestDb) -> Arc<dyn StateBackend> {
    match db.engine {
        Engine::Sqlite => Arc::new(
            SqliteState::open("sqlite://platform.db", db.dir.path()).expect("open sqlite state"),
        ),
        Engine::Postgres => Arc::new(PostgresState::open(&db.url).expect("open postgres state")),
    }
}

fn r(s: &str) -> RestaurantId {
    RestaurantId::new(s)
}

/// r1 with everything (and a token), r2 with an agent only.
fn sample() -> (State, Vec<Change>) {
    let mut s = State::new();
    let changes = vec![
        Change::Account("acc-1".into()),
        Change::FinalCustomer {
            restaurant: r("r1"),
            id: Some(FinalCustomerId::new("fc-1")),
        },
        Change::Agent {
            restaurant: r("r1"),
            id: Some(AgentId::new("ag-1")),
            tokens: Some(AgentTokens {
                api_token: Secret::new("tok-1".into()),
                public_token: Secret::new("pk-1".into()),
            }),
        },
        Change::Tool {
            restaurant: r("r1"),
            name: "end_call".into(),
            id: Some(ToolId::new("t-1")),
        },
        Change::Tool {
            restaurant: r("r1"),
            name: "book_table".into(),
            id: Some(ToolId::new("t-2")),
        },
        Change::Agent {
            restaurant: r("r2"),
            id: Some(AgentId::new("ag-2")),
            tokens: None,
        },
    ];
    for c in &changes {
        s.apply(c, true);
    }
    s.serial = 1;
    (s, changes)
}

async fn round_trip(engine: Engine) {
    let db = TestDb::new(engine).await;
    let b = backend(&db);
    assert!(b.load().await.expect("load empty").is_none());
    let _g = b
        .lock(&LockInfo::for_this_process("apply"), Duration::from_secs(5))
        .await
        .expect("lock");
    // Tables exist now, but hold no state yet.
    assert!(b.load().await.expect("load empty").is_none());
    let (mut s, changes) = sample();
    b.commit(&s, &changes).await.expect("commit");
    assert_eq!(b.load().await.expect("load"), Some(s.clone()));

    // Only the changed restaurant is written: r2's agent deleted, r1 loses a tool.
    let more = vec![
        Change::Agent {
            restaurant: r("r2"),
            id: None,
            tokens: None,
        },
        Change::Tool {
            restaurant: r("r1"),
            name: "book_table".into(),
            id: None,
        },
    ];
    for c in &more {
        s.apply(c, true);
    }
    s.serial += 1;
    b.commit(&s, &more).await.expect("commit");
    let back = b.load().await.expect("load").expect("state");
    assert_eq!(back, s);
    assert!(!back.restaurants.contains_key(&r("r2")));
    assert_eq!(back.restaurants[&r("r1")].tools.len(), 1);
    assert_eq!(back.serial, 2);
    assert_eq!(
        back.restaurants[&r("r1")]
            .api_token
            .as_ref()
            .map(|t| t.expose().as_str()),
        Some("tok-1")
    );

    // Another project's lineage is refused; so is going back in serial.
    let other = State::new();
    let e = b.commit(&other, &[]).await.expect_err("other lineage");
    assert!(matches!(e, StateError::Lineage { .. }), "{e}");
    let mut old = s.clone();
    old.serial = 1;
    let e = b.commit(&old, &[]).await.expect_err("older serial");
    assert!(e.to_string().contains("not older"), "{e}");
    assert_eq!(b.load().await.expect("load").expect("state").serial, 2);

    // The group-committing writer works on top of it.
    let writer = StateWriter::new(b.clone(), s.clone(), false, None);
    writer
        .record(vec![Change::FinalCustomer {
            restaurant: r("r3"),
            id: Some(FinalCustomerId::new("fc-3")),
        }])
        .await
        .expect("record");
    let back = b.load().await.expect("load").expect("state");
    assert_eq!(back.serial, 3);
    assert_eq!(
        back.restaurants[&r("r3")].final_customer_id,
        Some(FinalCustomerId::new("fc-3"))
    );
}

#[tokio::test]
async fn sqlite_state_round_trip() {
    round_trip(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_state_round_trip() {
    round_trip(Engine::Postgres).await;
}

async fn future_versions_are_refused(engine: Engine) {
    let db = TestDb::new(engine).await;
    let b = backend(&db);
    let (s, changes) = sample();
    b.commit(&s, &changes).await.expect("commit");
    db.exec("UPDATE sipform_state_meta SET version = 7").await;
    let e = backend(&db).load().await.expect_err("future state format");
    assert!(
        matches!(e, StateError::FutureVersion { found: 7, .. }),
        "{e}"
    );

    db.exec(
        "UPDATE sipform_state_meta SET version = 1; UPDATE sipform_schema_version SET version = 9",
    )
    .await;
    let fresh = backend(&db);
    let e = fresh.load().await.expect_err("future table layout");
    assert!(
        matches!(e, StateError::FutureVersion { found: 9, .. }),
        "{e}"
    );
    let e = fresh.commit(&s, &[]).await.expect_err("no write either");
    assert!(
        matches!(e, StateError::FutureVersion { found: 9, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn sqlite_future_versions_are_refused() {
    future_versions_are_refused(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_future_versions_are_refused() {
    future_versions_are_refused(Engine::Postgres).await;
}

#[tokio::test]
async fn postgres_second_locker_waits_then_gets_it_or_names_the_holder() {
    let db = TestDb::new(Engine::Postgres).await;
    // Two processes: two separate backends (separate pools and sessions).
    let first = backend(&db);
    let second = backend(&db);
    let holder = LockInfo::for_this_process("apply");
    let g = first
        .lock(&holder, Duration::from_secs(5))
        .await
        .expect("first lock");

    let waiter = tokio::spawn(async move {
        let start = Instant::now();
        let g = second
            .lock(
                &LockInfo::for_this_process("apply"),
                Duration::from_secs(10),
            )
            .await;
        (g.map(|_| ()), start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!waiter.is_finished(), "the second locker must wait");
    drop(g);
    let (got, waited) = waiter.await.expect("join");
    got.expect("second lock after release");
    assert!(waited >= Duration::from_millis(700), "{waited:?}");

    // Held again; a short timeout fails naming the holder.
    let _g = first
        .lock(&holder, Duration::from_secs(5))
        .await
        .expect("lock again");
    let third = backend(&db);
    let start = Instant::now();
    let e = match third
        .lock(
            &LockInfo::for_this_process("plan"),
            Duration::from_millis(500),
        )
        .await
    {
        Err(e) => e,
        Ok(_) => panic!("the lock must not be granted twice"),
    };
    assert!(start.elapsed() >= Duration::from_millis(500));
    let msg = e.to_string();
    assert!(matches!(e, StateError::Locked { .. }), "{msg}");
    assert!(msg.contains("apply by pid"), "{msg}");
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    assert!(msg.contains(&holder.host), "{msg}");
    assert!(msg.contains(&holder.started_at.to_rfc3339()), "{msg}");
}

fn sipform(dir: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("sipform").expect("binary");
    c.arg("--project").arg(dir).env_remove("DATABASE_URL");
    c
}

fn stdout_of(c: &mut Command) -> String {
    let out = c.output().expect("run");
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn migrate_file_to_postgres_to_sqlite_keeps_everything() {
    let pg = TestDb::new(Engine::Postgres).await;
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        project.path().join("sipform.yaml"),
        "account:\n  name: Platform\n  email: ops@example.com\nstate:\n  backend: file\n",
    )
    .expect("write sipform.yaml");
    let file = FileState::new(project.path().join("sipform.state.json"));
    let (state, _) = sample();
    file.commit(&state, &[]).await.expect("file state");
    // The copy records the project that made it (the file, written before, recorded none).
    let state = State {
        project: Some(ProjectRef::new("Platform", "Platform")),
        ..state
    };

    let out = stdout_of(
        sipform(project.path())
            .args([
                "state", "migrate", "--from", "file", "--to", "postgres", "--to-url",
            ])
            .arg(&pg.url),
    );
    assert!(out.contains(&state.lineage.to_string()), "{out}");
    let in_pg = PostgresState::open(&pg.url).expect("open");
    assert_eq!(in_pg.load().await.expect("load"), Some(state.clone()));

    let out = stdout_of(
        sipform(project.path())
            .args(["state", "migrate", "--from", "postgres", "--from-url"])
            .arg(&pg.url)
            .args(["--to", "sqlite", "--to-url", "sqlite://migrated.db"]),
    );
    assert!(out.contains("serial 1"), "{out}");
    let in_sqlite = SqliteState::open("sqlite://migrated.db", project.path()).expect("open sqlite");
    let back = in_sqlite.load().await.expect("load").expect("state");
    assert_eq!(back, state);
    assert_eq!(back.lineage, state.lineage);
    assert_eq!(
        back.restaurants[&r("r1")].agent_id,
        Some(AgentId::new("ag-1"))
    );

    // A target holding another project's state is refused, and left as it was.
    let other = tempfile::tempdir().expect("tempdir");
    let other_file = FileState::new(other.path().join("sipform.state.json"));
    let (mut other_state, _) = sample();
    other_state.lineage = uuid::Uuid::new_v4();
    other_file
        .commit(&other_state, &[])
        .await
        .expect("other state");
    let out = sipform(other.path())
        .args([
            "state", "migrate", "--from", "file", "--to", "postgres", "--to-url",
        ])
        .arg(&pg.url)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another project's state"), "{err}");
    assert_eq!(in_pg.load().await.expect("load"), Some(state));
}

#[tokio::test]
async fn state_list_show_rm_on_a_sqlite_backend() {
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        project.path().join("sipform.yaml"),
        "account:\n  name: Platform\n  email: ops@example.com\nstate:\n  backend: sqlite\n  url: sqlite://state/sipform.db\n  store_tokens: true\n",
    )
    .expect("write sipform.yaml");
    let cfg = StateConfig::Sqlite {
        url: "sqlite://state/sipform.db".into(),
        store_tokens: true,
    };
    let b = sipform::state::open(&cfg, project.path(), None).expect("open");
    let g = b
        .lock(&LockInfo::for_this_process("apply"), Duration::from_secs(5))
        .await
        .expect("lock creates the tables");
    let (state, changes) = sample();
    b.commit(&state, &changes).await.expect("commit");
    drop(g);
    #[cfg(unix)]
    {
        // It may hold tokens: owner only, like the file backend.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(project.path().join("state/sipform.db"))
            .expect("state file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let out = stdout_of(sipform(project.path()).args(["state", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("RESTAURANT"), "{out}");
    assert!(lines[1].starts_with("r1") && lines[1].contains("fc-1") && lines[1].contains("ag-1"));
    assert!(lines[1].trim_end().ends_with('2'), "{out}");
    assert!(
        lines[2].starts_with("r2") && lines[2].contains("ag-2"),
        "{out}"
    );

    let out = stdout_of(sipform(project.path()).args(["state", "show", "r1"]));
    assert!(out.contains("agentId: ag-1"), "{out}");
    assert!(out.contains("apiToken: (sensitive)"), "{out}");
    assert!(out.contains("end_call: t-1"), "{out}");
    assert!(!out.contains("tok-1"), "the token leaked: {out}");

    let out = stdout_of(sipform(project.path()).args(["state", "rm", "r2"]));
    assert!(out.contains("removed r2"), "{out}");
    let back = b.load().await.expect("load").expect("state");
    assert!(!back.restaurants.contains_key(&r("r2")));
    assert!(back.restaurants.contains_key(&r("r1")));
    assert_eq!(back.serial, state.serial + 1);

    let out = sipform(project.path())
        .args(["state", "rm", "nope"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[tokio::test]
async fn postgres_lock_is_released_when_the_holder_dies() {
    let db = TestDb::new(Engine::Postgres).await;
    let holder = PostgresState::open(&db.url).expect("open");
    let _g = holder
        .lock(&LockInfo::for_this_process("apply"), Duration::from_secs(5))
        .await
        .expect("lock");
    // The holder's session ends as if its process were killed (kill -9 closes the socket).
    let key = holder.lock_key().await.expect("key");
    let high = (key >> 32) & 0xffff_ffff;
    let low = key & 0xffff_ffff;
    let killed = db
        .text(&format!(
            "SELECT CAST(bool_and(pg_terminate_backend(pid)) AS TEXT) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted \
             AND classid::bigint = {high} AND objid::bigint = {low}"
        ))
        .await;
    assert_eq!(killed.as_deref(), Some("true"));
    let next = PostgresState::open(&db.url).expect("open");
    next.lock(&LockInfo::for_this_process("apply"), Duration::from_secs(5))
        .await
        .expect("lock free once its holder is gone");
}

#[tokio::test]
async fn unreachable_postgres_state_fails_fast_naming_the_backend() {
    let b = PostgresState::open("postgres://app:hunter2@127.0.0.1:1/platform").expect("open");
    let start = Instant::now();
    let e = b.load().await.expect_err("nothing listens on port 1");
    let msg = e.to_string();
    assert!(msg.contains("postgres://***@127.0.0.1:1/platform"), "{msg}");
    assert!(msg.contains("cannot connect"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// Issue 14, #22: under umask 000 the folders sipform creates for a SQLite state are still
/// owner-only (0700), and the database and its lock file 0600; nothing in them is readable by
/// others.
#[cfg(unix)]
#[tokio::test]
async fn sqlite_state_is_private_under_umask_000() {
    use std::os::unix::fs::PermissionsExt;

    let project = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        project.path().join("sipform.yaml"),
        "account:\n  name: Platform\n  email: ops@example.com\nstate:\n  backend: file\n",
    )
    .expect("write sipform.yaml");
    let (state, _) = sample();
    FileState::new(project.path().join("sipform.state.json"))
        .commit(&state, &[])
        .await
        .expect("file state");

    // umask is per process: set it in a shell that then becomes sipform.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(assert_cmd::cargo::cargo_bin("sipform"))
        .arg("--project")
        .arg(project.path())
        .args([
            "state",
            "migrate",
            "--from",
            "file",
            "--to",
            "sqlite",
            "--to-url",
            "sqlite://private/state/sipform.db",
        ])
        .env_remove("DATABASE_URL")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // In octal, as `ls -l` thinks of it.
    let mode = |p: &std::path::Path| {
        let m = std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode();
        format!("{:o}", m & 0o777)
    };
    let outer = project.path().join("private");
    let folder = outer.join("state");
    assert_eq!(mode(&outer), "700", "{}", outer.display());
    assert_eq!(mode(&folder), "700", "{}", folder.display());
    assert_eq!(mode(&folder.join("sipform.db")), "600");
    assert_eq!(mode(&folder.join("sipform.db.lock")), "600");
    // Whatever else SQLite left there (a journal, -wal, -shm) is no more open than the database.
    for entry in std::fs::read_dir(&folder).expect("read dir") {
        let p = entry.expect("entry").path();
        assert!(mode(&p).ends_with("00"), "{}: {}", p.display(), mode(&p));
    }
}
