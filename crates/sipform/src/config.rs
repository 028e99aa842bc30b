//! Effective settings: `sipform.yaml`, overridden by the environment, overridden by flags.
//!
//! A run reads `sipform.yaml` once, with one parser (the front end's, so a mistake names its
//! `file:line:column`), and resolves it with the environment and an explicit [`Overrides`] into
//! one [`Settings`]. Every later stage reads that value; nothing re-reads the file or the
//! environment, and no command edits settings after the fact.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin};
use crate::front::load::{self, PROJECT_FILE};
use crate::front::render::RenderEnv;
use crate::model::clock::Clock;
use crate::model::secret::Secret;
use crate::model::spec::{
    AccountSpec, AppConfig, ControllerConfig, InventoryConfig, Project, ServerConfig, StateConfig,
    Windows, WindowsConfig,
};

/// Requests in flight at once, across restaurants, unless a flag says otherwise: found while
/// running (see `remote::limiter`), up to 64.
pub const DEFAULT_PARALLELISM: Parallelism = Parallelism::Auto {
    max: DEFAULT_MAX_PARALLELISM,
};

/// `--max-parallelism`'s default: the most requests `auto` keeps in flight.
pub const DEFAULT_MAX_PARALLELISM: usize = 64;

/// How many requests a run keeps in flight (`--parallelism auto|N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallelism {
    /// Found while running (`remote::limiter`), up to `max`.
    Auto { max: usize },
    /// Exactly this many.
    Fixed(usize),
}

impl Parallelism {
    /// The most requests it may ever keep in flight (at least 1).
    pub fn max(&self) -> usize {
        match *self {
            Parallelism::Auto { max } => max.max(1),
            Parallelism::Fixed(n) => n.max(1),
        }
    }

    /// The same, with no zero in it.
    fn at_least_one(self) -> Parallelism {
        match self {
            Parallelism::Auto { max } => Parallelism::Auto { max: max.max(1) },
            Parallelism::Fixed(n) => Parallelism::Fixed(n.max(1)),
        }
    }
}

impl std::fmt::Display for Parallelism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Parallelism::Auto { max } => write!(f, "auto (at most {max})"),
            Parallelism::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// How long a run waits for another run's state lock, unless a flag says otherwise.
pub(crate) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `sipform.yaml` is missing, unreadable or invalid; each problem names its place.
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
}

/// Values set on the command line (or by a caller such as `demo`), applied once over the file
/// and the environment. `None` keeps what the environment or the file says.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub server_url: Option<String>,
    /// `Some(None)` sends no key whatever the environment holds (an emulator needs none).
    pub api_key: Option<Option<Secret<String>>>,
    pub timeout: Option<Duration>,
    pub parallelism: Option<Parallelism>,
    pub lock_timeout: Option<Duration>,
    pub app_url: Option<String>,
    pub state: Option<StateConfig>,
}

