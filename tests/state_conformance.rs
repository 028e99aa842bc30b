//! One conformance suite every state backend runs (the idea of Terraform's
//! `statemgr/testing.go`): the same scenarios against the file, SQLite and PostgreSQL backends,
//! so a backend that behaves differently fails here by name. A new backend adds one arm to
//! [`Harness`] and one line at the bottom.
//!
//! Then, for the group-commit writer on top of any backend: a failed write poisons it, and a
//! failed or crashed atomic write leaves nothing that blocks the next one.

mod db_support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use db_support::TestDb;
use sipform::model::ids::{AccountId, AgentId, FinalCustomerId, RestaurantId, ToolId};
use sipform::model::secret::Secret;
use sipform::state::{
    async_trait, AgentTokens, Change, FileState, LockGuard, LockInfo, PostgresState, SqliteState,
    State, StateBackend, StateError, StateWriter, STATE_FORMAT_VERSION,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Sqlite,
    Postgres,
}

/// One backend's storage for one test. [`Harness::open`] gives a new instance on the same
/// storage, as another process would see it: nothing is shared in memory between two opens.
struct Harness {
    kind: Kind,
    dir: tempfile::TempDir,
    /// The PostgreSQL schema, dropped with the harness.
    db: Option<TestDb>,
}

impl Harness {
    async fn new(kind: Kind) -> Harness {
        let db = match kind {
            Kind::Postgres => Some(TestDb::new(db_support::Engine::Postgres).await),
            Kind::File | Kind::Sqlite => None,
        };
        Harness {
            kind,
            dir: tempfile::tempdir().expect("tempdir"),
            db,
        }
    }

    fn open(&self) -> Arc<dyn StateBackend> {
        match (self.kind, &self.db) {
            (Kind::File, _) => Arc::new(FileState::new(self.dir.path().join("sipform.state.json"))),
            (Kind::Sqlite, _) => Arc::new(
                SqliteState::open("sqlite://state/sipform.db", self.dir.path())
                    .expect("open sqlite state"),
            ),
            (Kind::Postgres, Some(db)) => {
                Arc::new(PostgresState::open(&db.url).expect("open postgres state"))
            }
            (Kind::Postgres, None) => panic!("a PostgreSQL harness has a database"),
        }
    }

    /// Whether `needle` appears anywhere in what the backend stored.
    async fn stores(&self, needle: &str) -> bool {
        match (self.kind, &self.db) {
            (Kind::File, _) => {
                read_lossy(&self.dir.path().join("sipform.state.json")).contains(needle)
            }
            (Kind::Sqlite, _) => {
                read_lossy(&self.dir.path().join("state/sipform.db")).contains(needle)
            }
            (Kind::Postgres, Some(db)) => {
                let n = db
                    .text(&format!(
                        "SELECT CAST(count(*) AS TEXT) FROM sipform_state_restaurants \
                         WHERE api_token = '{needle}' OR tools LIKE '%{needle}%'"
                    ))
                    .await;
                n.as_deref() != Some("0")
            }
            (Kind::Postgres, None) => panic!("a PostgreSQL harness has a database"),
        }
    }
}

fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).expect("read what the backend stored"))
        .into_owned()
}

fn r(s: &str) -> RestaurantId {
    RestaurantId::new(s)
}

fn tokens(api: &str) -> AgentTokens {
    AgentTokens {
        api_token: Secret::new(api.to_string()),
        public_token: Secret::new(format!("pk_{api}")),
    }
}

fn tool(restaurant: &str, name: &str, id: &str) -> Change {
    Change::Tool {
        restaurant: r(restaurant),
        name: name.into(),
        id: Some(ToolId::new(id)),
    }
}

/// r1 with a final customer, an agent and two tools; r2 with an agent only.
fn sample() -> State {
    let mut s = State::new();
    for c in [
        Change::Account(AccountId::new("acc-1")),
        Change::FinalCustomer {
            restaurant: r("r1"),
            id: Some(FinalCustomerId::new("fc-1")),
        },
        Change::Agent {
            restaurant: r("r1"),
            id: Some(AgentId::new("ag-1")),
            tokens: None,
        },
        tool("r1", "end_call", "t-1"),
        tool("r1", "book_table", "t-2"),
        Change::Agent {
            restaurant: r("r2"),
            id: Some(AgentId::new("ag-2")),
            tokens: None,
        },
    ] {
        s.apply(&c, false);
    }
    s.serial = 1;
    s
}

