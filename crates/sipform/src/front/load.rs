//! Reading project files: bytes → UTF-8 → YAML with positions → schema → typed value.
//!
//! Each step's failure becomes a [`Diagnostic`] naming `file:line:column` and the field, so a
//! user fixes the file without guessing. Schema errors from every file are collected.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin, Skipped, Sourced};
use crate::front::schema::{self, Kind};
use crate::front::yaml::{self, PositionIndex};
use crate::model::spec::{Project, Restaurant, ToolSpec};

/// The project settings file, at the project's root.
pub const PROJECT_FILE: &str = "sipform.yaml";

/// One parsed YAML file.
#[derive(Debug, Clone)]
pub struct Document {
    pub path: PathBuf,
    pub value: Value,
    pub index: PositionIndex,
}

impl Document {
    /// Where the node at `pointer` (or its nearest written ancestor) is.
    pub fn origin(&self, pointer: &str) -> Origin {
        let (line, column) = self.index.locate(pointer);
        Origin::file(&self.path, line, column)
    }

    /// A diagnostic about the node at `pointer`.
    pub(crate) fn diag(&self, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(
            self.origin(pointer),
            yaml::pointer_to_field(pointer),
            message,
        )
    }
}

/// The largest input file (a restaurant, tool or template file, and every file of the
/// controller's copy): 4 MiB, a thousand times a real one. A bigger file is refused before it
/// is read, so a 1 GB (sparse) file costs nothing.
pub(crate) const INPUT_FILE_MAX: u64 = 4 * 1024 * 1024;

/// Why an input file was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputReadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("{len} bytes or more, over the {max} bytes an input file may have (INPUT_FILE_MAX): refused without reading it")]
    TooLarge { len: u64, max: u64 },
}

/// Reads an input file whole, refusing one over [`INPUT_FILE_MAX`]: its length is checked
/// first, and the read stops one byte past the cap (a file growing meanwhile, or a special
/// file whose length says nothing).
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>, InputReadError> {
    read_capped(path, INPUT_FILE_MAX)
}

/// [`read_input`] with another cap.
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, InputReadError> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > max {
        return Err(InputReadError::TooLarge { len, max });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(InputReadError::TooLarge {
            len: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

/// Reads and parses one file. Non-UTF-8 bytes, syntax errors, duplicate keys and an empty file
/// are diagnostics with the line; a file over [`INPUT_FILE_MAX`] is refused unread.
pub fn read_document(path: &Path) -> Result<Document, Diagnostic> {
    let bytes = read_input(path)
        .map_err(|e| Diagnostic::new(Origin::file(path, 0, 0), "", e.to_string()))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            // Lines end as YAML (and the positions of every other diagnostic) say: `\r\n`,
            // `\n`, or a lone `\r`.
            let is_break = |i: usize| {
                before[i] == b'\n' || (before[i] == b'\r' && before.get(i + 1) != Some(&b'\n'))
            };
            let line = (0..before.len()).filter(|&i| is_break(i)).count() + 1;
            let line_start = (0..before.len())
                .rev()
                .find(|&i| is_break(i))
                .map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&before[line_start..])
                .chars()
                .count()
                + 1;
            return Err(Diagnostic::new(
                Origin::file(path, line, column),
                "",
                format!(
                    "not valid UTF-8 (byte 0x{:02x}); save the file as UTF-8",
                    bytes[e.valid_up_to()]
                ),
            ));
        }
    };
    parse_document(path, text)
}

/// Parses YAML text that claims to come from `path`.
pub fn parse_document(path: &Path, text: &str) -> Result<Document, Diagnostic> {
    let (value, index) = yaml::parse(text).map_err(|e| {
        Diagnostic::new(
            Origin::file(path, e.line, e.column),
            "",
            format!("invalid YAML: {}", e.message),
        )
    })?;
    if value.is_null() {
        return Err(Diagnostic::new(
            Origin::file_start(path),
            "",
            "the file is empty; it must hold a mapping",
        ));
    }
    Ok(Document {
        path: path.to_path_buf(),
        value,
        index,
    })
}

