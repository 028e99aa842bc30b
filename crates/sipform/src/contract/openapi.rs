//! Reading the platform's OpenAPI 3 document into what the checks need: per route and method,
//! the query parameters, the request body's keys and the fields of the successful answers.
//! Each operation keeps its place in the document, so a finding names `file:line` and the
//! OpenAPI path (`POST /api/reservations`).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin};
use crate::front::load::{self, Document};
use crate::front::yaml::escape_token;

/// `$ref`s followed at most this deep (a cycle stops here and reads as "anything").
const MAX_REF_DEPTH: usize = 16;

/// The methods an OpenAPI path item may hold, in the document's spelling.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The platform's API as the document describes it.
#[derive(Debug, Clone)]
pub struct Api {
    pub doc: Document,
    /// `info.version`: the revision described (shown in findings).
    pub revision: String,
    pub routes: Vec<RouteDef>,
}

/// One path of the document.
#[derive(Debug, Clone)]
pub struct RouteDef {
    /// As written (`/api/reservations/{id}`).
    pub path: String,
    /// Its JSON pointer in the document.
    pub pointer: String,
    /// By method, upper case.
    pub operations: BTreeMap<String, Operation>,
}

/// One method of a path.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: String,
    pub pointer: String,
    pub query: Vec<QueryParam>,
    /// `None`: the route reads no body.
    pub body: Option<Shape>,
    /// The union of the 2xx answers' bodies.
    pub response: Shape,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryParam {
    pub name: String,
    pub required: bool,
}

/// What a body may hold, as far as the checks care.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Not described (or a scalar): any field read below it is taken as present.
    Any,
    /// An object: its known keys (with their shapes) and the required ones; `open` when other
    /// keys are accepted too (`additionalProperties`).
    Object {
        properties: BTreeMap<String, Shape>,
        required: Vec<String>,
        open: bool,
    },
    Array(Box<Shape>),
    /// One of several shapes (`oneOf`/`anyOf`, or several 2xx answers).
    OneOf(Vec<Shape>),
    /// No body at all (an answer without content).
    Nothing,
}

impl Shape {
    /// Whether `path` (dotted segments below the root) can be read from this shape.
    pub fn has(&self, path: &[String]) -> bool {
        let Some((first, rest)) = path.split_first() else {
            return !matches!(self, Shape::Nothing);
        };
        match self {
            Shape::Any => true,
            Shape::Nothing => false,
            Shape::Object {
                properties, open, ..
            } => match properties.get(first) {
                Some(s) => s.has(rest),
                None => *open,
            },
            Shape::Array(item) => first.parse::<usize>().is_ok() && item.has(rest),
            Shape::OneOf(all) => all.iter().any(|s| s.has(path)),
        }
    }

    /// The keys an object shape knows (every branch's, for `OneOf`).
    pub fn keys(&self) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Shape::Object { properties, .. } => properties.keys().cloned().collect(),
            Shape::OneOf(all) => all.iter().flat_map(Shape::keys).collect(),
            _ => Vec::new(),
        };
        out.sort();
        out.dedup();
        out
    }
}

impl Api {
    /// Reads and parses the document at `path`. Every problem found is a diagnostic naming its
    /// line.
    pub fn load(path: &Path) -> Result<Api, Diagnostics> {
        let doc = load::read_document(path).map_err(Diagnostics::from)?;
        Api::from_document(doc)
    }

