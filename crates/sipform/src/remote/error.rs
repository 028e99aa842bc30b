//! What a request to the server can fail with, and what each failure means for a retry, for
//! a POST that may have been applied, and for the user.

use reqwest::Method;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{method} {route}: HTTP {status}: {message}")]
    Status {
        method: Method,
        route: String,
        status: u16,
        message: String,
    },
    /// No usable answer: timeout, reset, refused.
    #[error("{method} {route}: {message}")]
    Transport {
        method: Method,
        route: String,
        message: String,
        /// Whether the request may have reached the server (a timeout or reset after sending).
        maybe_applied: bool,
    },
    #[error("{method} {route}: the answer is not the expected JSON: {message}")]
    Decode {
        method: Method,
        route: String,
        message: String,
    },
    /// A 3xx. The API has no redirects; one is a misconfigured URL or a hostile server, and
    /// following it would send the key elsewhere. Its `Location` is never read or shown.
    #[error("{method} {route}: the server answered {status}; sipform does not follow redirects (the API has none)")]
    Redirect {
        method: Method,
        route: String,
        status: u16,
    },
    /// An answer body over `server.max_answer_bytes`; reading stopped at the limit.
    #[error("{method} {route}: the answer is larger than {limit} bytes (server.max_answer_bytes); reading stopped there")]
    TooLarge {
        method: Method,
        route: String,
        limit: u64,
    },
    /// The server went on answering 429 for longer than `server.max_throttle_secs`.
    #[error("{method} {route}: the server has been throttling this request (HTTP 429) for {waited_secs}s; gave up at the {cap_secs}s limit (server.max_throttle_secs)")]
    Throttled {
        method: Method,
        route: String,
        waited_secs: u64,
        cap_secs: u64,
    },
    /// A route with a segment no encoding keeps in place (see [`Route::refused`](super::routes::Route::refused)): not sent.
    #[error("{method} {route}: not sent: {why}")]
    BadRoute {
        method: Method,
        route: String,
        why: String,
    },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    /// A write not sent because the run is stopping (see [`Client::halt_writes`](super::transport::Client::halt_writes)).
    #[error("{method} {route}: not sent: {why}")]
    Halted {
        method: Method,
        route: String,
        why: String,
    },
}

impl ClientError {
    /// Whether a POST that failed this way may nonetheless have created the object.
    pub(crate) fn is_ambiguous(&self) -> bool {
        match self {
            ClientError::Status { status, .. } => *status >= 500,
            ClientError::Transport { maybe_applied, .. } => *maybe_applied,
            // The server answered, so it acted on the request; the answer was unusable.
            ClientError::Decode { .. } | ClientError::TooLarge { .. } => true,
            ClientError::Build(_)
            | ClientError::Halted { .. }
            | ClientError::BadRoute { .. }
            | ClientError::Redirect { .. }
            | ClientError::Throttled { .. } => false,
        }
    }

    /// Whether trying again could help at all.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Status { status, .. } => *status == 429 || *status >= 500,
            ClientError::Transport { .. } | ClientError::Throttled { .. } => true,
            // A client that could not be built for lack of file descriptors (EMFILE, ENFILE)
            // can be built once connections close: never fatal (issue 25, item 10).
            other => crate::fsio::out_of_file_descriptors(other),
        }
    }

    /// What the user can do about it, when the message alone does not say.
    pub(crate) fn hint(&self) -> Option<&'static str> {
        match self {
            ClientError::Status { status: 401 | 403, .. } => {
                Some("check SIP_ACCOUNT_API_KEY")
            }
            ClientError::Status { status, .. } if *status == 429 || *status >= 500 => {
                Some("the server failed or is overloaded; run again later")
            }
            ClientError::Transport { maybe_applied: false, .. } => Some(
                "check the server URL (SIP_AGENT_SERVER_URL or server.url) and that the server is running",
            ),
            ClientError::Transport { .. } => Some("run again later"),
            ClientError::Decode { .. } => Some(
                "the answer does not follow the API contract: check that the server URL points at sip-agent-server",
            ),
            ClientError::Redirect { .. } => Some(
                "check the server URL (SIP_AGENT_SERVER_URL or server.url): use the address the server answers on directly",
            ),
            ClientError::TooLarge { .. } => {
                Some("if the answer is legitimate, raise server.max_answer_bytes in sipform.yaml")
            }
            ClientError::Throttled { .. } => {
                Some("run again later, or raise server.max_throttle_secs in sipform.yaml")
            }
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The route template of the failed call (never an id).
    pub fn route(&self) -> Option<&str> {
        match self {
            ClientError::Status { route, .. }
            | ClientError::Transport { route, .. }
            | ClientError::Decode { route, .. }
            | ClientError::Halted { route, .. }
            | ClientError::BadRoute { route, .. }
            | ClientError::Redirect { route, .. }
            | ClientError::TooLarge { route, .. }
            | ClientError::Throttled { route, .. } => Some(route),
            ClientError::Build(_) => None,
        }
    }

    /// No usable answer to `method` on `route` (`e`, its URL left out); `maybe_applied`:
    /// whether the request may have reached the server.
    pub(super) fn transport(
        method: &Method,
        route: &str,
        e: &reqwest::Error,
        maybe_applied: bool,
    ) -> ClientError {
        ClientError::Transport {
            method: method.clone(),
            route: route.to_string(),
            message: redact(e),
            maybe_applied,
        }
    }
}

/// reqwest errors can embed the URL (with query ids, never keys); keep the kind and the cause.
pub(super) fn redact(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_request() {
        "request failed (connection reset or closed)"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25, item 10: "Too many open files" is transient, never fatal.
    #[test]
    fn out_of_file_descriptors_is_transient() {
        let emfile = std::io::Error::from_raw_os_error(24);
        let e = ClientError::Build(format!("building the HTTP client: {emfile}"));
        assert!(e.is_transient(), "{e}");
        assert!(!ClientError::Build("no account to attach to".into()).is_transient());
        let state = crate::state::StateError::io(
            "writing",
            std::path::Path::new("sipform.state.json"),
            std::io::Error::from_raw_os_error(23),
        );
        assert!(state.is_transient(), "{state}");
        let denied = crate::state::StateError::io(
            "writing",
            std::path::Path::new("sipform.state.json"),
            std::io::Error::from_raw_os_error(13),
        );
        assert!(!denied.is_transient(), "{denied}");
    }

    #[test]
    fn ambiguity_of_failures() {
        let s = |status| ClientError::Status {
            method: Method::POST,
            route: "/api/agents".into(),
            status,
            message: String::new(),
        };
        assert!(s(500).is_ambiguous());
        assert!(!s(429).is_ambiguous() && s(429).is_transient());
        assert!(!s(400).is_ambiguous() && !s(400).is_transient());
    }
}