async fn load(h: &Harness) -> State {
    h.open()
        .load()
        .await
        .expect("load")
        .expect("state was written")
}

async fn lock(
    b: &Arc<dyn StateBackend>,
    operation: &str,
    timeout: Duration,
) -> Result<Box<dyn LockGuard>, StateError> {
    b.lock(&LockInfo::for_this_process(operation), timeout)
        .await
}

// ---------------------------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------------------------

async fn loads_nothing_before_the_first_write(kind: Kind) {
    let h = Harness::new(kind).await;
    assert_eq!(h.open().load().await.expect("load"), None);
    // Taking the lock (which may create tables or files) does not make state appear.
    let b = h.open();
    let _g = lock(&b, "apply", Duration::from_secs(5))
        .await
        .expect("lock");
    assert_eq!(b.load().await.expect("load"), None);
}

async fn saves_and_loads_the_same_state(kind: Kind) {
    let h = Harness::new(kind).await;
    let s = sample();
    h.open().commit(&s, &[]).await.expect("commit");
    assert_eq!(load(&h).await, s);
}

async fn each_write_bumps_the_serial(kind: Kind) {
    let h = Harness::new(kind).await;
    let writer = StateWriter::new(h.open(), State::new(), false, None);
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        writer
            .record(vec![tool("r1", name, &format!("t-{name}"))])
            .await
            .expect("record");
        assert_eq!(load(&h).await.serial, i as u64 + 1);
    }
}

async fn keeps_the_lineage(kind: Kind) {
    let h = Harness::new(kind).await;
    let first = State::new();
    let lineage = first.lineage;
    let writer = StateWriter::new(h.open(), first, false, None);
    writer
        .record(vec![Change::Account(AccountId::new("acc-1"))])
        .await
        .expect("record");
    drop(writer);
    // A later run goes on from what it loads, in the same history.
    let loaded = load(&h).await;
    assert_eq!(loaded.lineage, lineage);
    let writer = StateWriter::new(h.open(), loaded, false, None);
    writer
        .record(vec![tool("r1", "end_call", "t-1")])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back.lineage, lineage);
    assert_eq!(back.serial, 2);
}

async fn applies_and_persists_every_change(kind: Kind) {
    let h = Harness::new(kind).await;
    let writer = StateWriter::new(h.open(), State::new(), true, None);
    let steps: Vec<Vec<Change>> = vec![
        vec![Change::Account(AccountId::new("acc-1"))],
        vec![
            Change::FinalCustomer {
                restaurant: r("r1"),
                id: Some(FinalCustomerId::new("fc-1")),
            },
            Change::Agent {
                restaurant: r("r1"),
                id: Some(AgentId::new("ag-1")),
                tokens: Some(tokens("tok-1")),
            },
            tool("r1", "end_call", "t-1"),
            tool("r1", "book_table", "t-2"),
            Change::FinalCustomer {
                restaurant: r("r2"),
                id: Some(FinalCustomerId::new("fc-2")),
            },
            Change::Agent {
                restaurant: r("r2"),
                id: Some(AgentId::new("ag-2")),
                tokens: None,
            },
            tool("r2", "end_call", "t-3"),
        ],
        // Deletes: one tool, then r2's agent (its tools go with it), then r2's final customer.
        vec![Change::Tool {
            restaurant: r("r1"),
            name: "book_table".into(),
            id: None,
        }],
        vec![Change::Agent {
            restaurant: r("r2"),
            id: None,
            tokens: None,
        }],
        vec![Change::FinalCustomer {
            restaurant: r("r2"),
            id: None,
        }],
    ];
    for changes in steps {
        writer.record(changes).await.expect("record");
        assert_eq!(load(&h).await, writer.snapshot());
    }
    let back = load(&h).await;
    assert_eq!(back.account_id, Some(AccountId::new("acc-1")));
    assert!(!back.restaurants.contains_key(&r("r2")), "{back:?}");
    let r1 = &back.restaurants[&r("r1")];
    assert_eq!(r1.final_customer_id, Some(FinalCustomerId::new("fc-1")));
    assert_eq!(r1.agent_id, Some(AgentId::new("ag-1")));
    assert_eq!(
        r1.tools.iter().collect::<Vec<_>>(),
        vec![(&"end_call".to_string(), &ToolId::new("t-1"))]
    );
    assert_eq!(
        r1.api_token.as_ref().map(|t| t.expose().as_str()),
        Some("tok-1")
    );

    // Deleting r1's agent forgets its tools and its token too.
    writer
        .record(vec![Change::Agent {
            restaurant: r("r1"),
            id: None,
            tokens: None,
        }])
        .await
        .expect("record");
    let r1 = load(&h).await.restaurants[&r("r1")].clone();
    assert_eq!(r1.agent_id, None);
    assert!(r1.tools.is_empty() && r1.api_token.is_none(), "{r1:?}");
}

