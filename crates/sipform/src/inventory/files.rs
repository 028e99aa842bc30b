//! Where restaurants come from. Here: a folder of YAML files, one restaurant each. The
//! platform's database is another source (see `table`); both hand over `Sourced<Restaurant>`.

use std::path::Path;

use crate::front::diagnostics::{Diagnostics, Skipped, Sourced};
use crate::front::load::{self, Document};
use crate::front::schema::Kind;
use crate::model::spec::Restaurant;

/// Every restaurant file of `dir`, in file-name order, with its document; all errors at once.
pub fn from_files(dir: &Path) -> Result<Vec<(Sourced<Restaurant>, Document)>, Diagnostics> {
    let (ok, skipped) = read_files(dir)?;
    let mut diags = Diagnostics::default();
    for s in skipped {
        diags.extend(s.diagnostics);
    }
    diags.into_result(ok)
}

/// Every restaurant file of `dir`, in file-name order: the valid ones with their document, and
/// each invalid file as [`Skipped`] (a file is one restaurant: its errors are its own). Fails
/// only when the folder itself cannot be listed.
#[allow(clippy::type_complexity)]
pub fn read_files(
    dir: &Path,
) -> Result<(Vec<(Sourced<Restaurant>, Document)>, Vec<Skipped>), Diagnostics> {
    let files = load::yaml_files(dir)?;
    let mut skipped = Vec::new();
    let mut out = Vec::new();
    for path in files {
        let doc = match load::read_document(&path) {
            Ok(d) => d,
            Err(d) => {
                skipped.push(Skipped::new(None, d.origin.clone(), d));
                continue;
            }
        };
        match load::typed::<Restaurant>(&doc, Kind::Restaurant) {
            Ok(r) => {
                // Only the positions are needed from here on (to point at a column).
                let doc = Document {
                    value: serde_json::Value::Null,
                    ..doc
                };
                out.push((
                    Sourced {
                        value: r,
                        origin: doc.origin(""),
                    },
                    doc,
                ))
            }
            Err(d) => {
                let id = doc
                    .value
                    .get("id")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                skipped.push(Skipped::new(id, doc.origin(""), d));
            }
        }
    }
    Ok((out, skipped))
}