/// Every schema error of `value`, as (JSON pointer, message). An unknown key points at itself;
/// an `anyOf` error (how schemars writes `Option<T>`) is replaced by the errors of the branch
/// the value was meant for, so the message names the real field.
pub(crate) fn schema_errors(
    value: &Value,
    kind: Kind,
) -> Result<Vec<(String, String)>, schema::SchemaError> {
    let validator = schema::validator(kind)?;
    let mut out = Vec::new();
    for err in validator.iter_errors(value) {
        push_error(&err, &mut out);
    }
    Ok(out)
}

fn push_error(err: &jsonschema::ValidationError<'_>, out: &mut Vec<(String, String)>) {
    use jsonschema::error::ValidationErrorKind as K;
    let pointer = err.instance_path().to_string();
    match err.kind() {
        K::AdditionalProperties { unexpected } if !unexpected.is_empty() => {
            for key in unexpected {
                // A password in a file is refused with the way to give it instead.
                let message = if key == "sip_password" {
                    "a literal `sip_password` is refused: put the password in an environment variable and name it with `sip_password_env`".to_string()
                } else {
                    format!("unknown key `{key}`")
                };
                out.push((format!("{pointer}/{}", yaml::escape_token(key)), message));
            }
        }
        K::AnyOf { context } | K::OneOfNotValid { context } => {
            // Skip the branches that fail only on the value's type (e.g. the `null` of an
            // Option): the remaining one says what is wrong inside.
            let meant = context.iter().find(|branch| {
                !branch.iter().all(|e| {
                    matches!(e.kind(), K::Type { .. }) && e.instance_path().to_string() == pointer
                })
            });
            match meant {
                Some(branch) => branch.iter().for_each(|e| push_error(e, out)),
                None => out.push((pointer, err.to_string())),
            }
        }
        _ => out.push((pointer, short_message(err))),
    }
}

/// How long a value quoted in a message may be, in characters.
const QUOTE_MAX: usize = 60;

/// The validator's message, its quoted value shortened: a file that is not YAML at all (a key,
/// a `.env`) is one long string, and a message is printed (and annotated on a PR) whole.
fn short_message(err: &jsonschema::ValidationError<'_>) -> String {
    let shown = err.instance().to_string();
    if shown.chars().count() <= QUOTE_MAX {
        return err.to_string();
    }
    let head: String = shown.chars().take(20).collect();
    err.masked_with(format!("{head}… ({} characters)", shown.chars().count()))
        .to_string()
}

/// Every way a tool's `parameters` breaks the JSON Schema meta-schema (draft 2020-12), as
/// (JSON pointer from the document's root, message). The tool schema fixes only the top level
/// (`type: object`, `properties`, `required`); what is inside `properties` is the model's
/// function-calling schema, and a `type: nubmer` there would otherwise reach the server.
pub(crate) fn parameters_errors(document: &Value) -> Vec<(String, String)> {
    let Some(parameters) = document.get("parameters") else {
        return Vec::new();
    };
    let meta = jsonschema::draft202012::meta::validator();
    let mut found = Vec::new();
    for err in meta.iter_errors(parameters) {
        push_error(&err, &mut found);
    }
    found
        .into_iter()
        .map(|(pointer, message)| {
            (
                format!("/parameters{pointer}"),
                format!("not a valid JSON Schema: {message}"),
            )
        })
        .collect()
}

/// Deserializes a schema-valid value; on error, the (JSON pointer, message) of the field.
pub(crate) fn deserialize<T: DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        (field_to_pointer(&field), e.inner().to_string())
    })
}

