//! SHIM (replaced by the foundation branch).
use std::path::Path;

use crate::diagnostics::Diagnostics;
use crate::render::RenderEnv;
use crate::spec::{Desired, Project};

pub struct Validated {
    pub project: Project,
    pub desired: Desired,
}

pub fn desired(_root: &Path, _env: &RenderEnv) -> Result<Validated, Diagnostics> {
    Err(Diagnostics::default())
}
