//! The offline front end: YAML with positions, loading, diagnostics that name `file:line:col`,
//! the server's expression language, rendering the agent template, validation and the JSON
//! Schemas. Nothing here touches the network.

pub mod diagnostics;
pub mod expr;
pub mod load;
pub mod par;
pub mod render;
pub mod schema;
pub mod strict;
pub mod validate;
pub mod yaml;

use crate::model::spec::Restaurant;
use diagnostics::{Skipped, Sourced};
use load::Document;

/// What an inventory read: the valid restaurants, in inventory order, and the invalid ones.
/// Every source hands this to validation (see `crate::inventory`).
#[derive(Debug, Clone, Default)]
pub struct InventoryRead {
    pub restaurants: Vec<Sourced<Restaurant>>,
    /// The file of each restaurant, in the same order, when they come from files (to point at
    /// a column); empty for the rows of a table.
    pub docs: Vec<Document>,
    pub skipped: Vec<Skipped>,
}