/// Checks `doc` against the `kind` schema (every error), then deserializes it.
pub fn typed<T: DeserializeOwned>(doc: &Document, kind: Kind) -> Result<T, Diagnostics> {
    let errors = schema_errors(&doc.value, kind).map_err(|e| {
        Diagnostics::from(Diagnostic::new(
            Origin::file_start(&doc.path),
            "",
            e.to_string(),
        ))
    })?;
    if !errors.is_empty() {
        return Err(Diagnostics(
            errors.iter().map(|(p, m)| doc.diag(p, m.clone())).collect(),
        ));
    }
    // The schema passed; a serde error here means the schema is looser than the type.
    deserialize(&doc.value).map_err(|(p, m)| Diagnostics::from(doc.diag(&p, m)))
}

/// `a.b[0].c` (serde_path_to_error's path) → `/a/b/0/c`.
fn field_to_pointer(field: &str) -> String {
    if field == "." {
        return String::new();
    }
    let mut out = String::new();
    for part in field.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            out.push('/');
            out.push_str(&yaml::escape_token(&rest[..i]));
            rest = &rest[i..];
            for idx in rest.split(['[', ']']).filter(|s| !s.is_empty()) {
                out.push('/');
                out.push_str(idx);
            }
        } else if !rest.is_empty() {
            out.push('/');
            out.push_str(&yaml::escape_token(rest));
        }
    }
    out
}

/// `sipform.yaml` alone.
pub fn load_project_file(root: &Path) -> Result<Project, Diagnostics> {
    let doc = read_document(&root.join(PROJECT_FILE))?;
    typed(&doc, Kind::Project)
}

/// A tool and the document it came from (for positions in later checks).
#[derive(Debug, Clone)]
pub struct LoadedTool {
    pub spec: ToolSpec,
    pub doc: Document,
}

/// A folder's entries, and each refused symbolic link (its path and why).
pub type Listing = (Vec<Entry>, Vec<(PathBuf, Diagnostic)>);

/// One entry of a project folder, as [`folder_entries`] lists it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path under the folder (a symbolic link's own path).
    pub path: PathBuf,
    /// Whether it is (or links to) a folder; otherwise a regular file.
    pub is_dir: bool,
}

/// The project a folder belongs to: the nearest folder above it (or itself) holding
/// `sipform.yaml`; a folder outside any project is its own.
pub(crate) fn project_root_of(dir: &Path) -> PathBuf {
    let found = dir
        .ancestors()
        .find(|a| a.join(PROJECT_FILE).is_file())
        .unwrap_or(dir);
    if found.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        found.to_path_buf()
    }
}

/// Refuses `path` when its real path (every symbolic link followed) leaves `root`: the one
/// rule of every reader of the project's files (validate, plan, apply, the controller's copy).
pub(crate) fn check_inside(root: &Path, path: &Path) -> Result<(), Diagnostic> {
    let refuse = |why: String| Diagnostic::new(Origin::file(path, 0, 0), "", why);
    let real_root = std::fs::canonicalize(root).map_err(|e| refuse(format!("cannot read: {e}")))?;
    let real = std::fs::canonicalize(path).map_err(|e| refuse(format!("cannot read: {e}")))?;
    if real.starts_with(&real_root) {
        Ok(())
    } else {
        Err(refuse(
            "refused: a symbolic link to a file outside the project (only links that stay inside the project are followed)".into(),
        ))
    }
}

/// The files and folders of `dir` sorted by name, every symbolic link followed only when its
/// real path stays inside `root` and refused (naming it) otherwise. Other kinds (sockets,
/// broken links) are left out. Fails when the folder cannot be listed or leaves `root`; each
/// refused link is returned beside the entries.
pub(crate) fn folder_entries(root: &Path, dir: &Path) -> Result<Listing, Diagnostic> {
    let listing = std::fs::read_dir(dir).map_err(|e| {
        Diagnostic::new(
            Origin::file(dir, 0, 0),
            "",
            format!("cannot read folder: {e}"),
        )
    })?;
    check_inside(root, dir)?;
    let mut refused = Vec::new();
    let mut out = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| {
            Diagnostic::new(
                Origin::file(dir, 0, 0),
                "",
                format!("cannot read folder: {e}"),
            )
        })?;
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let is_dir = if kind.is_symlink() {
            if let Err(d) = check_inside(root, &path) {
                refused.push((path, d));
                continue;
            }
            path.is_dir()
        } else {
            kind.is_dir()
        };
        if is_dir || path.is_file() {
            out.push(Entry { path, is_dir });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    refused.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, refused))
}

