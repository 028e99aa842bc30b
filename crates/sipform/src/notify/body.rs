//! What a notification says: the events, and the body a webhook gets (sipform's JSON or
//! Slack's `{"text": …}`). Pure; no secret gets in (every text is scrubbed of URL
//! credentials on its way in).

use serde_json::{json, Value};

use crate::model::ids::RestaurantId;
use crate::model::spec::{Breach, NotifyFormat};

/// Something an operator should hear about without watching the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A rollout stopped before its last wave (a failed health gate, an operator's halt).
    RolloutHalted { rollout: String, reason: String },
    /// A rollout reached its last wave.
    RolloutFinished { rollout: String, restaurants: u64 },
    /// The controller parked a restaurant: it will fail again until its row or the
    /// configuration changes.
    RestaurantParked {
        restaurant: RestaurantId,
        name: Option<String>,
        reason: String,
    },
    /// A plan over the `guardrails:` limits was refused (nothing applied).
    GuardrailRefused { breaches: Vec<Breach>, needed: u64 },
    /// The change feed (its log, triggers or LISTEN) is down: changes are only seen at the
    /// next full resync.
    FeedDown { reason: String },
    /// This controller lost the leader lock and stands by.
    LeadershipLost,
}

impl Event {
    /// The event's name in the JSON body (`guardrail_refused`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RolloutHalted { .. } => "rollout_halted",
            Event::RolloutFinished { .. } => "rollout_finished",
            Event::RestaurantParked { .. } => "restaurant_parked",
            Event::GuardrailRefused { .. } => "guardrail_refused",
            Event::FeedDown { .. } => "feed_down",
            Event::LeadershipLost => "leadership_lost",
        }
    }

    /// One sentence for a person.
    pub fn message(&self) -> String {
        let text = match self {
            Event::RolloutHalted { rollout, reason } => {
                format!("rollout {rollout} halted: {reason}")
            }
            Event::RolloutFinished {
                rollout,
                restaurants,
            } => format!("rollout {rollout} finished: {restaurants} restaurants updated"),
            Event::RestaurantParked {
                restaurant,
                name,
                reason,
            } => match name {
                Some(n) => format!("restaurant \"{n}\" ({restaurant}) parked: {reason}"),
                None => format!("restaurant {restaurant} parked: {reason}"),
            },
            Event::GuardrailRefused { breaches, needed } => {
                let parts: Vec<String> = breaches.iter().map(Breach::to_string).collect();
                format!(
                    "a plan over its guardrails was refused, nothing applied: {} (--allow-changes {needed} lets it through)",
                    parts.join("; ")
                )
            }
            Event::FeedDown { reason } => format!(
                "the change feed is down: {reason}; changes are seen at the next full resync"
            ),
            Event::LeadershipLost => {
                "the controller lost the leader lock and stands by".to_string()
            }
        };
        scrub(&text)
    }

    /// The event's own fields, for the JSON body.
    fn details(&self) -> Value {
        match self {
            Event::RolloutHalted { rollout, reason } => {
                json!({"rollout": scrub(rollout), "reason": scrub(reason)})
            }
            Event::RolloutFinished {
                rollout,
                restaurants,
            } => json!({"rollout": scrub(rollout), "restaurants": restaurants}),
            Event::RestaurantParked {
                restaurant,
                name,
                reason,
            } => json!({
                "restaurantId": restaurant,
                "name": name.as_deref().map(scrub),
                "reason": scrub(reason),
            }),
            Event::GuardrailRefused { breaches, needed } => {
                json!({"breaches": breaches, "allowChangesNeeded": needed})
            }
            Event::FeedDown { reason } => json!({"reason": scrub(reason)}),
            Event::LeadershipLost => json!({}),
        }
    }
}

/// The body POSTed for `event` from `project` at `at` (RFC 3339).
pub fn body(event: &Event, format: NotifyFormat, project: &str, at: &str) -> Value {
    match format {
        NotifyFormat::Json => json!({
            "source": "sipform",
            "project": project,
            "kind": event.kind(),
            "message": event.message(),
            "at": at,
            "details": event.details(),
        }),
        // Slack reads `<…>` as links and mentions (`<!channel>`) and `&` as an entity.
        NotifyFormat::Slack => json!({
            "text": slack_escape(&format!("sipform ({project}): {}", event.message())),
        }),
    }
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` with the user-info of every URL in it replaced (`postgres://***@db/x`): an error
/// naming a database or a server never carries its password to a chat channel.
pub fn scrub(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            if word.contains("://") {
                crate::model::secret::redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::LimitKind;

    #[test]
    fn credentials_in_a_text_are_scrubbed() {
        let e = Event::FeedDown {
            reason: "connecting to postgres://app:hunter2@db:5432/x failed".into(),
        };
        let m = e.message();
        assert!(!m.contains("hunter2"), "{m}");
        assert!(m.contains("postgres://***@db:5432/x failed"), "{m}");
        let b = body(&e, NotifyFormat::Json, "p", "t").to_string();
        assert!(!b.contains("hunter2"), "{b}");
    }

    #[test]
    fn slack_gets_text_with_its_markup_escaped() {
        let e = Event::RestaurantParked {
            restaurant: RestaurantId::new("r1"),
            name: Some("<!channel> & co".into()),
            reason: "bad row".into(),
        };
        let b = body(&e, NotifyFormat::Slack, "alloresto", "t");
        assert_eq!(
            b,
            json!({"text": "sipform (alloresto): restaurant \"&lt;!channel&gt; &amp; co\" (r1) parked: bad row"})
        );
    }

    #[test]
    fn the_json_body_names_the_kind_and_the_breach() {
        let e = Event::GuardrailRefused {
            breaches: vec![Breach {
                limit: LimitKind::Deactivations,
                count: 60,
                allowed: 5,
                setting: "5%".into(),
                fleet: 100,
            }],
            needed: 60,
        };
        let b = body(&e, NotifyFormat::Json, "p", "2026-01-01T00:00:00Z");
        assert_eq!(b["kind"], "guardrail_refused");
        assert_eq!(b["details"]["allowChangesNeeded"], 60);
        assert_eq!(b["details"]["breaches"][0]["limit"], "max_deactivations");
        assert!(b["message"].as_str().unwrap().contains("by 55"));
    }
}
