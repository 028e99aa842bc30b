//! Effective settings: `sipform.yaml`, overridden by the environment, overridden by flags.

use std::time::Duration;

use crate::model::secret::Secret;
use crate::model::spec::Project;

/// What the network stages need to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Without a trailing slash.
    pub server_url: String,
    /// `X-API-Key`; `None` sends no header.
    pub api_key: Option<Secret<String>>,
    pub timeout: Duration,
    /// Requests in flight at once, across restaurants.
    pub parallelism: usize,
}

pub const DEFAULT_PARALLELISM: usize = 10;

impl Settings {
    /// `SIP_AGENT_SERVER_URL`, else `SIP_AGENT_INTERNAL_URL` (the platform's later name), else
    /// the project's `server.url`. `SIP_ACCOUNT_API_KEY` empty or unset means no key.
    pub fn resolve(project: &Project) -> Settings {
        Self::resolve_with(project, |k| std::env::var(k).ok())
    }

    pub fn resolve_with(project: &Project, env: impl Fn(&str) -> Option<String>) -> Settings {
        let url = env("SIP_AGENT_SERVER_URL")
            .filter(|s| !s.is_empty())
            .or_else(|| env("SIP_AGENT_INTERNAL_URL").filter(|s| !s.is_empty()))
            .unwrap_or_else(|| project.server.url.clone());
        let api_key = env("SIP_ACCOUNT_API_KEY")
            .filter(|s| !s.is_empty())
            .map(Secret::new);
        Settings {
            server_url: url.trim_end_matches('/').to_string(),
            api_key,
            timeout: Duration::from_secs(project.server.timeout_sec),
            parallelism: DEFAULT_PARALLELISM,
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

/// The host of a `http://` URL that is not loopback, if that is what `url` is.
fn plain_http_remote_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("").to_string()
    } else {
        authority.split(':').next().unwrap_or("").to_string()
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    (!loopback).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::AccountSpec;

    fn project() -> Project {
        Project {
            server: Default::default(),
            account: AccountSpec {
                name: "AlloResto".into(),
                email: "a@b.c".into(),
            },
            app: Default::default(),
            state: Default::default(),
            inventory: Default::default(),
            tools_dir: "tools".into(),
            template: "templates/agent.yaml.j2".into(),
        }
    }

    #[test]
    fn first_url_variable_wins_and_empty_key_is_none() {
        let s = Settings::resolve_with(&project(), |k| match k {
            "SIP_AGENT_SERVER_URL" => Some("http://a:1/".into()),
            "SIP_AGENT_INTERNAL_URL" => Some("http://b:2".into()),
            "SIP_ACCOUNT_API_KEY" => Some(String::new()),
            _ => None,
        });
        assert_eq!(s.server_url, "http://a:1");
        assert!(s.api_key.is_none());
        let s = Settings::resolve_with(&project(), |k| {
            (k == "SIP_AGENT_INTERNAL_URL").then(|| "http://b:2".to_string())
        });
        assert_eq!(s.server_url, "http://b:2");
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
    }
}