    pub(crate) fn from_document(doc: Document) -> Result<Api, Diagnostics> {
        let mut diags = Diagnostics::default();
        let version = doc.value.get("openapi").and_then(Value::as_str);
        if !version.is_some_and(|v| v.starts_with("3.")) {
            diags.push(doc.diag(
                "/openapi",
                "not an OpenAPI 3 document (`openapi: 3.x` expected)",
            ));
        }
        let revision = doc
            .value
            .pointer("/info/version")
            .and_then(Value::as_str)
            .unwrap_or("unknown revision")
            .to_string();
        let mut routes = Vec::new();
        match doc.value.get("paths") {
            Some(Value::Object(paths)) => {
                for (path, item) in paths {
                    let pointer = format!("/paths/{}", escape_token(path));
                    if !path.starts_with('/') {
                        diags.push(doc.diag(&pointer, "a path must start with `/`"));
                        continue;
                    }
                    let mut operations = BTreeMap::new();
                    let shared = params_of(&doc.value, item.get("parameters"));
                    for m in METHODS {
                        let Some(op) = item.get(*m) else { continue };
                        let op_pointer = format!("{pointer}/{m}");
                        let mut query = shared.clone();
                        for p in params_of(&doc.value, op.get("parameters")) {
                            query.retain(|q| q.name != p.name);
                            query.push(p);
                        }
                        let body = op
                            .get("requestBody")
                            .map(|b| resolve(&doc.value, b, 0))
                            .and_then(|b| json_schema(b))
                            .map(|s| shape(&doc.value, s, 0));
                        operations.insert(
                            m.to_ascii_uppercase(),
                            Operation {
                                method: m.to_ascii_uppercase(),
                                pointer: op_pointer,
                                query,
                                body,
                                response: success_shape(&doc.value, op.get("responses")),
                            },
                        );
                    }
                    routes.push(RouteDef {
                        path: path.clone(),
                        pointer,
                        operations,
                    });
                }
            }
            _ => diags.push(doc.diag("/paths", "no `paths` object")),
        }
        diags.into_result(Api {
            doc,
            revision,
            routes,
        })
    }

    /// The route a concrete path (`/api/reservations/lookup`) falls on: an exact path first,
    /// else a templated one (`/api/x/{id}` takes any one segment).
    pub fn route(&self, path: &str) -> Option<&RouteDef> {
        let path = path.trim_end_matches('/');
        self.routes
            .iter()
            .find(|r| r.path.trim_end_matches('/') == path)
            .or_else(|| self.routes.iter().find(|r| templated_match(&r.path, path)))
    }

    /// Where `pointer` is in the document.
    pub fn origin(&self, pointer: &str) -> Origin {
        self.doc.origin(pointer)
    }

    /// `docs/platform.openapi.yaml:123 POST /api/reservations`: what a finding names.
    pub fn place(&self, route: &RouteDef, method: Option<&str>) -> String {
        let (pointer, label) = match method.and_then(|m| route.operations.get(m)) {
            Some(op) => (op.pointer.as_str(), format!("{} {}", op.method, route.path)),
            None => (route.pointer.as_str(), route.path.clone()),
        };
        match self.origin(pointer) {
            Origin::File { path, line, .. } => format!("{}:{line} {label}", path.display()),
            o => format!("{o} {label}"),
        }
    }

    /// A diagnostic about the document itself.
    pub fn diag(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        self.doc.diag(pointer, message)
    }
}

fn templated_match(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

/// Follows a `$ref` to `#/…` (another file is not followed: taken as not described).
fn resolve<'a>(root: &'a Value, v: &'a Value, depth: usize) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) if depth < MAX_REF_DEPTH => match r.strip_prefix('#') {
            Some(pointer) => match root.pointer(pointer) {
                Some(target) => resolve(root, target, depth + 1),
                None => &Value::Null,
            },
            None => &Value::Null,
        },
        _ => v,
    }
}

/// The JSON schema of a request body or response: `content.application/json.schema` (or the
/// first content type's).
fn json_schema(v: &Value) -> Option<&Value> {
    let content = v.get("content")?.as_object()?;
    content
        .get("application/json")
        .or_else(|| content.values().next())?
        .get("schema")
}