/// Everything a run needs to know about where things are and how to talk to them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The project folder: relative paths in `sipform.yaml` are relative to it.
    pub root: PathBuf,
    /// The git repository holding the configuration's history, where it is not `root` (the
    /// controller's mirror of a followed repository): where the revision guard asks whether a
    /// recorded commit is an ancestor of the one in use.
    pub history: Option<PathBuf>,
    /// The project's folder inside [`Settings::history`] (a followed repository's
    /// `controller.source.path`): where a rollout takes the stable commit's files from.
    pub history_path: Option<PathBuf>,
    /// Without a trailing slash.
    pub server_url: String,
    /// `X-API-Key`; `None` sends no header.
    pub api_key: Option<Secret<String>>,
    /// Per request.
    pub timeout: Duration,
    /// The largest answer body read from the server (`server.max_answer_bytes`).
    pub max_answer_bytes: u64,
    /// The longest one request may wait on a throttling server (`server.max_throttle_secs`).
    pub max_throttle: Duration,
    /// Requests in flight at once, across restaurants (at least 1), or `auto`.
    pub parallelism: Parallelism,
    /// How long to wait for another run's state lock.
    pub lock_timeout: Duration,
    /// The platform's base URL templates see, without a trailing slash.
    pub app_url: String,
    /// `project:` of `sipform.yaml`; `None`: the account name is the project's identity.
    pub project: Option<String>,
    pub account: AccountSpec,
    pub state: StateConfig,
    pub inventory: InventoryConfig,
    /// Folder of tool files, relative to `root`.
    pub tools_dir: PathBuf,
    /// The agent template, relative to `root`.
    pub template: PathBuf,
    pub billing: crate::model::spec::BillingConfig,
    /// `phone_lines:` of `sipform.yaml`: where phone lines come from.
    pub phone_lines: crate::model::spec::PhoneLinesConfig,
    /// `platform:` of `sipform.yaml`: the OpenAPI document tools are checked against.
    pub platform: crate::model::spec::PlatformConfig,
    /// `controller:` of `sipform.yaml` (read through [`Settings::source`]).
    pub controller: ControllerConfig,
    /// `guardrails:` of `sipform.yaml`: the limits a plan is judged by.
    pub guardrails: crate::model::spec::GuardrailsConfig,
    /// `notify:` of `sipform.yaml`, its webhook overridden by `SIPFORM_NOTIFY_WEBHOOK`.
    pub notify: crate::model::spec::NotifyConfig,
    /// `windows:` of `sipform.yaml` (read through [`Settings::windows`]).
    pub windows: WindowsConfig,
    /// Now, for change windows: the system's clock, or started at `SIPFORM_NOW`.
    pub clock: Clock,
    /// `rollout:` of `sipform.yaml`: a change of existing agents goes out in waves.
    pub rollout: Option<crate::model::spec::RolloutPolicy>,
}

/// `controller.source`, resolved: the repository the controller follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    /// A URL, or an absolute path (a relative one is resolved against the project).
    pub git: String,
    pub branch: String,
    pub interval: Duration,
    /// The project's folder inside the repository (`None`: its root).
    pub path: Option<PathBuf>,
}

/// How often a followed repository is fetched unless `controller.source.interval` says.
pub const DEFAULT_SOURCE_INTERVAL: Duration = Duration::from_secs(30);

/// Reads the process environment; tests pass a closure over a map instead.
fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

impl Settings {
    /// The repository a recorded commit is looked up in: [`Settings::history`], else `root`.
    pub fn history_root(&self) -> &Path {
        self.history.as_deref().unwrap_or(&self.root)
    }

    /// Reads `root/sipform.yaml` and resolves it with the process environment and `overrides`.
    pub fn load(root: &Path, overrides: &Overrides) -> Result<Settings, ConfigError> {
        let project = load::load_project_file(root)?;
        if let Some(src) = &project.controller.source {
            if let Err(e) = parse_duration(&src.interval) {
                return Err(ConfigError::Invalid(Diagnostics::from(Diagnostic::new(
                    Origin::file_start(root.join(PROJECT_FILE)),
                    "controller.source.interval",
                    &e,
                ))));
            }
        }
        let file = || Origin::file_start(root.join(PROJECT_FILE));
        if let Err(e) = WindowSettings::of(&project.windows) {
            let d = Diagnostic::new(file(), "windows", &e);
            return Err(ConfigError::Invalid(Diagnostics::from(d)));
        }
        if let Some(Err(e)) = project.rollout.as_ref().map(rollout_pause) {
            return Err(ConfigError::Invalid(Diagnostics::from(Diagnostic::new(
                file(),
                "rollout.pause",
                &e,
            ))));
        }
        if let Some(Err(e)) = project
            .rollout
            .as_ref()
            .map(|p| rollout_pause(&p.for_rollout(true)))
        {
            return Err(ConfigError::Invalid(Diagnostics::from(Diagnostic::new(
                file(),
                "rollout.rollback.pause",
                &e,
            ))));
        }
        let mut settings = Self::resolve(root, project, &process_env, overrides);
        settings.clock = Clock::from_env(process_env("SIPFORM_NOW").as_deref()).map_err(|e| {
            ConfigError::Invalid(Diagnostics::from(Diagnostic::new(
                file(),
                "SIPFORM_NOW",
                &e,
            )))
        })?;
        if let Some(hook) = &settings.notify.webhook {
            if let Err(e) = check_webhook(hook.expose()) {
                return Err(ConfigError::Invalid(Diagnostics::from(Diagnostic::new(
                    file(),
                    "notify.webhook",
                    &e,
                ))));
            }
        }
        Ok(settings)
    }

