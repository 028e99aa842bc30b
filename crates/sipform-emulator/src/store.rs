//! The emulator's objects, held as ready-to-send JSON text.
//!
//! Objects are kept serialized (one `String` each) rather than as `serde_json::Value` trees:
//! a tool's JSON Schema is dozens of nodes, and 10,000 agents × 12 tools as `Value`s would not
//! fit the memory target. Reads concatenate the stored text, so a list costs no re-encoding;
//! only writes parse and re-serialize the one object they touch.

use std::collections::HashMap;

use indexmap::IndexMap;
use serde_json::{Map, Value};

/// An answer the API gives instead of the happy path: `{"error": message}` with `status`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        ApiError {
            status: 404,
            message: format!("{kind} {id} not found"),
        }
    }
}

/// A successful answer: status and JSON text (empty for 204).
pub(crate) type Answer = Result<(u16, String), ApiError>;

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Num,
    Int,
    Bool,
    Obj,
}

/// What a field holds when the client did not send it.
#[derive(Clone, Copy)]
enum Def {
    Required,
    Null,
    False,
    True,
    EmptyStr,
    Zero,
    Eur,
    Thirty,
    EmptySchema,
    Sip,
}

struct Field {
    name: &'static str,
    ty: Ty,
    nullable: bool,
    def: Def,
}

const fn f(name: &'static str, ty: Ty, nullable: bool, def: Def) -> Field {
    Field {
        name,
        ty,
        nullable,
        def,
    }
}

const ACCOUNT: &[Field] = &[
    f("name", Ty::Str, false, Def::Required),
    f("email", Ty::Str, true, Def::Null),
    f("isActive", Ty::Bool, false, Def::True),
];

const FINAL_CUSTOMER: &[Field] = &[
    f("accountId", Ty::Str, false, Def::Required),
    f("name", Ty::Str, false, Def::Required),
    f("email", Ty::Str, true, Def::Null),
    f("phone", Ty::Str, true, Def::Null),
    f("currency", Ty::Str, false, Def::Eur),
    f("costMarginPct", Ty::Num, false, Def::Thirty),
    f("isActive", Ty::Bool, false, Def::True),
];

const AGENT: &[Field] = &[
    f("accountId", Ty::Str, false, Def::Required),
    f("finalCustomerId", Ty::Str, false, Def::Required),
    f("name", Ty::Str, false, Def::Required),
    f("basePrompt", Ty::Str, true, Def::Null),
    f("aiModel", Ty::Str, true, Def::Null),
    f("aiVoice", Ty::Str, true, Def::Null),
    f("vadThreshold", Ty::Num, true, Def::Null),
    f("vadSilenceMs", Ty::Int, true, Def::Null),
    f("vadPrefixPaddingMs", Ty::Int, true, Def::Null),
    f("temperature", Ty::Num, true, Def::Null),
    f("transportType", Ty::Str, true, Def::Null),
    f("timezone", Ty::Str, true, Def::Null),
    f("apiBaseUrl", Ty::Str, true, Def::Null),
    f("maxCallDurationSec", Ty::Int, true, Def::Null),
    f("onCallEndWebhook", Ty::Str, true, Def::Null),
    f("externalSessionUrl", Ty::Str, true, Def::Null),
    f("chatEnabled", Ty::Bool, true, Def::Null),
    f("chatMode", Ty::Str, true, Def::Null),
    f("chatTitle", Ty::Str, true, Def::Null),
    f("chatOpenOnLoad", Ty::Bool, true, Def::Null),
    f("config", Ty::Obj, true, Def::Null),
    f("isActive", Ty::Bool, false, Def::True),
];

const TOOL: &[Field] = &[
    f("name", Ty::Str, false, Def::Required),
    f("description", Ty::Str, false, Def::EmptyStr),
    f("parameters", Ty::Obj, false, Def::EmptySchema),
    f("http", Ty::Obj, true, Def::Null),
    f("contextUpdates", Ty::Obj, true, Def::Null),
    f("condition", Ty::Obj, true, Def::Null),
    f("extraCostResponseField", Ty::Str, true, Def::Null),
    f("triggersHangup", Ty::Bool, false, Def::False),
    f("triggersTransfer", Ty::Bool, false, Def::False),
    f("mutesClientAudio", Ty::Bool, false, Def::False),
    f("skipResponseCreate", Ty::Bool, false, Def::False),
    f("isEnabled", Ty::Bool, false, Def::True),
    f("sortOrder", Ty::Int, false, Def::Zero),
];

