//! Where restaurants come from: a folder of YAML files ([`files`]), or the platform's own
//! `restaurants` table ([`table`]). Both hand over `Sourced<Restaurant>`, and the restaurants
//! whose file or row is invalid as [`Skipped`] (one bad restaurant never blocks the others).

pub mod changes;
pub mod files;
pub mod phone_lines;
pub mod table;

use crate::front::diagnostics::{Skipped, Sourced};
use crate::model::spec::Restaurant;

pub use files::{from_files, read_files};
pub use table::{read_restaurants, PlatformTable, PLATFORM_COLUMNS};

/// What an inventory read: the valid restaurants, in inventory order, and the invalid ones.
#[derive(Debug, Clone, Default)]
pub struct InventoryRead {
    pub restaurants: Vec<Sourced<Restaurant>>,
    pub skipped: Vec<Skipped>,
}
