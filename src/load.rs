//! SHIM (replaced by the foundation branch).
use std::path::Path;

use crate::diagnostics::Diagnostics;
use crate::spec::Project;

pub fn load_project_file(_root: &Path) -> Result<Project, Diagnostics> {
    Err(Diagnostics::default())
}