const PHONE_LINE: &[Field] = &[
    f("phoneNumber", Ty::Str, false, Def::Required),
    f("provider", Ty::Str, false, Def::Sip),
    f("sipTransport", Ty::Str, true, Def::Null),
    f("stunServer", Ty::Str, true, Def::Null),
    f("sipDomain", Ty::Str, true, Def::Null),
    f("sipUsername", Ty::Str, true, Def::Null),
    f("sipPassword", Ty::Str, true, Def::Null),
    f("twilioTrunkSid", Ty::Str, true, Def::Null),
    f("isActive", Ty::Bool, false, Def::True),
];

const SUBSCRIPTION: &[Field] = &[f("planId", Ty::Str, false, Def::Required)];

/// Keys the server owns: a client sending them is ignored, as the real server does.
const AGENT_OWNED: &[&str] = &[
    "id",
    "apiToken",
    "publicToken",
    "pauseReason",
    "phoneLines",
    "tools",
    "createdAt",
    "updatedAt",
];
/// Agent keys fixed at creation.
const AGENT_CREATE_ONLY: &[&str] = &["accountId", "finalCustomerId"];
const LINE_OWNED: &[&str] = &["id", "sipRegistered", "sipPassword"];
const FC_OWNED: &[&str] = &["id", "accountId"];

fn default_value(def: Def) -> Value {
    match def {
        Def::Required | Def::Null => Value::Null,
        Def::False => Value::Bool(false),
        Def::True => Value::Bool(true),
        Def::EmptyStr => Value::String(String::new()),
        Def::Zero => Value::from(0),
        Def::Eur => Value::from("EUR"),
        Def::Thirty => Value::from(30),
        Def::EmptySchema => serde_json::json!({"type": "object", "properties": {}}),
        Def::Sip => Value::from("sip"),
    }
}

/// 400 for a known field of the wrong JSON type (`name: 5`, `sortOrder: "x"`, `config: []`).
fn check_types(body: &Map<String, Value>, fields: &[Field], what: &str) -> Result<(), ApiError> {
    for field in fields {
        let Some(v) = body.get(field.name) else {
            continue;
        };
        let ok = match (field.ty, v) {
            (_, Value::Null) => field.nullable,
            (Ty::Str, Value::String(_)) => true,
            (Ty::Num, Value::Number(_)) => true,
            (Ty::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Ty::Bool, Value::Bool(_)) => true,
            (Ty::Obj, Value::Object(_)) => true,
            _ => false,
        };
        if !ok {
            let expected = match field.ty {
                Ty::Str => "a string",
                Ty::Num => "a number",
                Ty::Int => "an integer",
                Ty::Bool => "a boolean",
                Ty::Obj => "an object",
            };
            let null = if field.nullable { " or null" } else { "" };
            return Err(ApiError::bad(format!(
                "{what}: field `{}` must be {expected}{null}",
                field.name
            )));
        }
    }
    Ok(())
}

fn fill_defaults(
    obj: &mut Map<String, Value>,
    fields: &[Field],
    what: &str,
) -> Result<(), ApiError> {
    for field in fields {
        if !obj.contains_key(field.name) {
            if let Def::Required = field.def {
                return Err(ApiError::bad(format!(
                    "{what}: field `{}` is required",
                    field.name
                )));
            }
            obj.insert(field.name.to_string(), default_value(field.def));
        }
    }
    Ok(())
}

/// Builds a new object: `id` first, then the client's fields, then the defaults.
fn build(
    id: &str,
    body: &Map<String, Value>,
    owned: &[&str],
    fields: &[Field],
    what: &str,
) -> Result<Map<String, Value>, ApiError> {
    check_types(body, fields, what)?;
    let mut obj = Map::new();
    obj.insert("id".into(), Value::from(id));
    for (k, v) in body {
        if !owned.contains(&k.as_str()) {
            obj.insert(k.clone(), v.clone());
        }
    }
    fill_defaults(&mut obj, fields, what)?;
    Ok(obj)
}

/// Merges the top-level keys of `body` into the stored object (PUT semantics of agents,
/// final customers and phone lines): sent keys replace stored ones whole, others stay.
fn merge(
    stored: &str,
    body: &Map<String, Value>,
    ignored: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let mut obj: Map<String, Value> = serde_json::from_str(stored).map_err(|e| ApiError {
        status: 500,
        message: format!("stored object unreadable: {e}"),
    })?;
    for (k, v) in body {
        if !ignored.contains(&k.as_str()) {
            obj.insert(k.clone(), v.clone());
        }
    }
    Ok(obj)
}