fn params_of(root: &Value, list: Option<&Value>) -> Vec<QueryParam> {
    let Some(Value::Array(list)) = list else {
        return Vec::new();
    };
    list.iter()
        .map(|p| resolve(root, p, 0))
        .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
        .filter_map(|p| {
            Some(QueryParam {
                name: p.get("name")?.as_str()?.to_string(),
                required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect()
}

fn success_shape(root: &Value, responses: Option<&Value>) -> Shape {
    let Some(Value::Object(responses)) = responses else {
        return Shape::Any;
    };
    let mut shapes: Vec<Shape> = responses
        .iter()
        .filter(|(status, _)| status.starts_with('2') || status.as_str() == "default")
        .map(|(_, r)| {
            let r = resolve(root, r, 0);
            match json_schema(r) {
                Some(s) => shape(root, s, 0),
                None => Shape::Nothing,
            }
        })
        .collect();
    match shapes.len() {
        0 => Shape::Nothing,
        1 => shapes.remove(0),
        _ => Shape::OneOf(shapes),
    }
}

fn shape(root: &Value, schema: &Value, depth: usize) -> Shape {
    if depth > MAX_REF_DEPTH {
        return Shape::Any;
    }
    let s = resolve(root, schema, depth);
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(all)) = s.get(key) {
            return Shape::OneOf(all.iter().map(|x| shape(root, x, depth + 1)).collect());
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        let mut properties = BTreeMap::new();
        let mut required = Vec::new();
        let mut open = true;
        for part in all {
            match shape(root, part, depth + 1) {
                Shape::Object {
                    properties: p,
                    required: r,
                    open: o,
                } => {
                    properties.extend(p);
                    required.extend(r);
                    open &= o;
                }
                _ => return Shape::Any,
            }
        }
        return Shape::Object {
            properties,
            required,
            open,
        };
    }
    let ty = s.get("type").and_then(Value::as_str);
    match ty {
        Some("array") => Shape::Array(Box::new(
            s.get("items")
                .map_or(Shape::Any, |i| shape(root, i, depth + 1)),
        )),
        Some("object") | None if s.get("properties").is_some() => {
            let properties = s
                .get("properties")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), shape(root, v, depth + 1)))
                        .collect()
                })
                .unwrap_or_default();
            let required = s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            // OpenAPI's default for additionalProperties is true; a document that lists the
            // keys a handler reads says `false` to make unknown keys findings.
            let open = !matches!(s.get("additionalProperties"), Some(Value::Bool(false)));
            Shape::Object {
                properties,
                required,
                open,
            }
        }
        _ => Shape::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(text: &str) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("api.yaml");
        std::fs::write(&p, text).unwrap();
        Api::load(&p).unwrap()
    }

    #[test]
    fn reads_routes_params_bodies_and_answers() {
        let a = api(r#"
openapi: 3.0.3
info: {title: t, version: v2}
components:
  schemas:
    Answer: {type: object, properties: {id: {type: string}, nested: {type: object, properties: {x: {type: integer}}, additionalProperties: false}}, additionalProperties: false}
paths:
  /api/x:
    get:
      parameters: [{name: phone, in: query, required: true}]
      responses: {'200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Answer'}}}}}
    post:
      requestBody: {content: {application/json: {schema: {type: object, properties: {a: {type: string}}, required: [a], additionalProperties: false}}}}
      responses: {'201': {description: ok}}
  /api/y/{id}:
    delete: {responses: {'204': {description: gone}}}
"#);
        assert_eq!(a.revision, "v2");
        let r = a.route("/api/x").unwrap();
        let get = &r.operations["GET"];
        assert_eq!(
            get.query,
            vec![QueryParam {
                name: "phone".into(),
                required: true
            }]
        );
        assert!(get.body.is_none());
        assert!(get.response.has(&["id".into()]));
        assert!(get.response.has(&["nested".into(), "x".into()]));
        assert!(!get.response.has(&["nested".into(), "y".into()]));
        assert!(!get.response.has(&["apiCosts".into()]));
        let post = &r.operations["POST"];
        assert_eq!(post.body.as_ref().unwrap().keys(), vec!["a".to_string()]);
        assert!(!post.response.has(&["id".into()]));
        assert!(a.route("/api/y/123").is_some());
        assert!(a.route("/api/z").is_none());
        assert!(a.place(r, Some("GET")).ends_with(" GET /api/x"));
    }
}
