//! The typed model: what a file may say, and what sipform sends.
//!
//! Tool and agent specs use the server's own field names (camelCase), so a spec serializes
//! straight into the request body and a reader of `tools/*.yaml` sees the contract's words.
//! Restaurants use the platform's column names (snake_case); `sipform.yaml` uses snake_case
//! like every other project file a human writes. Every struct denies unknown keys: a typo must
//! fail validation, not vanish.
//!
//! One file per spec: `tool`, `agent` (and final customer), `restaurant` (and its phone line),
//! `project` (`sipform.yaml`), `windows` (its `windows:`), `desired` (what validate hands to plan).

mod agent;
mod desired;
mod guardrails;
mod notify;
mod platform;
mod project;
mod restaurant;
mod rollout;
mod tool;
mod tool_test;
mod windows;

pub use agent::*;
pub use desired::*;
pub use guardrails::*;
pub use notify::*;
pub use platform::*;
pub use project::*;
pub use restaurant::*;
pub use rollout::*;
pub use tool::*;
pub use tool_test::*;
pub use windows::*;

fn default_true() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn tool_defaults_fill_in() {
        let t: ToolSpec = serde_json::from_value(serde_json::json!({
            "name": "end_call",
            "description": "Raccrocher.",
            "parameters": {"type": "object", "properties": {}},
            "triggersHangup": true,
            "sortOrder": 12
        }))
        .unwrap();
        assert!(t.is_enabled);
        assert!(t.http.is_none());
        assert!(!t.mutes_client_audio);
    }

    #[test]
    fn unknown_tool_key_is_refused() {
        let r: Result<ToolSpec, _> = serde_json::from_value(serde_json::json!({
            "name": "x", "description": "d", "parameters": {"type": "object"},
            "sortOrder": 1, "sortOrdre": 2
        }));
        assert!(r.is_err());
    }

    #[test]
    fn state_config_is_tagged_by_backend() {
        let s: StateConfig =
            serde_json::from_value(serde_json::json!({"backend": "file"})).unwrap();
        assert_eq!(s, StateConfig::default());
        let bad: Result<StateConfig, _> =
            serde_json::from_value(serde_json::json!({"backend": "file", "url": "x"}));
        assert!(bad.is_err());
    }

    #[test]
    fn restaurant_ids_are_uuids() {
        assert!(is_restaurant_id("3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01"));
        assert!(is_restaurant_id("3F6C2A1E-8B4D-4C59-9A2E-1D7F5B6C8E01"));
        for bad in [
            "x?y/../",
            "=1+1",
            "r-001",
            "",
            "3f6c2a1e8b4d4c599a2e1d7f5b6c8e01",
            "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e0g",
            "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01-",
        ] {
            assert!(!is_restaurant_id(bad), "{bad}");
        }
    }

    #[test]
    fn agent_config_keeps_extra_keys() {
        let c: AgentConfig = serde_json::from_value(serde_json::json!({
            "restaurantId": "r1", "deliveryEnabled": true, "reservationEnabled": false,
            "orderStatusEnabled": false, "transferEnabled": false, "vip": true
        }))
        .unwrap();
        assert_eq!(c.extra.get("vip"), Some(&Value::Bool(true)));
    }
}