fn to_text(obj: &Map<String, Value>) -> String {
    // A map of JSON values always serializes. The buffer grows by doubling: trim it, since
    // the text is kept for the object's lifetime (about a third less memory at 10k agents).
    let mut text = serde_json::to_string(obj).unwrap_or_else(|_| "{}".into());
    text.shrink_to_fit();
    text
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `obj` with `"key": raw` appended before its closing brace.
fn splice(obj: &str, key: &str, raw: &str) -> String {
    let body = obj.strip_suffix('}').unwrap_or(obj);
    let sep = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    format!("{body}{sep}\"{key}\":{raw}}}")
}

fn array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

fn owned_array(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    array(v.iter().map(String::as_str))
}

/// An account, final customer, plan or subscription: its text and the id it hangs off.
struct Rec {
    json: String,
    /// accountId (final customers, plans) or finalCustomerId (subscriptions).
    owner: String,
}

struct AgentRec {
    /// The agent without `phoneLines` (spliced in on read).
    json: String,
    account_id: String,
    tools: Vec<String>,
    lines: Vec<String>,
}

struct ToolRec {
    json: String,
    sort: i64,
    seq: u64,
}

struct LineRec {
    /// What reads return: no `sipPassword`, with `sipRegistered`.
    json: String,
    sip_password: Option<String>,
}

/// Everything the emulator holds. Insertion order is kept (`IndexMap`), so lists are stable.
#[derive(Default)]
pub(crate) struct Store {
    accounts: IndexMap<String, Rec>,
    final_customers: IndexMap<String, Rec>,
    agents: IndexMap<String, AgentRec>,
    tools: HashMap<String, ToolRec>,
    lines: HashMap<String, LineRec>,
    plans: IndexMap<String, Rec>,
    subscriptions: IndexMap<String, Rec>,
    /// Subscription ids by final customer, in creation order: listing one final customer's
    /// must not scan every subscription (at 100,000 restaurants that made the emulator the
    /// bottleneck of a plan).
    subs_by_fc: HashMap<String, Vec<String>>,
    seq: u64,
    /// Bumped by every write: what the snapshot writer compares against.
    pub version: u64,
    /// Appended to every id made (see `EmulatorConfig::id_suffix`).
    pub id_suffix: String,
}

fn as_object(body: Value, what: &str) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad(format!(
            "{what}: the body must be a JSON object"
        ))),
    }
}

impl Store {
    fn touch(&mut self) {
        self.version += 1;
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Every phone line with its agent, `(line id, agent id)`, for `GET /api/bridges`.
    pub(crate) fn bridged_lines(&self) -> Vec<(String, String)> {
        self.agents
            .iter()
            .flat_map(|(agent, a)| a.lines.iter().map(move |l| (l.clone(), agent.clone())))
            .collect()
    }

    pub fn clear(&mut self) {
        let version = self.version;
        let suffix = std::mem::take(&mut self.id_suffix);
        *self = Store::default();
        self.version = version + 1;
        self.id_suffix = suffix;
    }

    fn new_id(&self) -> String {
        format!("{}{}", uuid(), self.id_suffix)
    }

    // ---- accounts and plans ----

    pub fn list_accounts(&self) -> Answer {
        Ok((200, array(self.accounts.values().map(|r| r.json.as_str()))))
    }

    pub fn create_account(&mut self, body: Value) -> Answer {
        let body = as_object(body, "account")?;
        let id = self.new_id();
        let obj = build(&id, &body, &["id"], ACCOUNT, "account")?;
        let json = to_text(&obj);
        self.accounts.insert(
            id.clone(),
            Rec {
                json: json.clone(),
                owner: String::new(),
            },
        );
        // Every account comes with a default plan and one option, as the platform expects.
        for (name, is_option, sort) in [("Standard", false, 0), ("Extra minutes", true, 1)] {
            let plan_id = self.new_id();
            let plan = serde_json::json!({
                "id": plan_id, "accountId": id, "name": name, "isOption": is_option,
                "isActive": true, "sortOrder": sort, "currency": "EUR",
            });
            self.plans.insert(
                plan_id,
                Rec {
                    json: plan.to_string(),
                    owner: id.clone(),
                },
            );
        }
        self.touch();
        Ok((201, json))
    }

    pub fn list_plans(&self, account: Option<&str>) -> Answer {
        Ok((200, filtered(&self.plans, account)))
    }

    // ---- final customers and subscriptions ----

    pub fn list_final_customers(&self, account: Option<&str>) -> Answer {
        Ok((200, filtered(&self.final_customers, account)))
    }

    pub fn create_final_customer(&mut self, body: Value) -> Answer {
        let body = as_object(body, "final customer")?;
        let id = self.new_id();
        let obj = build(&id, &body, &["id"], FINAL_CUSTOMER, "final customer")?;
        let account = obj
            .get("accountId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !self.accounts.contains_key(&account) {
            return Err(ApiError::bad(format!(
                "final customer: account {account} does not exist"
            )));
        }
        let json = to_text(&obj);
        self.final_customers.insert(
            id,
            Rec {
                json: json.clone(),
                owner: account,
            },
        );
        self.touch();
        Ok((201, json))
    }

    pub fn get_final_customer(&self, id: &str) -> Answer {
        self.final_customers
            .get(id)
            .map(|r| (200, r.json.clone()))
            .ok_or_else(|| ApiError::not_found("final customer", id))
    }

    pub fn put_final_customer(&mut self, id: &str, body: Value) -> Answer {
        let body = as_object(body, "final customer")?;
        check_types(&body, FINAL_CUSTOMER, "final customer")?;
        let rec = self
            .final_customers
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("final customer", id))?;
        let obj = merge(&rec.json, &body, FC_OWNED)?;
        rec.json = to_text(&obj);
        let json = rec.json.clone();
        self.touch();
        Ok((200, json))
    }

