//! One conformance suite every state backend runs (the idea of Terraform's
//! `statemgr/testing.go`): the same scenarios against the file, SQLite and PostgreSQL backends,
//! so a backend that behaves differently fails here by name. A new backend adds one arm to
//! [`Harness`] and one line at the bottom.
//!
//! Then, for the group-commit writer on top of any backend: a failed write poisons it, and a
//! failed or crashed atomic write leaves nothing that blocks the next one.
//!
//! Where backends differ by design, the scenario says so: a file holds one project's state, a
//! database holds several side by side ([`Harness::side_by_side`]).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::db::TestDb;
use sipform::model::ids::{AccountId, AgentId, FinalCustomerId, ObjectId, RestaurantId, ToolId};
use sipform::model::revision::{ConfigDigest, GitCommit, Revision};
use sipform::model::rollout::{RolloutRecord, WaveRecord, RECORD_VERSION};
use sipform::model::secret::Secret;
use sipform::state::{
    async_trait, token_digest, AgentTokens, Change, FileState, LockGuard, LockInfo, PostgresState,
    ProjectRef, SqliteState, State, StateBackend, StateError, StateWriter, STATE_FORMAT_VERSION,
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
            Kind::Postgres => Some(TestDb::new(common::db::Engine::Postgres).await),
            Kind::File | Kind::Sqlite => None,
        };
        Harness {
            kind,
            dir: tempfile::tempdir().expect("tempdir"),
            db,
        }
    }

    fn open(&self) -> Arc<dyn StateBackend> {
        self.open_for(None)
    }

    /// [`Harness::open`] for `project`, as a run of that project opens it.
    fn open_for(&self, project: Option<&ProjectRef>) -> Arc<dyn StateBackend> {
        let project = project.cloned();
        match (self.kind, &self.db) {
            (Kind::File, _) => Arc::new(
                FileState::new(self.dir.path().join("sipform.state.json")).for_project(project),
            ),
            (Kind::Sqlite, _) => Arc::new(
                SqliteState::open("sqlite://state/sipform.db", self.dir.path())
                    .expect("open sqlite state")
                    .for_project(project),
            ),
            (Kind::Postgres, Some(db)) => Arc::new(
                PostgresState::open(&db.url)
                    .expect("open postgres state")
                    .for_project(project),
            ),
            (Kind::Postgres, None) => panic!("a PostgreSQL harness has a database"),
        }
    }

    /// Whether several projects keep their state side by side here (a database), rather than
    /// one project owning it all (a file).
    fn side_by_side(&self) -> bool {
        self.kind != Kind::File
    }

    /// Runs `sql` in the harness's database (several statements allowed).
    async fn sql(&self, sql: &str) {
        match (self.kind, &self.db) {
            (Kind::Sqlite, _) => {
                let mut c = self.sqlite().await;
                sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
                sqlx::Connection::close(c).await.ok();
            }
            (Kind::Postgres, Some(db)) => db.exec(sql).await,
            _ => panic!("no database in a {:?} harness", self.kind),
        }
    }

    /// One text value (or NULL) of the first row of `sql`.
    async fn text(&self, sql: &str) -> Option<String> {
        match (self.kind, &self.db) {
            (Kind::Sqlite, _) => {
                let mut c = self.sqlite().await;
                let v: Option<String> = sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql);
                sqlx::Connection::close(c).await.ok();
                v
            }
            (Kind::Postgres, Some(db)) => db.text(sql).await,
            _ => panic!("no database in a {:?} harness", self.kind),
        }
    }

    async fn sqlite(&self) -> sqlx::SqliteConnection {
        let path = self.dir.path().join("state/sipform.db");
        std::fs::create_dir_all(self.dir.path().join("state")).expect("mkdir");
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts)
            .await
            .expect("connect")
    }

    /// Whether `needle` appears anywhere in what the backend stored.
    async fn stores(&self, needle: &str) -> bool {
        match (self.kind, &self.db) {
            (Kind::File, _) => ["sipform.state.json", "sipform.state.json.journal"]
                .iter()
                .map(|f| self.dir.path().join(f))
                .filter(|p| p.exists())
                .any(|p| read_lossy(&p).contains(needle)),
            (Kind::Sqlite, _) => {
                read_lossy(&self.dir.path().join("state/sipform.db")).contains(needle)
            }
            (Kind::Postgres, Some(db)) => {
                let n = db
                    .text(&format!(
                        "SELECT CAST(count(*) AS TEXT) FROM sipform_state_restaurants \
                         WHERE api_token = '{needle}' OR tools LIKE '%{needle}%' \
                         OR token_digest LIKE '%{needle}%'"
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
        r1.tools
            .iter()
            .map(|(name, id)| (name.as_str(), id))
            .collect::<Vec<_>>(),
        vec![("end_call", &ToolId::new("t-1"))]
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

// --- Objects of other kinds: the generic slot -------------------------------------------------

fn object(restaurant: &str, kind: &str, key: &str, id: Option<&str>) -> Change {
    Change::Object {
        restaurant: r(restaurant),
        kind: kind.into(),
        key: key.into(),
        id: id.map(|i| ObjectId::parse(i).expect("a valid id")),
    }
}

fn objects_of(s: &State, restaurant: &str) -> Vec<(String, String, String)> {
    s.restaurants
        .get(&r(restaurant))
        .map(|rs| {
            rs.objects
                .iter()
                .flat_map(|(kind, of_kind)| {
                    of_kind
                        .iter()
                        .map(|(key, id)| (kind.clone(), key.clone(), id.as_str().to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn triple(kind: &str, key: &str, id: &str) -> (String, String, String) {
    (kind.into(), key.into(), id.into())
}

async fn objects_of_other_kinds_round_trip(kind: Kind) {
    let h = Harness::new(kind).await;
    let writer = StateWriter::new(h.open(), State::new(), false, None);
    writer
        .record(vec![
            Change::Agent {
                restaurant: r("r1"),
                id: Some(AgentId::new("ag-1")),
                tokens: None,
            },
            object("r1", "note", "welcome", Some("n-1")),
            object("r1", "note", "closing", Some("n-2")),
            object("r1", "phone_line", "main", Some("pl-1")),
            // A restaurant with nothing but an object is remembered too.
            object("r2", "subscription", "plan", Some("sub-2")),
        ])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(
        objects_of(&back, "r1"),
        vec![
            triple("note", "closing", "n-2"),
            triple("note", "welcome", "n-1"),
            triple("phone_line", "main", "pl-1"),
        ]
    );
    assert_eq!(
        objects_of(&back, "r2"),
        vec![triple("subscription", "plan", "sub-2")]
    );
    assert_eq!(
        back.restaurants[&r("r1")]
            .object("note", "welcome")
            .map(ObjectId::as_str),
        Some("n-1")
    );
    // Whole rewrites (migrate, `state rm`) keep them as well.
    let mut again = back.clone();
    again.serial += 1;
    h.open().commit(&again, &[]).await.expect("commit");
    assert_eq!(load(&h).await, again);
    // The writer's duplicate guard knows them.
    assert!(writer.assigns("pl-1"));
}

fn suspend(restaurant: &str, suspended: bool) -> Change {
    Change::Suspended {
        restaurant: r(restaurant),
        suspended,
    }
}

async fn a_suspension_is_kept_and_lifted(kind: Kind) {
    let h = Harness::new(kind).await;
    let writer = StateWriter::new(h.open(), State::new(), false, None);
    writer
        .record(vec![
            tool("r1", "end_call", "t-1"),
            suspend("r1", true),
            // Suspended before anything was applied: remembered all the same.
            suspend("r2", true),
        ])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(back.suspended(), [r("r1"), r("r2")].into_iter().collect());
    writer
        .record(vec![suspend("r1", false), suspend("r2", false)])
        .await
        .expect("record");
    let back = load(&h).await;
    assert!(back.suspended().is_empty(), "{back:?}");
    assert!(back.restaurants.contains_key(&r("r1")), "its ids stay");
    assert!(
        !back.restaurants.contains_key(&r("r2")),
        "nothing left to remember: gone"
    );
    // A whole rewrite (migrate, `state rm`) keeps the flag.
    let mut again = back.clone();
    again.serial += 1;
    again.apply(&suspend("r1", true), false);
    h.open().commit(&again, &[]).await.expect("commit");
    assert_eq!(load(&h).await.suspended(), [r("r1")].into_iter().collect());
}

async fn an_object_is_forgotten(kind: Kind) {
    let h = Harness::new(kind).await;
    let writer = StateWriter::new(h.open(), State::new(), false, None);
    writer
        .record(vec![
            object("r1", "note", "welcome", Some("n-1")),
            object("r1", "note", "closing", Some("n-2")),
            object("r2", "note", "only", Some("n-3")),
        ])
        .await
        .expect("record");
    writer
        .record(vec![
            object("r1", "note", "welcome", None),
            object("r2", "note", "only", None),
        ])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(
        objects_of(&back, "r1"),
        vec![triple("note", "closing", "n-2")]
    );
    // Nothing left to remember about r2: its entry is gone, not kept empty.
    assert!(!back.restaurants.contains_key(&r("r2")), "{back:?}");
    writer
        .record(vec![object("r1", "note", "closing", None)])
        .await
        .expect("record");
    assert!(load(&h).await.restaurants.is_empty());
}

async fn objects_go_with_their_agent_or_final_customer(kind: Kind) {
    let h = Harness::new(kind).await;
    let writer = StateWriter::new(h.open(), State::new(), false, None);
    writer
        .record(vec![
            Change::FinalCustomer {
                restaurant: r("r1"),
                id: Some(FinalCustomerId::new("fc-1")),
            },
            Change::Agent {
                restaurant: r("r1"),
                id: Some(AgentId::new("ag-1")),
                tokens: None,
            },
            object("r1", "note", "welcome", Some("n-1")),
            Change::FinalCustomer {
                restaurant: r("r2"),
                id: Some(FinalCustomerId::new("fc-2")),
            },
            object("r2", "subscription", "plan", Some("sub-2")),
        ])
        .await
        .expect("record");
    writer
        .record(vec![
            Change::Agent {
                restaurant: r("r1"),
                id: None,
                tokens: None,
            },
            Change::FinalCustomer {
                restaurant: r("r2"),
                id: None,
            },
        ])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(objects_of(&back, "r1"), Vec::new());
    assert_eq!(
        back.restaurants[&r("r1")].final_customer_id,
        Some(FinalCustomerId::new("fc-1"))
    );
    assert!(!back.restaurants.contains_key(&r("r2")), "{back:?}");
}

// --- State written by an earlier sipform ------------------------------------------------------

/// State as the first release wrote it: format 1, table layout 1, no project, no objects.
async fn write_version_1(h: &Harness) -> State {
    let lineage = "6f1c2a4e-0000-4000-8000-0000000000aa";
    match h.kind {
        Kind::File => {
            std::fs::write(
                h.dir.path().join("sipform.state.json"),
                VERSION_1_FILE.replace("LINEAGE", lineage),
            )
            .expect("write");
        }
        Kind::Sqlite | Kind::Postgres => {
            h.sql(&format!(
                "CREATE TABLE sipform_schema_version (version INTEGER NOT NULL);
                 INSERT INTO sipform_schema_version (version) VALUES (1);
                 CREATE TABLE sipform_state_meta (lineage TEXT PRIMARY KEY, \
                   version INTEGER NOT NULL, serial BIGINT NOT NULL, account_id TEXT, \
                   updated_at TEXT NOT NULL);
                 CREATE TABLE sipform_state_restaurants (lineage TEXT NOT NULL, \
                   restaurant_id TEXT NOT NULL, final_customer_id TEXT, agent_id TEXT, \
                   tools TEXT NOT NULL, api_token TEXT, PRIMARY KEY (lineage, restaurant_id));
                 CREATE TABLE sipform_state_lock (name TEXT PRIMARY KEY, holder TEXT NOT NULL);
                 INSERT INTO sipform_state_meta VALUES ('{lineage}', 1, 7, 'acc-1', '2024-01-01T00:00:00Z');
                 INSERT INTO sipform_state_restaurants VALUES
                   ('{lineage}', 'r1', 'fc-1', 'ag-1', '{{\"book_table\":\"t-2\",\"end_call\":\"t-1\"}}', 'tok-1'),
                   ('{lineage}', 'r2', NULL, 'ag-2', '{{}}', NULL);"
            ))
            .await;
        }
    }
    let mut s: State = serde_json::from_str(&VERSION_1_FILE.replace("LINEAGE", lineage))
        .expect("the version-1 document parses");
    s.version = 1;
    s
}

const VERSION_1_FILE: &str = r#"{
  "version": 1,
  "lineage": "LINEAGE",
  "serial": 7,
  "accountId": "acc-1",
  "restaurants": {
    "r1": {
      "finalCustomerId": "fc-1",
      "agentId": "ag-1",
      "tools": {
        "book_table": "t-2",
        "end_call": "t-1"
      },
      "apiToken": "tok-1"
    },
    "r2": {
      "agentId": "ag-2"
    }
  }
}
"#;

/// An earlier sipform's state reads as it was, and a database's tables migrate from layout 1 to
/// 2 keeping every row; rewritten with nothing new in it, a file stays byte for byte the same.
async fn reads_and_migrates_version_1_state(kind: Kind) {
    let h = Harness::new(kind).await;
    let expected = write_version_1(&h).await;
    // Read before any migration (loading never writes).
    assert_eq!(load(&h).await, expected);
    // Taking the lock migrates the tables; the state reads the same.
    let b = h.open();
    let g = lock(&b, "apply", Duration::from_secs(5))
        .await
        .expect("lock");
    assert_eq!(load(&h).await, expected);
    if kind != Kind::File {
        assert_eq!(
            h.text("SELECT CAST(max(version) AS TEXT) FROM sipform_schema_version")
                .await
                .as_deref(),
            Some("6")
        );
        assert_eq!(
            h.text("SELECT CAST(count(*) AS TEXT) FROM sipform_state_restaurants")
                .await
                .as_deref(),
            Some("2")
        );
    }
    let mut same = expected.clone();
    same.serial += 1;
    b.commit(&same, &[]).await.expect("commit");
    drop(g);
    assert_eq!(load(&h).await, same);
    if kind == Kind::File {
        let text = read_lossy(&h.dir.path().join("sipform.state.json"));
        let before = VERSION_1_FILE
            .replace("LINEAGE", &same.lineage.to_string())
            .replace("\"serial\": 7", "\"serial\": 8");
        assert_eq!(text, before, "a version-1 file keeps its shape");
    }
    // New slots work on the migrated layout, next to the old rows.
    let writer = StateWriter::new(h.open(), same, true, None);
    writer
        .record(vec![object("r2", "note", "welcome", Some("n-1"))])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(back.version, 2, "objects need format 2");
    assert_eq!(back.restaurants[&r("r1")], expected.restaurants[&r("r1")]);
    assert_eq!(
        objects_of(&back, "r2"),
        vec![triple("note", "welcome", "n-1")]
    );
    // And so does a revision, on the layout migrated to its column.
    writer
        .record(vec![revision("r1", "1", None)])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(back.version, 3, "revisions need format 3");
    // And a token digest, on the layout migrated to its column.
    writer
        .record(vec![Change::Agent {
            restaurant: r("r2"),
            id: Some(AgentId::new("ag-2")),
            tokens: Some(tokens("sk_migrated")),
        }])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert!(back.restaurants[&r("r2")].token_digest.is_some());
    assert_eq!(back.version, 4, "token digests need format 4");
    // And a rollout record, on the layout migrated to its column.
    writer
        .record(vec![Change::Rollout(Box::new(rollout_record(1)))])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(back.rollout.as_deref(), Some(&rollout_record(1)));
    assert_eq!(
        back.version, STATE_FORMAT_VERSION,
        "a rollout record needs format 5"
    );
}

// --- The salted digest of the tokens written back ---------------------------------------------

/// Each restaurant's token digest round-trips (without `store_tokens`), is replaced when the
/// agent's tokens are, and goes with the agent; no token is stored in clear.
async fn token_digests_round_trip(kind: Kind) {
    let h = Harness::new(kind).await;
    let agent = |rest: &str, token: Option<&str>| Change::Agent {
        restaurant: r(rest),
        id: Some(AgentId::new(format!("ag-{rest}"))),
        tokens: token.map(tokens),
    };
    let writer = StateWriter::new(h.open(), State::new(), false, None);
    writer
        .record(vec![
            agent("r1", Some("sk_digest_one")),
            agent("r2", Some("sk_digest_two")),
        ])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(back.version, STATE_FORMAT_VERSION);
    let digest = |s: &State, rid: &str| s.restaurants[&r(rid)].token_digest.clone();
    let want =
        |s: &State, rid: &str, api: &str| Some(token_digest(&s.lineage, &r(rid), &tokens(api)));
    assert_eq!(digest(&back, "r1"), want(&back, "r1", "sk_digest_one"));
    assert_eq!(digest(&back, "r2"), want(&back, "r2", "sk_digest_two"));
    assert_ne!(
        token_digest(&back.lineage, &r("r1"), &tokens("x")),
        token_digest(&back.lineage, &r("r2"), &tokens("x")),
        "salted per restaurant"
    );
    // New tokens replace the digest; a change without tokens keeps it; a deleted agent drops it.
    writer
        .record(vec![
            agent("r1", Some("sk_digest_new")),
            agent("r2", None),
            tool("r2", "end_call", "t-9"),
        ])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(digest(&back, "r1"), want(&back, "r1", "sk_digest_new"));
    assert_eq!(digest(&back, "r2"), want(&back, "r2", "sk_digest_two"));
    writer
        .record(vec![Change::Agent {
            restaurant: r("r1"),
            id: None,
            tokens: None,
        }])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert!(!back.restaurants.contains_key(&r("r1")));
    for token in ["sk_digest_one", "sk_digest_two", "sk_digest_new"] {
        assert!(!h.stores(token).await, "{token} is stored in clear");
        assert!(
            !h.stores(&format!("pk_{token}")).await,
            "pk_{token} is stored in clear"
        );
    }
    if kind != Kind::File {
        let stored = h
            .text("SELECT CAST(token_digest AS TEXT) FROM sipform_state_restaurants")
            .await;
        assert_eq!(stored, digest(&back, "r2"), "the column holds the digest");
    }
}

/// A file commit that raises the format version (a first token digest into a version-1
/// document) writes the document whole instead of appending to the journal: an older sipform
/// then reads "upgrade" in the document, never an entry it cannot parse ("corrupt").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_commit_raising_the_format_is_written_whole() {
    let h = Harness::new(Kind::File).await;
    write_version_1(&h).await;
    let doc = || read_lossy(&h.dir.path().join("sipform.state.json"));
    let writer = StateWriter::new(h.open(), load(&h).await, false, None);
    writer
        .record(vec![tool("r2", "end_call", "t-9")])
        .await
        .expect("record");
    assert!(doc().contains("\"version\": 1"), "nothing new: appended");
    writer
        .record(vec![Change::Agent {
            restaurant: r("r2"),
            id: Some(AgentId::new("ag-2")),
            tokens: Some(tokens("sk_whole")),
        }])
        .await
        .expect("record");
    let text = doc();
    assert!(
        text.contains("\"version\": 4"),
        "written whole at the new format: {text}"
    );
    assert!(text.contains("tokenDigest") && !text.contains("sk_whole"));
    assert_eq!(load(&h).await, writer.snapshot());
    // A rollout record: format 5, written whole once more.
    writer
        .record(vec![Change::Rollout(Box::new(rollout_record(0)))])
        .await
        .expect("record");
    let text = doc();
    assert!(
        text.contains(&format!("\"version\": {STATE_FORMAT_VERSION}")),
        "written whole at the new format: {text}"
    );
    assert!(text.contains("\"rollout\""), "{text}");
    assert_eq!(load(&h).await, writer.snapshot());
}

// --- The revision that last reconciled a restaurant -------------------------------------------

/// `Change::Revision` for `restaurant` at the commit made of `digit`, maybe going back from
/// another.
fn revision(restaurant: &str, digit: &str, rollback_from: Option<&str>) -> Change {
    let commit = |d: &str| GitCommit::parse(&d.repeat(40)).expect("a commit");
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
        .expect("a time")
        .with_timezone(&chrono::Utc);
    Change::Revision {
        restaurant: r(restaurant),
        revision: Revision {
            commit: Some(commit(digit)),
            dirty: digit == "d",
            digest: ConfigDigest::from_sha256([7; 32]),
        }
        .applied(at, rollback_from.map(commit)),
    }
}

/// Each restaurant's revision round-trips, is replaced by the next one recorded, is ignored
/// for a restaurant state holds nothing for, and goes with the restaurant's last id.
async fn revisions_round_trip(kind: Kind) {
    let h = Harness::new(kind).await;
    let writer = StateWriter::new(h.open(), State::new(), false, None);
    let agent = |rid: &str, id: Option<&str>| Change::Agent {
        restaurant: r(rid),
        id: id.map(AgentId::new),
        tokens: None,
    };
    writer
        .record(vec![
            agent("r1", Some("ag-1")),
            agent("r2", Some("ag-2")),
            revision("r1", "a", None),
            revision("r2", "d", None),
            revision("nobody", "a", None),
        ])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(back.version, STATE_FORMAT_VERSION);
    assert!(!back.restaurants.contains_key(&r("nobody")));
    let of = |s: &State, rid: &str| s.restaurants[&r(rid)].revision.clone().expect("recorded");
    assert_eq!(
        of(&back, "r1")
            .commit
            .map(|c| c.short().to_string())
            .as_deref(),
        Some("aaaaaaa")
    );
    assert!(of(&back, "r2").dirty);
    writer
        .record(vec![revision("r1", "b", Some("a")), agent("r2", None)])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    let r1 = of(&back, "r1");
    assert_eq!(
        r1.commit.map(|c| c.short().to_string()).as_deref(),
        Some("bbbbbbb")
    );
    assert_eq!(
        r1.rollback_from.map(|c| c.short().to_string()).as_deref(),
        Some("aaaaaaa")
    );
    assert!(
        !back.restaurants.contains_key(&r("r2")),
        "only a revision left: forgotten"
    );
    // A whole rewrite keeps it.
    let mut again = back.clone();
    again.serial += 1;
    h.open().commit(&again, &[]).await.expect("commit");
    assert_eq!(load(&h).await, again);
}

// --- The rollout record ------------------------------------------------------------------------

/// A rollout record whose manual releases are `released` (to tell two apart).
fn rollout_record(released: usize) -> RolloutRecord {
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
        .expect("a time")
        .with_timezone(&chrono::Utc);
    let revision = |n: u8| Revision {
        commit: Some(GitCommit::parse(&format!("{n:040x}")).expect("a commit")),
        dirty: false,
        digest: ConfigDigest::from_sha256([n; 32]),
    };
    let mut waves = vec![WaveRecord::default(); 3];
    waves[0].started_at = Some(at);
    waves[0].failed = 1;
    RolloutRecord {
        version: RECORD_VERSION,
        from: Some(revision(1)),
        to: revision(2),
        started_at: at,
        canary: vec![r("r1"), r("r2")],
        waves,
        released,
        halted: None,
        paused: Some("wave 0: waiting for calls".into()),
        finished_at: None,
        aborted_at: None,
        rollback: false,
    }
}

/// The rollout record round-trips, is replaced whole by the next one, stays through commits
/// of restaurants only and through a whole rewrite: every run sharing this state (another
/// machine's controller) reads the rollout where the last one left it.
async fn a_rollout_record_round_trips(kind: Kind) {
    let h = Harness::new(kind).await;
    let writer = StateWriter::new(h.open(), State::new(), false, None);
    writer
        .record(vec![
            tool("r1", "end_call", "t-1"),
            Change::Rollout(Box::new(rollout_record(0))),
        ])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(back.rollout.as_deref(), Some(&rollout_record(0)));
    assert_eq!(back.version, STATE_FORMAT_VERSION);
    writer
        .record(vec![Change::Rollout(Box::new(rollout_record(2)))])
        .await
        .expect("record");
    writer
        .record(vec![tool("r2", "end_call", "t-2")])
        .await
        .expect("record");
    let back = load(&h).await;
    assert_eq!(back, writer.snapshot());
    assert_eq!(back.rollout.as_deref(), Some(&rollout_record(2)));
    // A whole rewrite (`state migrate`, `state rm`) keeps it.
    let mut again = back.clone();
    again.serial += 1;
    h.open().commit(&again, &[]).await.expect("commit");
    assert_eq!(load(&h).await, again);
}

/// A deposed writer (it loaded the serial another writer has since committed) cannot write
/// the rollout record either: the same fencing as its ids.
async fn a_stale_rollout_record_is_refused(kind: Kind) {
    let h = Harness::new(kind).await;
    h.open().commit(&sample(), &[]).await.expect("first commit");
    let base = load(&h).await;
    let (mut first, mut second) = (base.clone(), base);
    let won = Change::Rollout(Box::new(rollout_record(1)));
    first.apply(&won, false);
    first.serial += 1;
    h.open().commit(&first, &[won]).await.expect("the leader");
    let lost = Change::Rollout(Box::new(rollout_record(9)));
    second.apply(&lost, false);
    second.serial += 1;
    let err = h
        .open()
        .commit(&second, &[lost])
        .await
        .expect_err("the deposed leader's record is refused");
    assert!(matches!(err, StateError::Stale { .. }), "{err}");
    assert_eq!(load(&h).await.rollout.as_deref(), Some(&rollout_record(1)));
}

// --- State bound to its project ---------------------------------------------------------------

fn project(id: &str, account: &str) -> ProjectRef {
    ProjectRef::new(id, account)
}

/// State recorded for no project (an earlier sipform's) is adopted by the first project that
/// opens it and records that project on its next write; from then on it is that project's.
async fn adopts_state_recorded_for_no_project(kind: Kind) {
    let h = Harness::new(kind).await;
    let a = project("alloresto-prod", "AlloResto");
    let b = project("staging", "AlloResto-Staging");
    let s = sample();
    h.open().commit(&s, &[]).await.expect("commit");
    assert_eq!(load(&h).await.project, None);

    let mine = h
        .open_for(Some(&a))
        .load()
        .await
        .expect("load")
        .expect("state");
    assert_eq!(mine.project.as_ref(), Some(&a));
    assert_eq!(mine.restaurants, s.restaurants);
    assert_eq!(mine.lineage, s.lineage);
    let writer = StateWriter::new(h.open_for(Some(&a)), mine, false, None);
    writer
        .record(vec![tool("r1", "leave_message", "t-9")])
        .await
        .expect("record");
    assert_eq!(load(&h).await.project.as_ref(), Some(&a));

    // Another project no longer sees it.
    let other = h.open_for(Some(&b)).load().await;
    if h.side_by_side() {
        assert_eq!(other.expect("its own, empty"), None);
    } else {
        let e = other.expect_err("another project's state");
        assert!(matches!(e, StateError::OtherProject { .. }), "{e}");
    }
}

/// The same project id with another account is another project: refused, naming both, by
/// every backend, before anything is read or written.
async fn refuses_the_same_id_with_another_account(kind: Kind) {
    let h = Harness::new(kind).await;
    let a = project("alloresto", "AlloResto");
    let b = project("alloresto", "AlloResto-Staging");
    h.open_for(Some(&a))
        .commit(&sample(), &[])
        .await
        .expect("commit");
    let e = h
        .open_for(Some(&b))
        .load()
        .await
        .expect_err("another account's state");
    let msg = e.to_string();
    assert!(matches!(e, StateError::OtherProject { .. }), "{msg}");
    assert!(!e.is_transient(), "{msg}");
    assert!(
        msg.contains(
            "belongs to project alloresto (account AlloResto), \
             not to project alloresto (account AlloResto-Staging)"
        ),
        "{msg}"
    );
    assert!(msg.contains(&h.open().describe()), "{msg}");
    assert!(msg.contains("set `project:`"), "{msg}");
    // Its own project still reads it.
    let back = h
        .open_for(Some(&a))
        .load()
        .await
        .expect("load")
        .expect("state");
    assert_eq!(back.project.as_ref(), Some(&a));
}

/// Two writers that loaded the same state (a deposed leader and its successor): the first
/// commits the next serial, the second's commit of that serial is refused (stale), and what
/// the first wrote stays. The check is inside the commit's transaction, so no lease timing
/// is needed for it (issue 24, fencing).
async fn the_second_writer_of_one_serial_is_refused(kind: Kind) {
    let h = Harness::new(kind).await;
    h.open().commit(&sample(), &[]).await.expect("first commit");
    let base = load(&h).await;
    let (mut first, mut second) = (base.clone(), base.clone());
    let won = tool("r1", "won", "t-won");
    first.apply(&won, false);
    first.serial += 1;
    h.open()
        .commit(&first, &[won])
        .await
        .expect("the first writer");
    let lost = tool("r1", "lost", "t-lost");
    second.apply(&lost, false);
    second.serial += 1;
    let err = h
        .open()
        .commit(&second, &[lost])
        .await
        .expect_err("the second writer of the same serial is refused");
    assert!(
        matches!(err, sipform::state::StateError::Stale { .. }),
        "{err}"
    );
    let after = load(&h).await;
    assert_eq!(after, first, "what the first writer committed stays");
}

/// The stored serial is read without the restaurants, and moves with every commit: what
/// the controller compares its kept state with.
async fn the_stored_serial_follows_each_commit(kind: Kind) {
    let h = Harness::new(kind).await;
    assert_eq!(h.open().stored_serial().await.expect("read"), None);
    let mut s = sample();
    h.open().commit(&s, &[]).await.expect("commit");
    assert_eq!(
        h.open().stored_serial().await.expect("read"),
        Some((s.lineage, s.serial))
    );
    let c = tool("r1", "more", "t-more");
    s.apply(&c, false);
    s.serial += 1;
    h.open().commit(&s, &[c]).await.expect("commit");
    assert_eq!(
        h.open().stored_serial().await.expect("read"),
        Some((s.lineage, s.serial))
    );
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
                objects_of_other_kinds_round_trip,
                an_object_is_forgotten,
                objects_go_with_their_agent_or_final_customer,
                reads_and_migrates_version_1_state,
                revisions_round_trip,
                a_rollout_record_round_trips,
                token_digests_round_trip,
                adopts_state_recorded_for_no_project,
                refuses_the_same_id_with_another_account,
                a_suspension_is_kept_and_lifted,
            );
        }
    };
    // The database backends only: the file backend is one writer's, behind its lock file.
    (@sql $backend:ident, $kind:expr) => {
        mod $backend {
            conformance!(@each $kind;
                the_second_writer_of_one_serial_is_refused,
                a_stale_rollout_record_is_refused,
                the_stored_serial_follows_each_commit,
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
conformance!(@sql sqlite_serial, super::Kind::Sqlite);
conformance!(@sql postgres_serial, super::Kind::Postgres);

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
