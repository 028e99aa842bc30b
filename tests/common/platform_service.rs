//! The platform's own provisioning service, as it still runs inside its POST handler during a
//! switch-over (reference fact 5): an account found by name (or created), a final customer,
//! an agent whose `config.restaurantId` is the restaurant, and the platform's 12 tools
//! (`tests/fixtures/platform/platform-tools-facts.json`), straight against the emulator's API,
//! one awaited call after another; then the ids and tokens saved into the restaurant's row.
#![allow(dead_code)]

use serde_json::{json, Value};

use super::db::TestDb;
use super::fixture;

/// What the platform's service made for one restaurant.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub account: String,
    pub final_customer: String,
    pub agent: String,
    pub api_token: String,
    pub public_token: String,
}

/// The platform's service against the server at `base`.
pub struct PlatformService {
    base: String,
    http: reqwest::Client,
}

impl PlatformService {
    pub fn new(base: &str) -> Self {
        PlatformService {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    async fn post(&self, path: &str, body: &Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("POST");
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.expect("json")
    }

    /// A new account named `name`, whatever exists (two handlers racing each found none).
    pub async fn create_account(&self, name: &str) -> String {
        let a = self
            .post(
                "/api/accounts",
                &json!({"name": name, "email": "tech@alloresto.fr", "isActive": true}),
            )
            .await;
        a["id"].as_str().expect("account id").to_string()
    }

    /// The first account named `name`, created when none is found (the service's lookup).
    pub async fn account_by_name(&self, name: &str) -> String {
        let list = self.get("/api/accounts").await;
        let found = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["name"] == name)
            .and_then(|a| a["id"].as_str().map(str::to_string));
        match found {
            Some(id) => id,
            None => self.create_account(name).await,
        }
    }

    /// Provisions restaurant `id` (named `name`) under `account`: final customer, agent, the
    /// platform's tools, as its service does.
    pub async fn provision(&self, account: &str, id: &str, name: &str) -> Provisioned {
        let fc = self
            .post(
                "/api/final-customers",
                &json!({"accountId": account, "name": name, "currency": "EUR", "isActive": true}),
            )
            .await;
        let fc = fc["id"].as_str().expect("final customer id").to_string();
        let agent = self
            .post(
                "/api/agents",
                &json!({
                    "accountId": account,
                    "finalCustomerId": fc,
                    "name": format!("{name} - Agent IA"),
                    "transportType": "sip_bridge",
                    "isActive": true,
                    "config": {"restaurantId": id},
                }),
            )
            .await;
        let agent_id = agent["id"].as_str().expect("agent id").to_string();
        for tool in platform_tools() {
            self.post(&format!("/api/agents/{agent_id}/tools"), &tool)
                .await;
        }
        Provisioned {
            account: account.to_string(),
            final_customer: fc,
            api_token: agent["apiToken"].as_str().unwrap_or_default().to_string(),
            public_token: agent["publicToken"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            agent: agent_id,
        }
    }
}

/// The platform's tool definitions, as its service sends them.
pub fn platform_tools() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("platform/platform-tools-facts.json"))
        .expect("platform tools facts");
    serde_json::from_str(&text).expect("platform tools facts are JSON")
}

/// The platform's handler saving what its service made into the restaurant's row.
pub async fn save_into_row(db: &TestDb, id: &str, p: &Provisioned) {
    db.exec(&format!(
        "UPDATE restaurants SET agent_id = '{}', final_customer_id = '{}', agent_api_token = '{}', agent_public_token = '{}', updated_at = CURRENT_TIMESTAMP WHERE id = {}",
        p.agent,
        p.final_customer,
        p.api_token,
        p.public_token,
        db.id_literal(id)
    ))
    .await;
}
