//! Phone lines: the numbers routed to an agent, with their SIP trunk credentials. Shape: many
//! under the agent, keyed by phone number (E.164); the server upserts a POST by number.
//!
//! Sources (decided by validate, see `front::validate`): a restaurant's `phone_line:` block, or
//! with `phone_lines.source: restaurant_phone` the restaurant's own `phone` (provider
//! `twilio`, no credentials). A restaurant that wants no line leaves its agent's lines as they
//! are (nothing sipform did not declare is deleted: lines the platform made stay routed).
//!
//! The password is write-only: the server never returns it. It never enters a plan: the body
//! carries a marker naming the environment variable (`{"fromEnv": "NAME"}`), replaced by the
//! variable's value only in the request, at call time. Whether it changed is judged against
//! state, which keeps `sha256(salt || password)` (hex) and the salt, random per line and per
//! write, in its generic slot ([`RestaurantState::objects`], kinds [`HASH_SLOT`] and
//! [`SALT_SLOT`], keyed by number), never the password. Apply records a new hash after each
//! create or update that sent a password ([`Kind::after_write`]).

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{Actual, DesiredObject, Kind, Parents, Shape};
use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::spec::{DesiredRestaurant, PhoneProvider, SipTransport};
use crate::plan::{FieldChange, Resource};
use crate::remote::{Client, ClientError, Created, Route, Secrets, ServerObject};
use crate::state::{Change, RestaurantState};

const LIST: &str = "/api/agents/:id/phone-lines";
const ONE: &str = "/api/agents/:id/phone-lines/:lineId";

/// The write-only key.
pub(crate) const PASSWORD: &str = "sipPassword";
/// The marker's key: `{"fromEnv": "NAME"}` stands for the value of `$NAME`.
const FROM_ENV: &str = "fromEnv";
/// State slots (kinds in [`RestaurantState::objects`]) of the password's hash and salt.
pub(crate) const HASH_SLOT: &str = "phoneLinePassword";
pub(crate) const SALT_SLOT: &str = "phoneLinePasswordSalt";

pub struct PhoneLine;

/// `sha256(salt || password)`, lower-case hex.
pub(crate) fn fingerprint(salt: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(password.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn provider(p: PhoneProvider) -> &'static str {
    match p {
        PhoneProvider::Sip => "sip",
        PhoneProvider::Twilio => "twilio",
    }
}

fn transport(t: SipTransport) -> &'static str {
    match t {
        SipTransport::Udp => "udp",
        SipTransport::Tcp => "tcp",
        SipTransport::Tls => "tls",
    }
}

/// The database marker's key: `{"fromPlatform": "<line id>"}` stands for the password the
/// inventory decrypted from the platform's `phone_lines` row (see [`crate::crypto::recall`]).
const FROM_PLATFORM: &str = "fromPlatform";

/// Whether a body carries a password marker.
fn has_password(body: &Value) -> bool {
    body.get(PASSWORD).is_some()
}

/// The value a marker stands for; the error names the variable or the line, never a value.
fn password_of(marker: &Value) -> Result<String, ClientError> {
    if let Some(line) = marker.get(FROM_PLATFORM).and_then(Value::as_str) {
        return crate::crypto::recall(line)
            .map(|s| s.expose().clone())
            .ok_or_else(|| {
                ClientError::Build(format!(
                    "the password of phone line {line} was not read from the platform's table in this run: the phone line is not sent"
                ))
            });
    }
    let Some(name) = marker.get(FROM_ENV).and_then(Value::as_str) else {
        return Err(ClientError::Build(format!(
            "a phone line's `{PASSWORD}` must name an environment variable (`{FROM_ENV}`) or a platform line (`{FROM_PLATFORM}`): a password is never carried in a plan"
        )));
    };
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ClientError::Build(format!(
                "the environment variable `{name}` (phone_line.sip_password_env) is not set: the phone line is not sent"
            ))
        })
}