    /// `windows:`, parsed (checked by [`Settings::load`]: a bad value there never gets here;
    /// one set by a caller is read as no rule).
    pub fn windows(&self) -> WindowSettings {
        WindowSettings::of(&self.windows).unwrap_or_default()
    }

    /// `controller.source`, with a relative path made absolute against the project.
    pub fn source(&self) -> Option<SourceSettings> {
        let src = self.controller.source.as_ref()?;
        let local = Path::new(&src.git);
        let is_url = src.git.contains("://") || (src.git.contains(':') && !local.exists());
        let git = if !is_url && local.is_relative() {
            // Absolute: git runs in the controller's mirror, not in the project.
            let joined = self.root.join(local);
            std::fs::canonicalize(&joined)
                .or_else(|_| std::env::current_dir().map(|d| d.join(&joined)))
                .unwrap_or(joined)
                .display()
                .to_string()
        } else {
            src.git.clone()
        };
        Some(SourceSettings {
            git,
            branch: src.branch.clone(),
            interval: parse_duration(&src.interval).unwrap_or(DEFAULT_SOURCE_INTERVAL),
            path: src.path.clone(),
        })
    }

    /// Flags win over the environment, which wins over the file. The server URL comes from
    /// `SIP_AGENT_SERVER_URL`, else `SIP_AGENT_INTERNAL_URL` (the platform's later name), else
    /// `server.url`; `SIP_ACCOUNT_API_KEY` empty or unset means no key; `NEXT_PUBLIC_APP_URL`
    /// blank or unset means `app.url`.
    pub fn resolve(
        root: &Path,
        project: Project,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Settings {
        let set = |key: &str| env(key).filter(|s| !s.is_empty());
        let server_url = overrides
            .server_url
            .clone()
            .or_else(|| set("SIP_AGENT_SERVER_URL"))
            .or_else(|| set("SIP_AGENT_INTERNAL_URL"))
            .unwrap_or(project.server.url);
        let api_key = match &overrides.api_key {
            Some(key) => key.clone().filter(|k| !k.is_empty()),
            None => set("SIP_ACCOUNT_API_KEY").map(Secret::new),
        };
        let app_url = overrides
            .app_url
            .clone()
            .or_else(|| env("NEXT_PUBLIC_APP_URL").filter(|s| !s.trim().is_empty()))
            .unwrap_or(project.app.url);
        Settings {
            history: None,
            history_path: None,
            root: root.to_path_buf(),
            server_url: server_url.trim_end_matches('/').to_string(),
            api_key,
            timeout: overrides
                .timeout
                .unwrap_or(Duration::from_secs(project.server.timeout_sec)),
            max_answer_bytes: project.server.max_answer_bytes,
            max_throttle: Duration::from_secs(project.server.max_throttle_secs),
            parallelism: overrides
                .parallelism
                .unwrap_or(DEFAULT_PARALLELISM)
                .at_least_one(),
            lock_timeout: overrides.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT),
            app_url: app_url.trim_end_matches('/').to_string(),
            project: project.project,
            account: project.account,
            state: overrides.state.clone().unwrap_or(project.state),
            inventory: project.inventory,
            tools_dir: project.tools_dir,
            template: project.template,
            billing: project.billing,
            phone_lines: project.phone_lines,
            platform: project.platform,
            controller: project.controller,
            guardrails: project.guardrails,
            notify: crate::model::spec::NotifyConfig {
                webhook: set("SIPFORM_NOTIFY_WEBHOOK")
                    .map(Secret::new)
                    .or(project.notify.webhook),
                format: project.notify.format,
            },
            windows: project.windows,
            clock: Clock::system(),
            rollout: project.rollout,
        }
    }

