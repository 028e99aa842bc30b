//! `render`: the specs the template produces, after validation.

use serde::Serialize;

use crate::config::Settings;
use crate::model::ids::RestaurantId;
use crate::model::spec::{AgentSpec, FinalCustomerSpec};

use super::OpsError;

/// Which restaurants to show.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Only this restaurant (its id); every one when absent.
    pub restaurant: Option<String>,
}

/// One restaurant's rendered objects, as `render` prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedSpec {
    pub restaurant_id: RestaurantId,
    pub final_customer: FinalCustomerSpec,
    pub agent: AgentSpec,
}

/// Validates the project and returns the rendered specs, in inventory order. The restaurants
/// come from the project's one inventory source, files or the platform's table, exactly as
/// `validate` reads them. An unknown `--restaurant` id is an error, not an empty list.
pub async fn render(
    settings: &Settings,
    opts: &RenderOptions,
) -> Result<Vec<RenderedSpec>, OpsError> {
    let report = super::validate::validate(settings).await?;
    let specs: Vec<RenderedSpec> = report
        .validated
        .desired
        .restaurants
        .into_iter()
        .filter(|r| {
            opts.restaurant
                .as_deref()
                .is_none_or(|id| r.id.as_str() == id)
        })
        .map(|r| RenderedSpec {
            restaurant_id: r.id,
            final_customer: r.final_customer,
            agent: r.agent,
        })
        .collect();
    match &opts.restaurant {
        Some(id) if specs.is_empty() => Err(OpsError::NoSuchRestaurant(id.clone())),
        _ => Ok(specs),
    }
}