async fn stores_a_token_only_when_asked(kind: Kind) {
    let h = Harness::new(kind).await;
    let agent = |rest: &str, token: &str| Change::Agent {
        restaurant: r(rest),
        id: Some(AgentId::new(format!("ag-{rest}"))),
        tokens: Some(tokens(token)),
    };
    let writer = StateWriter::new(h.open(), State::new(), false, None);
    writer
        .record(vec![agent("r1", "sk_never_stored")])
        .await
        .expect("record");
    let state = load(&h).await;
    drop(writer);
    assert_eq!(state.restaurants[&r("r1")].api_token, None);
    assert!(!h.stores("sk_never_stored").await);

    let writer = StateWriter::new(h.open(), state, true, None);
    writer
        .record(vec![agent("r2", "sk_stored")])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(
        back.restaurants[&r("r2")]
            .api_token
            .as_ref()
            .map(|t| t.expose().as_str()),
        Some("sk_stored")
    );
    assert_eq!(back.restaurants[&r("r1")].api_token, None);
}

async fn a_lock_excludes_a_second_holder_and_names_it(kind: Kind) {
    let h = Harness::new(kind).await;
    let holder = LockInfo::for_this_process("apply");
    let first = h.open();
    let _g = first
        .lock(&holder, Duration::from_secs(5))
        .await
        .expect("first lock");
    let e = match lock(&h.open(), "plan", Duration::from_millis(300)).await {
        Err(e) => e,
        Ok(_) => panic!("the lock must not be granted twice"),
    };
    let msg = e.to_string();
    assert!(matches!(e, StateError::Locked { .. }), "{msg}");
    assert!(e.is_transient(), "a held lock is worth retrying: {msg}");
    assert!(msg.contains("apply by pid"), "{msg}");
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    assert!(msg.contains(&holder.host), "{msg}");
    assert!(msg.contains(&h.open().describe()), "{msg}");
}

async fn a_lock_is_released_on_drop(kind: Kind) {
    let h = Harness::new(kind).await;
    let first = h.open();
    let g = lock(&first, "apply", Duration::from_secs(5))
        .await
        .expect("first lock");
    drop(g);
    let _g = lock(&h.open(), "apply", Duration::from_secs(5))
        .await
        .expect("free once the first guard is dropped");
}

async fn refuses_a_newer_format_version(kind: Kind) {
    let h = Harness::new(kind).await;
    let mut s = sample();
    s.version = STATE_FORMAT_VERSION + 1;
    h.open().commit(&s, &[]).await.expect("commit");
    let e = h.open().load().await.expect_err("a newer format");
    let msg = e.to_string();
    assert!(
        matches!(e, StateError::FutureVersion { found, .. } if found == STATE_FORMAT_VERSION + 1),
        "{msg}"
    );
    assert!(!e.is_transient(), "{msg}");
    assert!(msg.contains("upgrade sipform"), "{msg}");
}

/// Counts commits, and makes each one slow enough that records queue up behind it.
struct Counting {
    inner: Arc<dyn StateBackend>,
    commits: AtomicUsize,
}

#[async_trait]
impl StateBackend for Counting {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn lock(
        &self,
        who: &LockInfo,
        timeout: Duration,
    ) -> Result<Box<dyn LockGuard>, StateError> {
        self.inner.lock(who, timeout).await
    }
    async fn load(&self) -> Result<Option<State>, StateError> {
        self.inner.load().await
    }
    async fn commit(&self, state: &State, changes: &[Change]) -> Result<(), StateError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.inner.commit(state, changes).await
    }
}