    /// The effective settings in the shape the front end's checks take.
    pub fn project(&self) -> Project {
        Project {
            project: self.project.clone(),
            server: ServerConfig {
                url: self.server_url.clone(),
                timeout_sec: self.timeout.as_secs(),
                max_answer_bytes: self.max_answer_bytes,
                max_throttle_secs: self.max_throttle.as_secs(),
            },
            account: self.account.clone(),
            app: AppConfig {
                url: self.app_url.clone(),
            },
            state: self.state.clone(),
            inventory: self.inventory.clone(),
            tools_dir: self.tools_dir.clone(),
            template: self.template.clone(),
            billing: self.billing.clone(),
            phone_lines: self.phone_lines.clone(),
            platform: self.platform.clone(),
            controller: self.controller.clone(),
            guardrails: self.guardrails.clone(),
            notify: self.notify.clone(),
            windows: self.windows.clone(),
            rollout: self.rollout.clone(),
        }
    }

    /// What templates see besides the restaurant.
    pub fn render_env(&self) -> RenderEnv {
        RenderEnv {
            app_url: self.app_url.clone(),
        }
    }

    /// Warnings a user should see once: no key, or a key sent in clear to another host.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.api_key.is_none() {
            w.push("SIP_ACCOUNT_API_KEY is not set: requests carry no X-API-Key".to_string());
        }
        if let Some(host) = plain_http_remote_host(&self.server_url) {
            w.push(format!(
                "the server URL uses plain http:// to the non-loopback host {host}: the API key and tokens travel unencrypted; use https://"
            ));
        }
        w
    }
}

/// What the `state` commands need. They also work in a folder without `sipform.yaml` (the
/// default file state), so they cannot require the whole project.
#[derive(Debug, Clone)]
pub struct StateSettings {
    pub root: PathBuf,
    /// `sipform.yaml`'s `state`, or the default file state when there is no project file.
    pub state: StateConfig,
    /// `DATABASE_URL`, the default database of `state migrate`.
    pub database_url: Option<String>,
    /// `project:` and the account name of `sipform.yaml`, which state is bound to; `None`
    /// without a project file.
    pub project: Option<(Option<String>, String)>,
}

impl StateSettings {
    /// Reads `root/sipform.yaml` when there is one (with the same parser as [`Settings::load`]).
    pub fn load(root: &Path) -> Result<StateSettings, ConfigError> {
        let (state, project) = if root.join(PROJECT_FILE).exists() {
            let p = load::load_project_file(root)?;
            (p.state, Some((p.project, p.account.name)))
        } else {
            (StateConfig::default(), None)
        };
        Ok(StateSettings {
            root: root.to_path_buf(),
            state,
            database_url: process_env("DATABASE_URL"),
            project,
        })
    }
}

/// `windows:` resolved: the spans, and the live-call wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowSettings {
    pub spans: Windows,
    /// `windows.live_call_wait`: `None` when updates do not look at live calls.
    pub live_call_wait: Option<Duration>,
    /// How often live calls are read again while waiting.
    pub live_call_check: Duration,
}

/// How often live calls are read again unless `windows.live_call_check` says.
pub const DEFAULT_LIVE_CALL_CHECK: Duration = Duration::from_secs(5);

impl WindowSettings {
    /// Parses `windows:`; the error names the key.
    pub fn of(c: &WindowsConfig) -> Result<WindowSettings, String> {
        let dur = |v: &Option<String>, key: &str| {
            v.as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| format!("windows.{key}: {e}"))
        };
        Ok(WindowSettings {
            spans: Windows::parse(c)?,
            live_call_wait: dur(&c.live_call_wait, "live_call_wait")?,
            live_call_check: dur(&c.live_call_check, "live_call_check")?
                .unwrap_or(DEFAULT_LIVE_CALL_CHECK)
                .max(Duration::from_millis(50)),
        })
    }
}

