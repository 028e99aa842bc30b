//! Where restaurants come from. Here: a folder of YAML files, one restaurant each. The
//! platform's database is another source (see `table`); both hand over `Sourced<Restaurant>`.

use std::path::Path;

use crate::front::diagnostics::{Diagnostics, Sourced};
use crate::front::load::{self, Document};
use crate::front::schema::Kind;
use crate::model::spec::Restaurant;

/// Every restaurant file of `dir`, in file-name order, with its document; all errors at once.
pub fn from_files(dir: &Path) -> Result<Vec<(Sourced<Restaurant>, Document)>, Diagnostics> {
    let files = load::yaml_files(dir)?;
    let mut diags = Diagnostics::default();
    let mut out = Vec::new();
    for path in files {
        let doc = match load::read_document(&path) {
            Ok(d) => d,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        match load::typed::<Restaurant>(&doc, Kind::Restaurant) {
            Ok(r) => out.push((
                Sourced {
                    value: r,
                    origin: doc.origin(""),
                },
                doc,
            )),
            Err(d) => diags.extend(d),
        }
    }
    diags.into_result(out)
}
