//! `test`: tool tests as files. Each `tool-tests/*.yaml` names a tool and lists cases: a
//! restaurant, the model's arguments and the call's context, and the request expected
//! (method, URL, body fields). Offline by default; with a platform URL, each case with a
//! `live` part is sent there and its status and response fields compared.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::Settings;
use crate::contract::request;
use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin};
use crate::front::load::{self, Document};

use super::call::{self, CallError, Calls};

/// The folder `sipform test` reads by default, relative to the project.
pub(crate) const DEFAULT_DIR: &str = "tool-tests";

pub(crate) use crate::model::spec::{Expect, Live, ToolTestCase, ToolTestFile};

/// What `test` was asked.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// The folder of cases (relative to the project); `tool-tests` by default.
    pub dir: Option<PathBuf>,
    /// Send the cases with a `live` part to this platform base URL.
    pub platform: Option<String>,
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    pub file: PathBuf,
    pub line: usize,
    pub tool: String,
    pub name: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
    /// Whether the live part ran.
    pub live: bool,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Every case's result, in file and case order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TestReport {
    pub cases: Vec<CaseResult>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// The failures as diagnostics at each case's line (for annotations).
    pub fn diagnostics(&self) -> Diagnostics {
        let mut out = Diagnostics::default();
        for c in self.cases.iter().filter(|c| !c.passed()) {
            out.push(Diagnostic::new(
                Origin::file(&c.file, c.line, 1),
                "",
                format!("{} / {}: {}", c.tool, c.name, c.failures.join("; ")),
            ));
        }
        out
    }
}

