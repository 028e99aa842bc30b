//! Where restaurants come from. Here: a folder of YAML files, one restaurant each. The
//! platform's database is another source (see `table`); both hand over `Sourced<Restaurant>`.

use std::path::Path;

use crate::front::diagnostics::{Diagnostics, Skipped, Sourced};
use crate::front::load::{self, Document};
use crate::front::par::par_map;
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
    // Each file read and parsed on every core (at 10,000 files, a sixth of `validate`).
    let read = par_map(&files, |_, path| read_one(path));
    let mut skipped = Vec::new();
    let mut out = Vec::with_capacity(read.len());
    for r in read {
        match r {
            Ok(one) => out.push(one),
            Err(s) => skipped.push(s),
        }
    }
    Ok((out, skipped))
}

/// One restaurant file, or why it is skipped.
fn read_one(path: &Path) -> Result<(Sourced<Restaurant>, Document), Skipped> {
    let doc = load::read_document(path).map_err(|d| Skipped::new(None, d.origin.clone(), d))?;
    match load::typed::<Restaurant>(&doc, Kind::Restaurant) {
        Ok(r) => {
            // Only the positions are needed from here on (to point at a column).
            let doc = Document {
                value: serde_json::Value::Null,
                ..doc
            };
            Ok((
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
            Err(Skipped::new(id, doc.origin(""), d))
        }
    }
}