    /// Deleting a final customer removes its subscriptions; its agents stay.
    pub fn delete_final_customer(&mut self, id: &str) -> Answer {
        if self.final_customers.shift_remove(id).is_none() {
            return Err(ApiError::not_found("final customer", id));
        }
        self.subscriptions.retain(|_, s| s.owner != id);
        self.subs_by_fc.remove(id);
        self.touch();
        Ok((204, String::new()))
    }

    pub fn list_subscriptions(&self, fc: &str) -> Answer {
        if !self.final_customers.contains_key(fc) {
            return Err(ApiError::not_found("final customer", fc));
        }
        let ids = self.subs_by_fc.get(fc).map_or(&[][..], Vec::as_slice);
        Ok((
            200,
            array(
                ids.iter()
                    .filter_map(|id| self.subscriptions.get(id))
                    .map(|r| r.json.as_str()),
            ),
        ))
    }

    pub fn create_subscription(&mut self, fc: &str, body: Value) -> Answer {
        if !self.final_customers.contains_key(fc) {
            return Err(ApiError::not_found("final customer", fc));
        }
        let body = as_object(body, "subscription")?;
        let id = self.new_id();
        let mut obj = build(
            &id,
            &body,
            &["id", "finalCustomerId", "createdAt"],
            SUBSCRIPTION,
            "subscription",
        )?;
        let plan = obj
            .get("planId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !self.plans.contains_key(plan) {
            return Err(ApiError::bad(format!(
                "subscription: plan {plan} does not exist"
            )));
        }
        obj.insert("finalCustomerId".into(), Value::from(fc));
        obj.insert("createdAt".into(), Value::from(now()));
        let json = to_text(&obj);
        self.subs_by_fc
            .entry(fc.to_string())
            .or_default()
            .push(id.clone());
        self.subscriptions.insert(
            id,
            Rec {
                json: json.clone(),
                owner: fc.to_string(),
            },
        );
        self.touch();
        Ok((201, json))
    }

    pub fn delete_subscription(&mut self, id: &str) -> Answer {
        let Some(gone) = self.subscriptions.shift_remove(id) else {
            return Err(ApiError::not_found("subscription", id));
        };
        if let Some(ids) = self.subs_by_fc.get_mut(&gone.owner) {
            ids.retain(|s| s != id);
        }
        self.touch();
        Ok((204, String::new()))
    }

    // ---- agents ----

    fn agent_text(&self, agent: &AgentRec) -> String {
        let lines = array(
            agent
                .lines
                .iter()
                .filter_map(|l| self.lines.get(l))
                .map(|l| l.json.as_str()),
        );
        splice(&agent.json, "phoneLines", &lines)
    }

    /// Whether agent `id` exists (call records are kept for agents only).
    pub(crate) fn has_agent(&self, id: &str) -> bool {
        self.agents.contains_key(id)
    }

    /// The id of the agent whose `apiToken` is `token` (`GET /api/calls` authenticates so).
    pub(crate) fn agent_with_token(&self, token: &str) -> Option<String> {
        self.agents.iter().find_map(|(id, a)| {
            let obj: Value = serde_json::from_str(&a.json).ok()?;
            (obj.get("apiToken").and_then(Value::as_str) == Some(token)).then(|| id.clone())
        })
    }

