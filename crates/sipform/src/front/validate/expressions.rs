//! What the server's expressions may name, by where they sit: the roots a site allows and the
//! context keys that exist before any tool sets one.

use crate::front::expr::{Reference, Root};

/// The context keys the session's `initialContext` provides (contract, Expressions table).
pub(crate) const INITIAL_CONTEXT_KEYS: &[&str] = &[
    "item_map",
    "customer_id",
    "customer_name",
    "customer_delivery_lat",
    "customer_delivery_lng",
    "avg_prep_time_min",
    "delivery_enabled",
    "restaurant_id",
    "transfer_phone",
];

/// The context keys the server sets itself.
pub(crate) const SERVER_CONTEXT_KEYS: &[&str] = &["call_id", "caller_phone"];

/// Where an expression sits decides which roots it may use.
pub(super) fn allowed_roots(pointer: &str) -> &'static [Root] {
    use Root::*;
    if pointer == "/http/url" {
        &[BaseUrl, Config, Ai, Ctx]
    } else if pointer.starts_with("/http/bodyTemplate") {
        &[Config, Ai, Ctx]
    } else if pointer.starts_with("/contextUpdates") || pointer == "/extraCostResponseField" {
        &[Res, Config]
    } else if pointer == "/agent/basePrompt" {
        &[Data, Config]
    } else if pointer == "/agent/onCallEndWebhook" {
        &[BaseUrl, Config]
    } else if pointer == "/agent/externalSessionUrl" {
        &[CallerPhone, Config]
    } else {
        &[Config]
    }
}

/// A tool's fields the server evaluates as expressions; the others are sent as they are.
pub(super) fn is_tool_expression_site(pointer: &str) -> bool {
    pointer == "/http/url"
        || pointer.starts_with("/http/bodyTemplate/")
        || pointer.starts_with("/contextUpdates/")
        || pointer == "/extraCostResponseField"
}

/// Why `r` may not be used among `allowed` (the roots of its site), or `None` when it may.
pub(super) fn root_not_allowed(r: &Reference, allowed: &[Root]) -> Option<String> {
    if allowed.contains(&r.root) {
        return None;
    }
    Some(format!(
        "`{}` cannot be used here (at character {}); allowed: {}",
        r.root,
        r.offset + 1,
        roots_list(allowed)
    ))
}

fn roots_list(roots: &[Root]) -> String {
    roots
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_per_site() {
        assert!(allowed_roots("/http/url").contains(&Root::BaseUrl));
        assert!(!allowed_roots("/http/bodyTemplate/x").contains(&Root::Res));
        assert!(allowed_roots("/contextUpdates/x").contains(&Root::Res));
        assert!(!allowed_roots("/agent/name").contains(&Root::Data));
    }

    #[test]
    fn tool_sites() {
        assert!(is_tool_expression_site("/http/url"));
        assert!(is_tool_expression_site("/http/bodyTemplate/a/b"));
        assert!(!is_tool_expression_site("/description"));
        assert!(!is_tool_expression_site("/http/method"));
    }
}
