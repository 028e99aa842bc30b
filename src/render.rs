//! SHIM (replaced by the foundation branch).
use crate::spec::Project;

pub struct RenderEnv {
    pub app_url: String,
}

impl RenderEnv {
    pub fn from_env(project: &Project) -> Self {
        RenderEnv {
            app_url: project.app.url.clone(),
        }
    }
}
