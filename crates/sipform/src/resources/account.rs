//! The account: one for the whole platform, found by the id state records, else by name. It is
//! not a per-restaurant [`super::Kind`]: it comes before every restaurant and is never deleted.

use reqwest::Method;
use serde_json::{json, Value};

use crate::model::ids::ObjectId;
use crate::model::spec::AccountSpec;
use crate::plan::{Action, Reason};
use crate::remote::{Client, ClientError, Route, ServerObject};

const LIST: &str = "/api/accounts";

/// The POST body.
pub fn body(spec: &AccountSpec) -> Value {
    json!({"name": spec.name, "email": spec.email, "isActive": true})
}

pub async fn list(client: &Client) -> Result<Vec<ServerObject>, ClientError> {
    let route = Route::new(LIST, &[]);
    super::list_at(client, &route).await
}

/// The account this project manages: state's id first, else the first of that name.
pub(crate) fn pick(
    accounts: Vec<ServerObject>,
    recorded: Option<&ObjectId>,
    name: &str,
) -> Option<ServerObject> {
    let by_id = recorded.and_then(|id| accounts.iter().position(|a| &a.id == id));
    let at = by_id.or_else(|| accounts.iter().position(|a| a.name() == Some(name)))?;
    accounts.into_iter().nth(at)
}

/// Whether state's recorded account is among `accounts`: then it is the project's, whatever
/// else carries its name.
pub(crate) fn recorded_among(accounts: &[ServerObject], recorded: Option<&ObjectId>) -> bool {
    recorded.is_some_and(|id| accounts.iter().any(|a| &a.id == id))
}

/// The other accounts carrying `name` besides `ours`: the platform's own provisioning made
/// them during a switch-over (their agents are the restaurants' duplicates).
pub(crate) fn twins<'a>(
    accounts: &'a [ServerObject],
    ours: Option<&'a ObjectId>,
    name: &'a str,
) -> impl Iterator<Item = &'a ServerObject> + 'a {
    accounts
        .iter()
        .filter(move |a| a.name() == Some(name) && Some(&a.id) != ours)
}

/// What the plan does with the account: create it, adopt it, or nothing.
pub fn action(
    spec: &AccountSpec,
    found: Option<&ServerObject>,
    recorded: Option<&ObjectId>,
) -> Action {
    let name = spec.name.clone();
    match found {
        None => Action::Create {
            resource: crate::plan::Resource::ACCOUNT,
            name,
            body: crate::plan::Body::packed(&body(spec)),
            write_only: Box::default(),
        },
        Some(a) if recorded == Some(&a.id) => Action::NoOp {
            resource: crate::plan::Resource::ACCOUNT,
            name,
            id: a.id.clone(),
        },
        Some(a) => Action::Adopt {
            resource: crate::plan::Resource::ACCOUNT,
            name,
            id: a.id.clone(),
            reason: Reason::FoundByName,
        },
    }
}

pub async fn create(client: &Client, body: &Value) -> Result<ServerObject, ClientError> {
    let route = Route::new(LIST, &[]);
    // One per run: its fields are parsed whole (the run reads its name).
    client
        .create(&route, body)
        .await?
        .object()
        .ok_or_else(|| ClientError::Decode {
            method: Method::POST,
            route: route.template().to_string(),
            message: "the answer is not one JSON object".into(),
        })
}

/// After an ambiguous create: the account of that name, if the lost attempt stored it.
pub async fn find_created(
    client: &Client,
    name: &str,
) -> Result<Option<ServerObject>, ClientError> {
    Ok(list(client)
        .await?
        .into_iter()
        .find(|a| a.name() == Some(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, name: &str) -> ServerObject {
        let mut fields = serde_json::Map::new();
        fields.insert("name".into(), name.into());
        ServerObject::new(ObjectId::parse(id).unwrap(), fields)
    }

    #[test]
    fn the_recorded_account_wins_over_its_namesakes() {
        let list = vec![account("a1", "AlloResto"), account("a2", "AlloResto")];
        let recorded = ObjectId::parse("a2").unwrap();
        assert!(recorded_among(&list, Some(&recorded)));
        let picked = pick(list.clone(), Some(&recorded), "AlloResto").unwrap();
        assert_eq!(picked.id.as_str(), "a2");
        let others: Vec<&str> = twins(&list, Some(&recorded), "AlloResto")
            .map(|a| a.id.as_str())
            .collect();
        assert_eq!(others, ["a1"]);
        assert!(!recorded_among(&list, None));
    }
}