    fn agent(&self, id: &str) -> Result<&AgentRec, ApiError> {
        self.agents
            .get(id)
            .ok_or_else(|| ApiError::not_found("agent", id))
    }

    /// The list includes `apiToken`, like `GET /api/agents/:id`: one call gives a client all
    /// it needs to adopt existing agents.
    pub fn list_agents(&self, account: Option<&str>) -> Answer {
        let items = self
            .agents
            .values()
            .filter(|a| account.is_none_or(|acc| a.account_id == acc))
            .map(|a| self.agent_text(a));
        Ok((200, owned_array(items)))
    }

    pub fn create_agent(&mut self, body: Value) -> Answer {
        let body = as_object(body, "agent")?;
        let id = self.new_id();
        let mut obj = build(&id, &body, AGENT_OWNED, AGENT, "agent")?;
        let account = obj
            .get("accountId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !self.accounts.contains_key(&account) {
            return Err(ApiError::bad(format!(
                "agent: account {account} does not exist"
            )));
        }
        let fc = obj
            .get("finalCustomerId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !self.final_customers.contains_key(fc) {
            return Err(ApiError::bad(format!(
                "agent: final customer {fc} does not exist"
            )));
        }
        let ts = now();
        obj.insert("apiToken".into(), Value::from(random_hex(24)));
        obj.insert(
            "publicToken".into(),
            Value::from(format!("pk_{}", random_hex(16))),
        );
        obj.insert("pauseReason".into(), Value::Null);
        obj.insert("createdAt".into(), Value::from(ts.clone()));
        obj.insert("updatedAt".into(), Value::from(ts));
        let rec = AgentRec {
            json: to_text(&obj),
            account_id: account,
            tools: Vec::new(),
            lines: Vec::new(),
        };
        let text = self.agent_text(&rec);
        self.agents.insert(id, rec);
        self.touch();
        Ok((201, text))
    }

    pub fn get_agent(&self, id: &str) -> Answer {
        Ok((200, self.agent_text(self.agent(id)?)))
    }