/// The body as sent: the marker replaced by the variable's value. The error names the
/// variable, never a value.
fn resolved(body: &Value) -> Result<Value, ClientError> {
    let mut out = body.clone();
    let Some(map) = out.as_object_mut() else {
        return Ok(out);
    };
    if let Some(marker) = map.get(PASSWORD) {
        let value = password_of(marker)?;
        map.insert(PASSWORD.to_string(), Value::String(value));
    }
    Ok(out)
}

fn salt() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn slot(restaurant: &RestaurantId, kind: &str, key: &str, value: String) -> Option<Change> {
    Some(Change::Object {
        restaurant: restaurant.clone(),
        kind: kind.to_string(),
        key: key.to_string(),
        id: Some(ObjectId::parse(&value).ok()?),
    })
}

#[async_trait]
impl Kind for PhoneLine {
    fn resource(&self) -> Resource {
        Resource::PHONE_LINE
    }

    fn assumed_routes(&self) -> &'static [(&'static str, &'static str)] {
        &[("DELETE", "/api/agents/:id/phone-lines/:id")]
    }

    fn shape(&self) -> Shape {
        Shape::Many
    }

    fn parent(&self) -> Option<Resource> {
        Some(Resource::AGENT)
    }

    fn desired(&self, r: &DesiredRestaurant) -> Vec<DesiredObject> {
        let Some(line) = &r.phone_line else {
            return Vec::new();
        };
        let s = &line.spec;
        let mut body = Map::new();
        body.insert("phoneNumber".into(), json!(s.phone_number));
        body.insert("provider".into(), json!(provider(s.provider())));
        body.insert("sipTransport".into(), json!(s.sip_transport.map(transport)));
        body.insert("stunServer".into(), json!(s.stun_server));
        body.insert("sipDomain".into(), json!(s.sip_domain));
        body.insert("sipUsername".into(), json!(s.sip_username));
        body.insert("twilioTrunkSid".into(), json!(s.twilio_trunk_sid));
        body.insert("isActive".into(), json!(s.is_active));
        match (&s.sip_password_env, &line.platform_line, &line.password) {
            (Some(name), _, Some(_)) => {
                body.insert(PASSWORD.into(), json!({ FROM_ENV: name }));
            }
            (None, Some(id), Some(_)) => {
                body.insert(PASSWORD.into(), json!({ FROM_PLATFORM: id }));
            }
            _ => {}
        }
        vec![DesiredObject {
            key: s.phone_number.clone(),
            body: Value::Object(body),
        }]
    }

    /// A restaurant that wants no line leaves its agent's lines alone (an empty reason: no
    /// note).
    fn desired_in(
        &self,
        r: &DesiredRestaurant,
        _actual: &Actual,
    ) -> Result<Vec<DesiredObject>, String> {
        match r.phone_line {
            None => Err(String::new()),
            Some(_) => Ok(self.desired(r)),
        }
    }

    fn update_whole(&self) -> bool {
        false
    }

    fn declared_in(&self) -> &'static str {
        "phone_line"
    }

    fn key_of<'a>(&self, o: &'a ServerObject) -> Option<&'a str> {
        o.str_field("phoneNumber")
    }

    fn write_only(&self) -> &'static [&'static str] {
        &[PASSWORD]
    }

    /// The password changed when its salted hash differs from the one state recorded (or
    /// none is recorded).
    fn write_only_changes(
        &self,
        r: &DesiredRestaurant,
        st: Option<&RestaurantState>,
        key: &str,
    ) -> Vec<FieldChange> {
        let Some(line) = r.phone_line.as_ref().filter(|l| l.spec.phone_number == key) else {
            return Vec::new();
        };
        let Some(password) = &line.password else {
            return Vec::new();
        };
        let same =
            st.is_some_and(
                |st| match (st.object(HASH_SLOT, key), st.object(SALT_SLOT, key)) {
                    (Some(hash), Some(salt)) => {
                        fingerprint(salt.as_str(), password.expose()) == hash.as_str()
                    }
                    _ => false,
                },
            );
        if same {
            return Vec::new();
        }
        vec![FieldChange {
            path: PASSWORD.to_string(),
            before: None,
            after: None,
            sensitive: true,
        }]
    }

    fn after_write(
        &self,
        restaurant: &RestaurantId,
        key: &str,
        body: &Value,
    ) -> Result<Vec<Change>, ClientError> {
        if !has_password(body) {
            return Ok(Vec::new());
        }
        let sent = resolved(body)?;
        let password = sent.get(PASSWORD).and_then(Value::as_str).unwrap_or("");
        let salt = salt();
        let hash = fingerprint(&salt, password);
        Ok([
            slot(restaurant, HASH_SLOT, key, hash),
            slot(restaurant, SALT_SLOT, key, salt),
        ]
        .into_iter()
        .flatten()
        .collect())
    }

    fn recorded(&self, st: &RestaurantState, key: &str) -> Option<ObjectId> {
        st.object(Resource::PHONE_LINE.as_str(), key).cloned()
    }

    fn change(
        &self,
        restaurant: &RestaurantId,
        key: &str,
        id: Option<&ObjectId>,
        _secrets: Option<&Secrets>,
    ) -> Change {
        Change::Object {
            restaurant: restaurant.clone(),
            kind: Resource::PHONE_LINE.as_str().to_string(),
            key: key.to_string(),
            id: id.cloned(),
        }
    }

    async fn list(
        &self,
        client: &Client,
        agent: &ObjectId,
    ) -> Result<Vec<ServerObject>, ClientError> {
        let route = Route::new(LIST, &[agent.as_str()]);
        super::list_at(client, &route).await
    }

    async fn create(
        &self,
        client: &Client,
        parents: &Parents,
        body: &Value,
    ) -> Result<Created, ClientError> {
        let agent = parents.require(Resource::AGENT)?;
        let route = Route::new(LIST, &[agent.as_str()]);
        let sent = resolved(body)?;
        client.create(&route, &sent).await
    }

    async fn find_created(
        &self,
        client: &Client,
        parents: &Parents,
        _restaurant: &RestaurantId,
        body: &Value,
        taken: &(dyn for<'x> Fn(&'x ObjectId) -> bool + Sync),
    ) -> Result<Option<Created>, ClientError> {
        let agent = parents.require(Resource::AGENT)?;
        let number = body.get("phoneNumber").and_then(Value::as_str);
        let list = self.list(client, agent).await?;
        Ok(super::unclaimed(list, |o| self.key_of(o) == number, taken))
    }

    async fn update(
        &self,
        client: &Client,
        parents: &Parents,
        id: &ObjectId,
        body: &Value,
    ) -> Result<(), ClientError> {
        let agent = parents.require(Resource::AGENT)?;
        let sent = resolved(body)?;
        client
            .put(&Route::new(ONE, &[agent.as_str(), id.as_str()]), &sent)
            .await
    }

    async fn delete(
        &self,
        client: &Client,
        parents: &Parents,
        id: &ObjectId,
    ) -> Result<(), ClientError> {
        let agent = parents.require(Resource::AGENT)?;
        client
            .delete(&Route::new(ONE, &[agent.as_str(), id.as_str()]))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_is_salted_and_the_marker_never_holds_a_value() {
        assert_ne!(fingerprint("a", "pw"), fingerprint("b", "pw"));
        assert_eq!(fingerprint("a", "pw").len(), 64);
        assert!(ObjectId::parse(&fingerprint("a", "pw")).is_ok());
        assert!(ObjectId::parse(&salt()).is_ok());
        let literal = json!({"phoneNumber": "+33100000000", "sipPassword": "hunter2"});
        let Err(e) = resolved(&literal) else {
            panic!("a literal password is refused")
        };
        assert!(!e.to_string().contains("hunter2"));
    }
}