/// Parses `30s`, `2m`, `500ms`, `1h`, or a bare number of seconds (the `--lock-timeout` flags).
/// `rollout.pause`: `None` for `manual` (the next wave waits for `sipform rollout resume`).
pub fn rollout_pause(
    policy: &crate::model::spec::RolloutPolicy,
) -> Result<Option<Duration>, String> {
    match policy.pause.trim() {
        "manual" => Ok(None),
        d => parse_duration(d).map(Some),
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 2m, 500ms"))?;
    let secs = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration {s:?} is too long"))
    };
    match unit.trim() {
        "" | "s" => secs(1),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => secs(60),
        "h" => secs(3600),
        _ => Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    }
}

/// Refuses a webhook that is not an absolute `http(s)://` URL; the message never holds the
/// URL (it may be a credential).
pub fn check_webhook(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err("the webhook must be an http:// or https:// URL with a host".into()),
        Err(e) => Err(format!("the webhook is not a URL ({e})")),
    }
}

/// The host of a `http://` URL that is not loopback, if that is what `url` is. Parsed with the
/// same URL parser the HTTP client uses, so the host named is where requests really go
/// (`http://localhost:pw@192.0.2.1` goes to 192.0.2.1).
fn plain_http_remote_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.scheme() != "http" {
        return None;
    }
    let loopback = match parsed.host()? {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    (!loopback).then(|| parsed.host_str().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::secret::{check_url_userinfo, redact_url, url_password};

    fn project() -> Project {
        Project {
            project: None,
            server: ServerConfig {
                url: "http://file:1/".into(),
                timeout_sec: 7,
                ..ServerConfig::default()
            },
            account: AccountSpec {
                name: "AlloResto".into(),
                email: "a@b.c".into(),
            },
            app: AppConfig {
                url: "http://app.file/".into(),
            },
            state: Default::default(),
            inventory: Default::default(),
            tools_dir: "tools".into(),
            template: "templates/agent.yaml.j2".into(),
            billing: Default::default(),
            phone_lines: Default::default(),
            platform: Default::default(),
            controller: Default::default(),
            guardrails: Default::default(),
            notify: Default::default(),
            windows: Default::default(),
            rollout: None,
        }
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn resolve(pairs: &'static [(&'static str, &'static str)], overrides: &Overrides) -> Settings {
        Settings::resolve(Path::new("/p"), project(), &env(pairs), overrides)
    }

    #[test]
    fn the_file_alone_gives_the_defaults() {
        let s = resolve(&[], &Overrides::default());
        assert_eq!(s.server_url, "http://file:1");
        assert_eq!(s.app_url, "http://app.file");
        assert!(s.api_key.is_none());
        assert_eq!(s.timeout, Duration::from_secs(7));
        assert_eq!(s.parallelism, DEFAULT_PARALLELISM);
        assert_eq!(s.lock_timeout, DEFAULT_LOCK_TIMEOUT);
        assert_eq!(s.root, Path::new("/p"));
    }

    #[test]
    fn flags_win_over_environment_which_wins_over_the_file() {
        let vars = &[
            ("SIP_AGENT_SERVER_URL", "http://env:2/"),
            ("SIP_ACCOUNT_API_KEY", "from-env"),
            ("NEXT_PUBLIC_APP_URL", "http://app.env"),
        ];
        let s = resolve(vars, &Overrides::default());
        assert_eq!(s.server_url, "http://env:2");
        assert_eq!(
            s.api_key.as_ref().map(|k| k.expose().as_str()),
            Some("from-env")
        );
        assert_eq!(s.app_url, "http://app.env");

        let flags = Overrides {
            server_url: Some("http://flag:3".into()),
            api_key: Some(Some(Secret::new("from-flag".into()))),
            timeout: Some(Duration::from_secs(2)),
            parallelism: Some(Parallelism::Fixed(3)),
            lock_timeout: Some(Duration::from_millis(300)),
            app_url: Some("http://app.flag/".into()),
            state: Some(StateConfig::File {
                path: "/tmp/x.json".into(),
                store_tokens: false,
            }),
        };
        let s = resolve(vars, &flags);
        assert_eq!(s.server_url, "http://flag:3");
        assert_eq!(
            s.api_key.as_ref().map(|k| k.expose().as_str()),
            Some("from-flag")
        );
        assert_eq!(s.app_url, "http://app.flag");
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(s.parallelism, Parallelism::Fixed(3));
        assert_eq!(s.lock_timeout, Duration::from_millis(300));
        assert_eq!(s.state, flags.state.clone().unwrap_or_default());
    }

    #[test]
    fn first_url_variable_wins_and_empty_values_are_unset() {
        let s = resolve(
            &[
                ("SIP_AGENT_SERVER_URL", "http://a:1/"),
                ("SIP_AGENT_INTERNAL_URL", "http://b:2"),
                ("SIP_ACCOUNT_API_KEY", ""),
                ("NEXT_PUBLIC_APP_URL", "  "),
            ],
            &Overrides::default(),
        );
        assert_eq!(s.server_url, "http://a:1");
        assert!(s.api_key.is_none());
        assert_eq!(s.app_url, "http://app.file");
        let s = resolve(
            &[
                ("SIP_AGENT_SERVER_URL", ""),
                ("SIP_AGENT_INTERNAL_URL", "http://b:2"),
            ],
            &Overrides::default(),
        );
        assert_eq!(s.server_url, "http://b:2");
    }

    #[test]
    fn a_flag_can_take_the_key_away() {
        let no_key = Overrides {
            api_key: Some(None),
            ..Overrides::default()
        };
        assert!(resolve(&[("SIP_ACCOUNT_API_KEY", "k")], &no_key)
            .api_key
            .is_none());
        let empty = Overrides {
            api_key: Some(Some(Secret::new(String::new()))),
            ..Overrides::default()
        };
        assert!(resolve(&[("SIP_ACCOUNT_API_KEY", "k")], &empty)
            .api_key
            .is_none());
    }

    #[test]
    fn parallelism_is_at_least_one() {
        let zero = Overrides {
            parallelism: Some(Parallelism::Fixed(0)),
            ..Overrides::default()
        };
        assert_eq!(resolve(&[], &zero).parallelism, Parallelism::Fixed(1));
        let zero = Overrides {
            parallelism: Some(Parallelism::Auto { max: 0 }),
            ..Overrides::default()
        };
        assert_eq!(resolve(&[], &zero).parallelism.max(), 1);
    }

    #[test]
    fn the_project_view_carries_the_effective_values() {
        let s = resolve(
            &[("NEXT_PUBLIC_APP_URL", "http://app.env/")],
            &Overrides::default(),
        );
        let p = s.project();
        assert_eq!(p.app.url, "http://app.env");
        assert_eq!(p.account.name, "AlloResto");
        assert_eq!(s.render_env().app_url, "http://app.env");
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let s = resolve(
            &[("SIP_ACCOUNT_API_KEY", "acc_live_secret")],
            &Overrides::default(),
        );
        assert!(!format!("{s:?}").contains("acc_live_secret"));
    }

    #[test]
    fn a_source_interval_that_is_no_duration_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml =
            "account: {name: A, email: a@b.c}\ncontroller:\n  source:\n    git: ../origin.git\n";
        std::fs::write(
            dir.path().join(PROJECT_FILE),
            format!("{yaml}    interval: soon\n"),
        )
        .expect("write");
        let e = Settings::load(dir.path(), &Overrides::default()).expect_err("refused");
        assert!(e.to_string().contains("controller.source.interval"), "{e}");
        std::fs::write(dir.path().join(PROJECT_FILE), yaml).expect("write");
        let s = Settings::load(dir.path(), &Overrides::default()).expect("valid");
        let src = s.source().expect("a source");
        assert_eq!(src.interval, DEFAULT_SOURCE_INTERVAL);
        assert_eq!(src.branch, "main");
        assert_eq!(
            src.git,
            dir.path().join("../origin.git").display().to_string()
        );
    }

    #[test]
    fn the_webhook_comes_from_the_environment_first_and_never_shows_in_debug_output() {
        let s = resolve(
            &[("SIPFORM_NOTIFY_WEBHOOK", "https://hooks.example/T0/s3cr3t")],
            &Overrides::default(),
        );
        let hook = s.notify.webhook.as_ref().map(|w| w.expose().as_str());
        assert_eq!(hook, Some("https://hooks.example/T0/s3cr3t"));
        assert!(!format!("{s:?}").contains("s3cr3t"));
        assert!(check_webhook("https://hooks.example/x").is_ok());
        for bad in [
            "hooks.example/x",
            "ftp://hooks.example/x",
            "file:///etc/passwd",
        ] {
            let e = check_webhook(bad).expect_err(bad);
            assert!(!e.contains("hooks.example"), "{e}");
        }
    }

    #[test]
    fn an_invalid_webhook_is_refused_naming_the_setting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = "account: {name: A, email: a@b.c}\nnotify:\n  webhook: not-a-url-s3cr3t\n";
        std::fs::write(dir.path().join(PROJECT_FILE), yaml).expect("write");
        let e = Settings::load(dir.path(), &Overrides::default()).expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("notify.webhook"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5 s"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn plain_http_to_a_remote_host_is_flagged() {
        assert_eq!(
            plain_http_remote_host("http://sip.example.com/api"),
            Some("sip.example.com".into())
        );
        assert_eq!(plain_http_remote_host("http://127.0.0.1:4000"), None);
        assert_eq!(plain_http_remote_host("http://localhost:4000"), None);
        assert_eq!(plain_http_remote_host("http://[::1]:4000"), None);
        assert_eq!(plain_http_remote_host("https://sip.example.com"), None);
        // The user-info is not the host: this URL talks to 192.0.2.1.
        assert_eq!(
            plain_http_remote_host("http://localhost:pw@192.0.2.1"),
            Some("192.0.2.1".into())
        );
        assert_eq!(
            plain_http_remote_host("http://user:pw@localhost:4000"),
            None
        );
        assert_eq!(plain_http_remote_host("HTTP://LOCALHOST:4000"), None);
    }

    #[test]
    fn urls_are_shown_without_user_info() {
        assert_eq!(
            redact_url("http://user:pw@127.0.0.1:4000"),
            "http://***@127.0.0.1:4000"
        );
        assert_eq!(redact_url("http://127.0.0.1:4000"), "http://127.0.0.1:4000");
        assert_eq!(
            redact_url("https://token@sip.example.com/x"),
            "https://***@sip.example.com/x"
        );
        // A password with unencoded `/`, `?`, `#` (no parser reads it as a password).
        let url = "postgres://app:p/a?s#s@db.example:5432/prod?sslmode=require";
        assert_eq!(
            redact_url(url),
            "postgres://***@db.example:5432/prod?sslmode=require"
        );
        assert_eq!(url_password(url), Some("p/a?s#s"));
        assert_eq!(
            redact_url("postgres://db/prod?user=a&password=hunter2"),
            "postgres://db/prod?user=a&password=***"
        );
        assert_eq!(url_password("postgres://app@db/x"), None);
    }

    #[test]
    fn ambiguous_user_info_is_refused() {
        assert!(check_url_userinfo("postgres://app:1234/x@db/prod").is_err());
        assert!(check_url_userinfo("http://u:p?w@host").is_err());
        assert!(check_url_userinfo("http://u:p%2Fw@host/x?y=z").is_ok());
        assert!(check_url_userinfo("http://host:4000/x").is_ok());
        assert!(check_url_userinfo("http://localhost:pw@192.0.2.1").is_ok());
    }
}