/// The `*.yaml` / `*.yml` files of a folder, sorted by name (see [`folder_entries`] for
/// symbolic links; a refused one is an error).
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostics> {
    let (files, refused) = yaml_files_and_refused(dir)?;
    if !refused.is_empty() {
        return Err(Diagnostics(refused));
    }
    Ok(files)
}

/// [`yaml_files`], and the refused symbolic links apart.
fn yaml_files_and_refused(dir: &Path) -> Result<(Vec<PathBuf>, Vec<Diagnostic>), Diagnostic> {
    let root = project_root_of(dir);
    let (entries, refused) = folder_entries(&root, dir)?;
    let refused = refused
        .into_iter()
        .filter(|(p, _)| is_yaml_name(Some(p)))
        .map(|(_, d)| d)
        .collect();
    let files = entries
        .into_iter()
        .filter(|e| !e.is_dir && is_yaml_name(Some(&e.path)))
        .map(|e| e.path)
        .collect();
    Ok((files, refused))
}

fn is_yaml_name(path: Option<&Path>) -> bool {
    matches!(
        path.and_then(|p| p.extension()).and_then(|x| x.to_str()),
        Some("yaml") | Some("yml")
    )
}

/// Every tool file of `dir`; all errors of all files at once. An empty folder is an error: an
/// agent with no tools is never what a user meant.
pub fn load_tools(dir: &Path) -> Result<Vec<LoadedTool>, Diagnostics> {
    let files = yaml_files(dir)?;
    if files.is_empty() {
        return Err(Diagnostic::new(
            Origin::file(dir, 0, 0),
            "",
            "no tool files (*.yaml) in this folder",
        )
        .into());
    }
    let mut diags = Diagnostics::default();
    let mut tools = Vec::new();
    for path in files {
        let doc = match read_document(&path) {
            Ok(d) => d,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        match typed::<ToolSpec>(&doc, Kind::Tool) {
            Ok(spec) => {
                for (pointer, message) in parameters_errors(&doc.value) {
                    diags.push(doc.diag(&pointer, message));
                }
                tools.push(LoadedTool { spec, doc });
            }
            Err(d) => diags.extend(d),
        }
    }
    diags.into_result(tools)
}

/// Every restaurant file of `dir`, in file-name order: the valid ones with their document (its
/// positions only), and each invalid file as [`Skipped`] (a file is one restaurant: its errors
/// are its own). Fails only when the folder itself cannot be listed.
pub(crate) fn read_restaurant_files(dir: &Path) -> Result<super::InventoryRead, Diagnostics> {
    let (files, refused) = yaml_files_and_refused(dir)?;
    // Each file read and parsed on every core (at 10,000 files, a sixth of `validate`).
    let read = super::par::par_map(&files, |_, path| read_restaurant(path));
    let mut out = super::InventoryRead::default();
    for r in read {
        match r {
            Ok((restaurant, doc)) => {
                out.restaurants.push(restaurant);
                out.docs.push(doc);
            }
            Err(s) => out.skipped.push(s),
        }
    }
    // A refused link is its file's error, like any invalid file.
    for d in refused {
        out.skipped.push(Skipped::new(None, d.origin.clone(), d));
    }
    Ok(out)
}

/// One restaurant file, or why it is skipped.
fn read_restaurant(path: &Path) -> Result<(Sourced<Restaurant>, Document), Skipped> {
    let doc = read_document(path).map_err(|d| Skipped::new(None, d.origin.clone(), d))?;
    match typed::<Restaurant>(&doc, Kind::Restaurant) {
        Ok(r) => {
            // Only the positions are needed from here on (to point at a column).
            let doc = Document {
                value: Value::Null,
                ..doc
            };
            let origin = doc.origin("");
            Ok((Sourced { value: r, origin }, doc))
        }
        Err(d) => {
            let id = doc
                .value
                .get("id")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            Err(Skipped::new(id, doc.origin(""), d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_paths_become_pointers() {
        assert_eq!(
            field_to_pointer("http.bodyTemplate.x"),
            "/http/bodyTemplate/x"
        );
        assert_eq!(field_to_pointer("items[2].id"), "/items/2/id");
        assert_eq!(field_to_pointer("."), "");
    }

    #[test]
    fn schema_errors_point_at_the_line() {
        let doc = parse_document(
            Path::new("t.yaml"),
            "name: x\ndescription: d\nparameters:\n  type: object\nsortOrder: one\n",
        )
        .unwrap();
        let e = typed::<ToolSpec>(&doc, Kind::Tool).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("t.yaml:5:1: sortOrder:"), "{s}");
    }

    #[test]
    fn unknown_key_points_at_the_key() {
        let doc = parse_document(
            Path::new("t.yaml"),
            "name: x\ndescription: d\nparameters:\n  type: object\n  propertes: {}\nsortOrder: 1\n",
        )
        .unwrap();
        let s = typed::<ToolSpec>(&doc, Kind::Tool).unwrap_err().to_string();
        assert!(
            s.contains("t.yaml:5:3: parameters.propertes: unknown key"),
            "{s}"
        );
    }

    #[test]
    fn optional_section_errors_name_the_inner_field() {
        let doc = parse_document(
            Path::new("t.yaml"),
            "name: x\ndescription: d\nparameters:\n  type: object\nhttp:\n  method: FETCH\n  url: /x\n  timeout: 3\nsortOrder: 1\n",
        )
        .unwrap();
        let s = typed::<ToolSpec>(&doc, Kind::Tool).unwrap_err().to_string();
        assert!(s.contains("t.yaml:6:3: http.method:"), "{s}");
        assert!(s.contains("t.yaml:8:3: http.timeout: unknown key"), "{s}");
        assert!(!s.contains("anyOf"), "{s}");
    }

    #[test]
    fn parameters_must_be_a_json_schema() {
        let doc = parse_document(
            Path::new("t.yaml"),
            "name: x\nparameters:\n  type: object\n  properties:\n    n:\n      type: nubmer\n    m:\n      type: integer\n      minimum: low\nsortOrder: 1\n",
        )
        .unwrap();
        let errors = parameters_errors(&doc.value);
        let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/parameters/properties/n/type",
                "/parameters/properties/m/minimum"
            ],
            "{errors:?}"
        );
        assert!(errors[0].1.contains("nubmer"), "{errors:?}");
        let d = doc.diag(&errors[0].0, errors[0].1.clone()).to_string();
        assert!(
            d.starts_with("t.yaml:6:7: parameters.properties.n.type: not a valid JSON Schema:"),
            "{d}"
        );
        let good = parse_document(
            Path::new("t.yaml"),
            "parameters:\n  type: object\n  properties:\n    n: {type: [number, \"null\"], enum: [1, null]}\n",
        )
        .unwrap();
        assert_eq!(parameters_errors(&good.value), Vec::new());
    }

    #[test]
    fn non_utf8_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.yaml");
        std::fs::write(&p, b"a: 1\nb: \xff\n").unwrap();
        let d = read_document(&p).unwrap_err();
        assert_eq!(d.origin, Origin::file(&p, 2, 4));
        // A lone CR ends a line for YAML, so it does here too (found by tests/fuzz_yaml.rs).
        std::fs::write(&p, b"a: 1\rb: 2\r\nc: \xff\n").unwrap();
        let d = read_document(&p).unwrap_err();
        assert_eq!(d.origin, Origin::file(&p, 3, 4));
    }
}