fn validator() -> Result<&'static jsonschema::Validator, String> {
    static V: OnceLock<Result<jsonschema::Validator, String>> = OnceLock::new();
    V.get_or_init(|| {
        let schema = schemars::schema_for!(ToolTestFile);
        jsonschema::validator_for(schema.as_value()).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Reads one case file: schema errors name their line.
pub fn read_file(path: &Path) -> Result<(ToolTestFile, Document), Diagnostics> {
    let doc = load::read_document(path).map_err(Diagnostics::from)?;
    let v = validator().map_err(|m| {
        Diagnostics::from(Diagnostic::new(
            Origin::file_start(path),
            "",
            format!("the tool-test schema does not compile: {m}"),
        ))
    })?;
    let mut diags = Diagnostics::default();
    for e in v.iter_errors(&doc.value) {
        let pointer = e.instance_path().to_string();
        match e.kind() {
            // An unknown key points at itself, not at the object holding it.
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                for key in unexpected {
                    let at = format!("{pointer}/{}", crate::front::yaml::escape_token(key));
                    diags.push(doc.diag(&at, format!("unknown key `{key}`")));
                }
            }
            _ => diags.push(doc.diag(&pointer, e.to_string())),
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    match serde_json::from_value::<ToolTestFile>(doc.value.clone()) {
        Ok(f) => Ok((f, doc)),
        Err(e) => Err(Diagnostic::new(Origin::file_start(path), "", e.to_string()).into()),
    }
}

/// Why `test` could not run its cases (a failing case is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{0}")]
    Invalid(Diagnostics),
}

pub async fn run(settings: &Settings, opts: &TestOptions) -> Result<TestReport, TestError> {
    let dir = settings
        .root
        .join(opts.dir.as_deref().unwrap_or(Path::new(DEFAULT_DIR)));
    let files = load::yaml_files(&dir).map_err(TestError::Invalid)?;
    let mut read = Vec::new();
    let mut diags = Diagnostics::default();
    for f in &files {
        match read_file(f) {
            Ok(x) => read.push(x),
            Err(d) => diags.extend(d),
        }
    }
    if !diags.is_empty() {
        return Err(TestError::Invalid(diags));
    }
    let calls = Calls::load(settings).await?;
    let mut report = TestReport::default();
    for (file, doc) in &read {
        for (i, case) in file.cases.iter().enumerate() {
            let line = match doc.origin(&format!("/cases/{i}")) {
                Origin::File { line, .. } => line,
                _ => 0,
            };
            let mut result = CaseResult {
                file: doc.path.clone(),
                line,
                tool: file.tool.clone(),
                name: case.name.clone(),
                failures: Vec::new(),
                live: false,
            };
            run_case(&calls, &file.tool, case, opts, &mut result).await;
            report.cases.push(result);
        }
    }
    Ok(report)
}

async fn run_case(
    calls: &Calls,
    tool: &str,
    case: &ToolTestCase,
    opts: &TestOptions,
    result: &mut CaseResult,
) {
    let fail = &mut result.failures;
    let tool = match calls.tool(tool) {
        Ok(t) => t,
        Err(e) => return fail.push(e.to_string()),
    };
    for k in case.params.keys() {
        if !tool.spec.parameters.properties.contains_key(k) {
            fail.push(format!("the tool has no parameter `{k}`"));
        }
    }
    let ai: Map<String, Value> = case.params.clone().into_iter().collect();
    let ctx: Map<String, Value> = case.ctx.clone().into_iter().collect();
    let scope = match calls.scope(&case.restaurant, None, ai.clone(), ctx.clone()) {
        Ok(s) => s,
        Err(e) => return fail.push(e.to_string()),
    };
    let Some(expect) = &case.expect else {
        if let Some(http) = &tool.spec.http {
            fail.push(format!(
                "the tool makes a request ({:?} {}): say which in `expect`",
                http.method, http.url
            ));
        }
        return;
    };
    let req = match request::build(&tool.spec, &scope) {
        Ok(r) => r,
        Err(e) => return fail.push(e.to_string()),
    };
    compare_expected(&req, expect, fail);
    let (Some(live), Some(platform)) = (&case.live, &opts.platform) else {
        return;
    };
    result.live = true;
    run_live(
        calls,
        &tool.spec,
        &case.restaurant,
        live,
        platform,
        (ai, ctx),
        result,
    )
    .await;
}

/// The request built matches what the case expects.
fn compare_expected(req: &request::Request, expect: &Expect, fail: &mut Vec<String>) {
    let method = format!("{:?}", expect.method).to_ascii_uppercase();
    if req.method != method {
        fail.push(format!("method: expected {method}, got {}", req.method));
    }
    if req.url != expect.url {
        fail.push(format!("url: expected {}, got {}", expect.url, req.url));
    }
    for (k, want) in expect.body.iter().flatten() {
        match req.body.as_ref().and_then(|b| b.get(k)) {
            None => fail.push(format!("body.{k}: expected {want}, not sent")),
            Some(got) if got != want => fail.push(format!("body.{k}: expected {want}, got {got}")),
            Some(_) => {}
        }
    }
}

/// The case's live part: sent to the platform, its answer compared.
async fn run_live(
    calls: &Calls,
    spec: &crate::model::spec::ToolSpec,
    restaurant: &str,
    live: &Live,
    platform: &str,
    (ai, ctx): (Map<String, Value>, Map<String, Value>),
    result: &mut CaseResult,
) {
    let fail = &mut result.failures;
    let scope = match calls.scope(restaurant, Some(platform), ai, ctx) {
        Ok(s) => s,
        Err(e) => return fail.push(e.to_string()),
    };
    let req = match request::build(spec, &scope) {
        Ok(r) => r,
        Err(e) => return fail.push(e.to_string()),
    };
    let answer = match call::send(&req, std::time::Duration::from_secs(30)).await {
        Ok(a) => a,
        Err(e) => return fail.push(e.to_string()),
    };
    if let Some(status) = live.status {
        if answer.status != status {
            fail.push(format!("status: expected {status}, got {}", answer.status));
        }
    }
    for (k, want) in live.response.iter().flatten() {
        match answer.body.get(k) {
            None => fail.push(format!("response.{k}: expected {want}, absent")),
            Some(got) if got != want => {
                fail.push(format!("response.{k}: expected {want}, got {got}"))
            }
            Some(_) => {}
        }
    }
}