    /// Top-level keys replace the stored ones (`config` whole); server-owned keys are ignored.
    pub fn put_agent(&mut self, id: &str, body: Value) -> Answer {
        let body = as_object(body, "agent")?;
        check_types(&body, AGENT, "agent")?;
        let rec = self
            .agents
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("agent", id))?;
        let ignored: Vec<&str> = AGENT_OWNED
            .iter()
            .chain(AGENT_CREATE_ONLY)
            .copied()
            .collect();
        let mut obj = merge(&rec.json, &body, &ignored)?;
        obj.insert("updatedAt".into(), Value::from(now()));
        rec.json = to_text(&obj);
        self.touch();
        self.get_agent(id)
    }

    /// Removes the agent with its tools and phone lines.
    pub fn delete_agent(&mut self, id: &str) -> Answer {
        let rec = self
            .agents
            .shift_remove(id)
            .ok_or_else(|| ApiError::not_found("agent", id))?;
        for t in &rec.tools {
            self.tools.remove(t);
        }
        for l in &rec.lines {
            self.lines.remove(l);
        }
        self.touch();
        Ok((204, String::new()))
    }

    /// Replaces the base prompt and the whole tool set; the new tools get new ids.
    pub fn put_brain(&mut self, id: &str, body: Value) -> Answer {
        let body = as_object(body, "brain")?;
        self.agent(id)?;
        let prompt = match body.get("prompt") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(ApiError::bad("brain: field `prompt` must be a string")),
            None => return Err(ApiError::bad("brain: field `prompt` is required")),
        };
        let tools = match body.get("tools") {
            Some(Value::Array(t)) => t,
            Some(_) => return Err(ApiError::bad("brain: field `tools` must be an array")),
            None => return Err(ApiError::bad("brain: field `tools` is required")),
        };
        let mut built = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            let Value::Object(t) = tool else {
                return Err(ApiError::bad(format!(
                    "brain: tools[{i}] must be an object"
                )));
            };
            let tid = self.new_id();
            let obj = build(&tid, t, &["id"], TOOL, &format!("brain: tools[{i}]"))?;
            built.push((tid, obj));
        }
        let old = {
            let rec = self
                .agents
                .get_mut(id)
                .ok_or_else(|| ApiError::not_found("agent", id))?;
            let mut obj = merge(&rec.json, &Map::new(), &[])?;
            obj.insert("basePrompt".into(), Value::from(prompt));
            obj.insert("updatedAt".into(), Value::from(now()));
            rec.json = to_text(&obj);
            std::mem::take(&mut rec.tools)
        };
        for t in old {
            self.tools.remove(&t);
        }
        let mut ids = Vec::with_capacity(built.len());
        for (tid, obj) in built {
            let seq = self.next_seq();
            let sort = obj.get("sortOrder").and_then(Value::as_i64).unwrap_or(0);
            self.tools.insert(
                tid.clone(),
                ToolRec {
                    json: to_text(&obj),
                    sort,
                    seq,
                },
            );
            ids.push(tid);
        }
        if let Some(rec) = self.agents.get_mut(id) {
            rec.tools = ids;
        }
        self.touch();
        let agent = self.agent(id)?;
        let text = splice(&self.agent_text(agent), "tools", &self.tools_text(agent));
        Ok((200, text))
    }

    // ---- tools ----

    fn tools_text(&self, agent: &AgentRec) -> String {
        let mut tools: Vec<&ToolRec> = agent
            .tools
            .iter()
            .filter_map(|t| self.tools.get(t))
            .collect();
        tools.sort_by_key(|t| (t.sort, t.seq));
        array(tools.into_iter().map(|t| t.json.as_str()))
    }

    pub fn list_tools(&self, agent: &str) -> Answer {
        Ok((200, self.tools_text(self.agent(agent)?)))
    }

    /// Duplicate names are accepted, as the real server does.
    pub fn create_tool(&mut self, agent: &str, body: Value) -> Answer {
        self.agent(agent)?;
        let body = as_object(body, "tool")?;
        let id = self.new_id();
        let obj = build(&id, &body, &["id"], TOOL, "tool")?;
        let sort = obj.get("sortOrder").and_then(Value::as_i64).unwrap_or(0);
        let json = to_text(&obj);
        let seq = self.next_seq();
        self.tools.insert(
            id.clone(),
            ToolRec {
                json: json.clone(),
                sort,
                seq,
            },
        );
        if let Some(a) = self.agents.get_mut(agent) {
            a.tools.push(id);
        }
        self.touch();
        Ok((201, json))
    }

    fn owned_tool(&self, agent: &str, tool: &str) -> Result<(), ApiError> {
        if !self.agent(agent)?.tools.iter().any(|t| t == tool) {
            return Err(ApiError::not_found("tool", tool));
        }
        Ok(())
    }

    /// Replaces the tool's fields: what is not sent falls back to its default.
    pub fn put_tool(&mut self, agent: &str, tool: &str, body: Value) -> Answer {
        self.owned_tool(agent, tool)?;
        let body = as_object(body, "tool")?;
        let obj = build(tool, &body, &["id"], TOOL, "tool")?;
        let sort = obj.get("sortOrder").and_then(Value::as_i64).unwrap_or(0);
        let json = to_text(&obj);
        if let Some(t) = self.tools.get_mut(tool) {
            t.json = json.clone();
            t.sort = sort;
        }
        self.touch();
        Ok((200, json))
    }

    pub fn delete_tool(&mut self, agent: &str, tool: &str) -> Answer {
        self.owned_tool(agent, tool)?;
        self.tools.remove(tool);
        if let Some(a) = self.agents.get_mut(agent) {
            a.tools.retain(|t| t != tool);
        }
        self.touch();
        Ok((204, String::new()))
    }

    // ---- phone lines ----

    pub fn list_lines(&self, agent: &str) -> Answer {
        let a = self.agent(agent)?;
        Ok((
            200,
            array(
                a.lines
                    .iter()
                    .filter_map(|l| self.lines.get(l))
                    .map(|l| l.json.as_str()),
            ),
        ))
    }

    fn line_from(obj: &mut Map<String, Value>) -> LineRec {
        let sip_password = obj
            .remove("sipPassword")
            .and_then(|v| v.as_str().map(str::to_string));
        obj.insert("sipRegistered".into(), Value::Bool(false));
        LineRec {
            json: to_text(obj),
            sip_password,
        }
    }

    /// `sipPassword` is stored but never returned.
    pub fn create_line(&mut self, agent: &str, body: Value) -> Answer {
        self.agent(agent)?;
        let body = as_object(body, "phone line")?;
        let id = self.new_id();
        let mut obj = build(
            &id,
            &body,
            &["id", "sipRegistered"],
            PHONE_LINE,
            "phone line",
        )?;
        let rec = Self::line_from(&mut obj);
        let json = rec.json.clone();
        self.lines.insert(id.clone(), rec);
        if let Some(a) = self.agents.get_mut(agent) {
            a.lines.push(id);
        }
        self.touch();
        Ok((201, json))
    }

    fn owned_line(&self, agent: &str, line: &str) -> Result<(), ApiError> {
        if !self.agent(agent)?.lines.iter().any(|l| l == line) {
            return Err(ApiError::not_found("phone line", line));
        }
        Ok(())
    }

    /// Merges top-level keys, like PUT agent; a `sipPassword` sent replaces the stored one.
    pub fn put_line(&mut self, agent: &str, line: &str, body: Value) -> Answer {
        self.owned_line(agent, line)?;
        let body = as_object(body, "phone line")?;
        check_types(&body, PHONE_LINE, "phone line")?;
        let Some(rec) = self.lines.get_mut(line) else {
            return Err(ApiError::not_found("phone line", line));
        };
        let mut obj = merge(&rec.json, &body, LINE_OWNED)?;
        if let Some(p) = body.get("sipPassword") {
            rec.sip_password = p.as_str().map(str::to_string);
        }
        obj.insert("sipRegistered".into(), Value::Bool(false));
        rec.json = to_text(&obj);
        let json = rec.json.clone();
        self.touch();
        Ok((200, json))
    }

    pub fn delete_line(&mut self, agent: &str, line: &str) -> Answer {
        self.owned_line(agent, line)?;
        self.lines.remove(line);
        if let Some(a) = self.agents.get_mut(agent) {
            a.lines.retain(|l| l != line);
        }
        self.touch();
        Ok((204, String::new()))
    }

    // ---- whole state ----

    /// Everything, tokens and SIP passwords included: `GET /__emulator/state` and the
    /// `--data` snapshot use this one format.
    pub fn state_text(&self) -> String {
        let agents = self.agents.values().map(|a| {
            let lines = owned_array(a.lines.iter().filter_map(|l| self.lines.get(l)).map(|l| {
                let pw = serde_json::to_string(&l.sip_password).unwrap_or_else(|_| "null".into());
                splice(&l.json, "sipPassword", &pw)
            }));
            let with_tools = splice(&a.json, "tools", &self.tools_text(a));
            splice(&with_tools, "phoneLines", &lines)
        });
        format!(
            "{{\"accounts\":{},\"finalCustomers\":{},\"agents\":{},\"plans\":{},\"subscriptions\":{}}}",
            array(self.accounts.values().map(|r| r.json.as_str())),
            array(self.final_customers.values().map(|r| r.json.as_str())),
            owned_array(agents),
            array(self.plans.values().map(|r| r.json.as_str())),
            array(self.subscriptions.values().map(|r| r.json.as_str())),
        )
    }

    /// Rebuilds a store from [`Store::state_text`]'s format.
    pub fn load(state: Value) -> Result<Store, String> {
        let mut store = Store::default();
        let Value::Object(mut top) = state else {
            return Err("the snapshot is not a JSON object".into());
        };
        let accounts = take_objects(&mut top, "accounts")?;
        let fcs = take_objects(&mut top, "finalCustomers")?;
        let agents = take_objects(&mut top, "agents")?;
        let plans = take_objects(&mut top, "plans")?;
        let subs = take_objects(&mut top, "subscriptions")?;
        for a in accounts {
            store.accounts.insert(
                str_field(&a, "id"),
                Rec {
                    json: to_text(&a),
                    owner: String::new(),
                },
            );
        }
        for (list, target, owner_key) in [
            (fcs, &mut store.final_customers, "accountId"),
            (plans, &mut store.plans, "accountId"),
            (subs, &mut store.subscriptions, "finalCustomerId"),
        ] {
            for m in list {
                target.insert(
                    str_field(&m, "id"),
                    Rec {
                        owner: str_field(&m, owner_key),
                        json: to_text(&m),
                    },
                );
            }
        }
        for (id, r) in &store.subscriptions {
            store
                .subs_by_fc
                .entry(r.owner.clone())
                .or_default()
                .push(id.clone());
        }
        for a in agents {
            store.load_agent(a);
        }
        Ok(store)
    }

    /// One agent of a snapshot, with its tools and phone lines (entries that are not objects
    /// are left out).
    fn load_agent(&mut self, mut a: Map<String, Value>) {
        let id = str_field(&a, "id");
        let tools = a.remove("tools");
        let lines = a.remove("phoneLines");
        let mut rec = AgentRec {
            account_id: str_field(&a, "accountId"),
            json: to_text(&a),
            tools: Vec::new(),
            lines: Vec::new(),
        };
        for t in objects_in(tools) {
            let tid = str_field(&t, "id");
            self.seq += 1;
            self.tools.insert(
                tid.clone(),
                ToolRec {
                    sort: t.get("sortOrder").and_then(Value::as_i64).unwrap_or(0),
                    seq: self.seq,
                    json: to_text(&t),
                },
            );
            rec.tools.push(tid);
        }
        for mut l in objects_in(lines) {
            let lid = str_field(&l, "id");
            self.lines.insert(lid.clone(), Self::line_from(&mut l));
            rec.lines.push(lid);
        }
        self.agents.insert(id, rec);
    }
}

