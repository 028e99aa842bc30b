//! Diagnostics as GitHub Actions workflow commands (`::error file=…,line=…,col=…::message`),
//! so a failed `validate` in CI marks the offending line in the pull request's diff.

use std::fmt::Write as _;
use std::path::Path;

use crate::front::diagnostics::{Diagnostics, Origin};

/// One `::error` line per diagnostic. A relative file path is taken from `root` (the project
/// folder, absolute), then made relative to `base` (the repository root, `GITHUB_WORKSPACE`),
/// since GitHub matches annotations to the diff by that path; a database row has no file and
/// becomes an annotation without one.
pub fn github_annotations(diags: &Diagnostics, root: &Path, base: &Path) -> String {
    let mut out = String::new();
    for d in diags.iter() {
        let message = if d.field.is_empty() {
            d.message.clone()
        } else {
            format!("{}: {}", d.field, d.message)
        };
        match &d.origin {
            Origin::File { path, line, column } => {
                let full: std::path::PathBuf = root
                    .join(path)
                    .components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .collect();
                let shown = full.strip_prefix(base).unwrap_or(&full);
                let mut props = format!("file={}", property(&shown.to_string_lossy()));
                if *line > 0 {
                    let _ = write!(props, ",line={line}");
                    if *column > 0 {
                        let _ = write!(props, ",col={column}");
                    }
                }
                let _ = writeln!(out, "::error {props}::{}", data(&message));
            }
            Origin::Row { .. } => {
                let _ = writeln!(
                    out,
                    "::error::{}",
                    data(&format!("{}: {message}", d.origin))
                );
            }
        }
    }
    out
}

/// A workflow command's message: `%`, CR and LF escaped, so a value cannot end the command or
/// start another.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: as [`data`], plus `:` and `,`, which end a property.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::front::diagnostics::Diagnostic;

    #[test]
    fn a_file_diagnostic_becomes_an_error_on_its_line() {
        let mut diags = Diagnostics::default();
        diags.push(Diagnostic {
            origin: Origin::File {
                path: PathBuf::from("./tools/end_call.yaml"),
                line: 4,
                column: 3,
            },
            field: "description".into(),
            message: "must not be empty\n::warning::injected 100%".into(),
        });
        assert_eq!(
            github_annotations(&diags, Path::new("/repo/config"), Path::new("/repo")),
            "::error file=config/tools/end_call.yaml,line=4,col=3::description: must not be empty%0A::warning::injected 100%25\n"
        );
    }
}
