//! The configuration a running controller uses: settings, tools and template, loaded at start
//! and on reload (SIGHUP, `POST /v1/reload`), never behind its back.
//!
//! The tool files and the template's folder are copied to a private temporary folder when
//! loaded, and the settings point there: editing a file under the project changes nothing
//! until a reload, and a reload that does not validate is refused while the copy in use keeps
//! running.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{Overrides, Settings};
use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin};
use crate::front::{load, validate};
use crate::inventory::InventoryRead;
use crate::ops::OpsError;

/// One loaded, validated configuration.
pub struct Config {
    pub settings: Settings,
    /// Digest of the tool files, the template folder and the settings that shape a restaurant:
    /// a reload that changes it queues every restaurant.
    pub digest: String,
    _copy: tempfile::TempDir,
}

impl Config {
    /// Loads `root`'s settings with `overrides`, copies the tools and the template's folder,
    /// and validates them (tools, template, settings) with no restaurant.
    pub fn load(root: &Path, overrides: &Overrides) -> Result<Config, OpsError> {
        let mut settings = Settings::load(root, overrides)?;
        // First against the project's own files, so every message names them.
        validate::check_inventory(
            root,
            settings.project(),
            &settings.render_env(),
            Some(InventoryRead::default()),
        )?;
        let copy = tempfile::Builder::new()
            .prefix("sipform-controller-")
            .tempdir()
            .map_err(|e| {
                io_error(
                    "create a folder for the configuration",
                    Path::new("/tmp"),
                    e,
                )
            })?;
        let tools_from = root.join(&settings.tools_dir);
        let tools_to = copy.path().join("tools");
        let mut hasher = Sha256::new();
        copy_dir(root, &tools_from, &tools_to, &mut hasher, 0)?;
        let template_from = root.join(&settings.template);
        let template_dir = template_from.parent().unwrap_or(root).to_path_buf();
        let template_name = template_from
            .file_name()
            .map(PathBuf::from)
            .ok_or_else(|| invalid(root, "template", "the template path names no file"))?;
        let templates_to = copy.path().join("templates");
        copy_dir(root, &template_dir, &templates_to, &mut hasher, 0)?;
        settings.tools_dir = tools_to;
        settings.template = templates_to.join(template_name);
        hasher.update(format!("{:?}", settings.project_shape()).as_bytes());
        let env = settings.render_env();
        validate::check_inventory(
            &settings.root,
            settings.project(),
            &env,
            Some(InventoryRead::default()),
        )?;
        Ok(Config {
            settings,
            digest: format!("{:x}", hasher.finalize()),
            _copy: copy,
        })
    }

    /// Whether `next` may replace this one in a running controller: the inventory and state
    /// backend are opened once, so changing them needs a restart.
    pub fn check_replaceable(&self, next: &Config) -> Result<(), String> {
        if self.settings.inventory != next.settings.inventory {
            return Err("`inventory` changed: restart the controller to read another table".into());
        }
        if self.settings.state != next.settings.state {
            return Err("`state` changed: restart the controller to use another backend".into());
        }
        Ok(())
    }
}

trait ProjectShape {
    fn project_shape(&self) -> String;
}

impl ProjectShape for Settings {
    /// What in the settings shapes the desired objects (not the URL, key or timeouts).
    fn project_shape(&self) -> String {
        format!(
            "{:?}|{:?}|{}|{:?}|{:?}",
            self.account, self.billing, self.app_url, self.phone_lines, self.project
        )
    }
}

/// Copies `from` (a folder of the project at `root`) to `to`, listed as every other reader
/// lists the project's folders ([`load::folder_entries`]): a symbolic link is copied as what
/// it names when that stays inside the project, and refused otherwise. Never skipped: a
/// copy missing a tool the files have would delete it from every agent.
fn copy_dir(
    root: &Path,
    from: &Path,
    to: &Path,
    hasher: &mut Sha256,
    depth: usize,
) -> Result<(), OpsError> {
    // A link to a folder above itself would be copied forever.
    if depth > 8 {
        return Err(invalid(
            from,
            "",
            "folders nested more than 8 deep (a symbolic link to a folder above itself?)",
        ));
    }
    std::fs::create_dir_all(to).map_err(|e| io_error("create", to, e))?;
    let (entries, refused) =
        load::folder_entries(root, from).map_err(|d| OpsError::Invalid(Diagnostics::from(d)))?;
    if !refused.is_empty() {
        return Err(OpsError::Invalid(Diagnostics(
            refused.into_iter().map(|(_, d)| d).collect(),
        )));
    }
    for entry in entries {
        let Some(name) = entry.path.file_name() else {
            continue;
        };
        let target = to.join(name);
        if entry.is_dir {
            copy_dir(root, &entry.path, &target, hasher, depth + 1)?;
        } else {
            let bytes = crate::front::load::read_input(&entry.path).map_err(|e| match e {
                crate::front::load::InputReadError::Io(e) => io_error("read", &entry.path, e),
                too_large => io_error("read", &entry.path, std::io::Error::other(too_large)),
            })?;
            hasher.update(name.as_encoded_bytes());
            hasher.update(&bytes);
            std::fs::write(&target, &bytes).map_err(|e| io_error("write", &target, e))?;
        }
    }
    Ok(())
}

fn io_error(what: &'static str, path: &Path, source: std::io::Error) -> OpsError {
    OpsError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

fn invalid(root: &Path, field: &str, message: &str) -> OpsError {
    let at = if root.is_dir() && root.join("sipform.yaml").is_file() {
        root.join("sipform.yaml")
    } else {
        root.to_path_buf()
    };
    OpsError::Invalid(Diagnostics::from(Diagnostic::new(
        Origin::file_start(at),
        field,
        message,
    )))
}