/// The array of objects at `key` of a snapshot, taken out of it (absent or null: none).
fn take_objects(
    top: &mut Map<String, Value>,
    key: &str,
) -> Result<Vec<Map<String, Value>>, String> {
    match top.remove(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Ok(m),
                _ => Err(format!("`{key}` holds a non-object")),
            })
            .collect(),
        Some(_) => Err(format!("`{key}` is not an array")),
    }
}

/// The objects of an array (anything else in it, or a value that is no array: none).
fn objects_in(v: Option<Value>) -> impl Iterator<Item = Map<String, Value>> {
    let items = match v {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    items.into_iter().filter_map(|t| match t {
        Value::Object(m) => Some(m),
        _ => None,
    })
}

/// A string field of a snapshot's object; empty when absent.
fn str_field(m: &Map<String, Value>, key: &str) -> String {
    m.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn filtered(map: &IndexMap<String, Rec>, owner: Option<&str>) -> String {
    array(
        map.values()
            .filter(|r| owner.is_none_or(|o| r.owner == o))
            .map(|r| r.json.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(answer: Answer) -> String {
        let (_, text) = answer.expect("created");
        let v: Value = serde_json::from_str(&text).expect("json");
        v["id"].as_str().expect("id").to_string()
    }

    fn ids(answer: Answer) -> Vec<String> {
        let (_, text) = answer.expect("listed");
        let v: Vec<Value> = serde_json::from_str(&text).expect("json");
        v.iter()
            .map(|o| o["id"].as_str().expect("id").to_string())
            .collect()
    }

    #[test]
    fn subscriptions_are_listed_per_final_customer_through_deletes_and_a_reload() {
        let mut s = Store::default();
        let acc = id_of(s.create_account(serde_json::json!({"name": "A"})));
        let plan = ids(s.list_plans(Some(&acc))).remove(0);
        let fc = |s: &mut Store, n: &str| {
            id_of(s.create_final_customer(serde_json::json!({"accountId": acc, "name": n})))
        };
        let (a, b) = (fc(&mut s, "a"), fc(&mut s, "b"));
        let sub = |s: &mut Store, f: &str| {
            id_of(s.create_subscription(f, serde_json::json!({"planId": plan})))
        };
        let (a1, b1, a2) = (sub(&mut s, &a), sub(&mut s, &b), sub(&mut s, &a));
        assert_eq!(ids(s.list_subscriptions(&a)), [a1.clone(), a2.clone()]);
        assert_eq!(ids(s.list_subscriptions(&b)), std::slice::from_ref(&b1));
        s.delete_subscription(&a1).expect("deleted");
        assert_eq!(ids(s.list_subscriptions(&a)), std::slice::from_ref(&a2));

        let text = s.state_text();
        let mut s = Store::load(serde_json::from_str(&text).expect("json")).expect("loads");
        assert_eq!(ids(s.list_subscriptions(&a)), [a2]);
        assert_eq!(ids(s.list_subscriptions(&b)), [b1]);
        s.delete_final_customer(&b).expect("deleted");
        assert!(s.list_subscriptions(&b).is_err());
        let c = fc(&mut s, "c");
        assert!(ids(s.list_subscriptions(&c)).is_empty());
    }

    #[test]
    fn splice_appends_a_key() {
        assert_eq!(splice("{\"a\":1}", "b", "[]"), "{\"a\":1,\"b\":[]}");
        assert_eq!(splice("{}", "b", "2"), "{\"b\":2}");
    }

    #[test]
    fn wrong_types_are_refused() {
        let body: Map<String, Value> = serde_json::from_str(r#"{"name": 5}"#).unwrap();
        assert_eq!(check_types(&body, TOOL, "tool").unwrap_err().status, 400);
        let body: Map<String, Value> = serde_json::from_str(r#"{"sortOrder": 1.5}"#).unwrap();
        assert!(check_types(&body, TOOL, "tool").is_err());
        let body: Map<String, Value> =
            serde_json::from_str(r#"{"config": null, "vadThreshold": 0.5}"#).unwrap();
        assert!(check_types(&body, AGENT, "agent").is_ok());
    }
}