async fn group_commit_keeps_every_record_in_fewer_writes(kind: Kind) {
    const RECORDS: usize = 60;
    let h = Harness::new(kind).await;
    let counting = Arc::new(Counting {
        inner: h.open(),
        commits: AtomicUsize::new(0),
    });
    let writer = Arc::new(StateWriter::new(
        counting.clone(),
        State::new(),
        false,
        None,
    ));
    let tasks: Vec<_> = (0..RECORDS)
        .map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .record(vec![tool(
                        &format!("r{}", i % 7),
                        &format!("tool_{i}"),
                        &format!("t-{i}"),
                    )])
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("join").expect("every record is durable");
    }
    let back = load(&h).await;
    let tools: usize = back.restaurants.values().map(|r| r.tools.len()).sum();
    assert_eq!(tools, RECORDS);
    let commits = counting.commits.load(Ordering::SeqCst);
    assert!(commits < RECORDS, "{commits} writes for {RECORDS} records");
    assert_eq!(back.serial, commits as u64);
}

/// Every scenario, once per backend: `file::…`, `sqlite::…`, `postgres::…`.
macro_rules! conformance {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            conformance!(@each $kind;
                loads_nothing_before_the_first_write,
                saves_and_loads_the_same_state,
                each_write_bumps_the_serial,
                keeps_the_lineage,
                applies_and_persists_every_change,
                stores_a_token_only_when_asked,
                a_lock_excludes_a_second_holder_and_names_it,
                a_lock_is_released_on_drop,
                refuses_a_newer_format_version,
                group_commit_keeps_every_record_in_fewer_writes,
            );
        }
    };
    (@each $kind:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                super::$scenario($kind).await;
            }
        )*
    };
}

conformance!(file, super::Kind::File);
conformance!(sqlite, super::Kind::Sqlite);
conformance!(postgres, super::Kind::Postgres);

// ---------------------------------------------------------------------------------------------
// The writer over a failing backend (issue 14, #4)
// ---------------------------------------------------------------------------------------------

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp."))
        .collect()
}

/// The state file cannot be replaced (here: a folder is in its place, as good as a full disk
/// for a rename): the first record fails, every later one fails at once with the same error
/// without writing again, and no temporary file is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_poisons_the_writer_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sipform.state.json");
    std::fs::create_dir(&path).expect("mkdir");
    std::fs::write(path.join("keep"), b"x").expect("write");
    let counting = Arc::new(Counting {
        inner: Arc::new(FileState::new(&path)),
        commits: AtomicUsize::new(0),
    });
    let writer = Arc::new(StateWriter::new(
        counting.clone(),
        State::new(),
        false,
        None,
    ));
    assert!(!writer.is_poisoned());

    let first = writer
        .record(vec![tool("r1", "end_call", "t-1")])
        .await
        .expect_err("the state file cannot be written");
    let msg = first.to_string();
    assert!(writer.is_poisoned());
    assert!(!first.is_transient(), "{msg}");
    let place = path.display().to_string();
    assert!(msg.contains(&place), "{msg}");
    let said = msg.replace(&place, "<path>");
    assert_eq!(said.matches("state").count(), 1, "says it once: {msg}");

    let later: Vec<_> = (0..5)
        .map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .record(vec![tool("r2", &format!("tool_{i}"), &format!("t-{i}"))])
                    .await
            })
        })
        .collect();
    for t in later {
        let e = t.await.expect("join").expect_err("poisoned");
        assert_eq!(e.to_string(), msg);
    }
    assert_eq!(
        counting.commits.load(Ordering::SeqCst),
        1,
        "no write after the failure"
    );
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
}

/// A crashed run's temporary files never block the next write, and the next lock removes them.
#[tokio::test]
async fn a_crashed_writes_leftovers_do_not_block_the_next_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sipform.state.json");
    // A leftover under the name this very process would once have used, in a shape that cannot
    // be opened for writing, and a plain one from another process.
    let same_name = dir
        .path()
        .join(format!(".sipform.state.json.tmp.{}", std::process::id()));
    std::fs::create_dir(&same_name).expect("mkdir");
    std::fs::write(same_name.join("x"), b"x").expect("write");
    let crashed = dir.path().join(".sipform.state.json.tmp.4242.0badf00d");
    std::fs::write(&crashed, b"{\"version\": 1, \"lin").expect("write");

    let backend: Arc<dyn StateBackend> = Arc::new(FileState::new(&path));
    let _g = lock(&backend, "apply", Duration::from_secs(5))
        .await
        .expect("lock");
    assert!(
        !crashed.exists(),
        "the lock holder removes a crash's temporary file"
    );
    let s = sample();
    backend.commit(&s, &[]).await.expect("commit");
    assert_eq!(backend.load().await.expect("load"), Some(s));
}
