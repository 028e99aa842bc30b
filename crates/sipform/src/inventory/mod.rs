//! Where restaurants come from: a folder of YAML files ([`files`]), or the platform's own
//! `restaurants` table ([`table`]). Both hand over `Sourced<Restaurant>`.

pub mod files;
pub mod table;

pub use files::from_files;
pub use table::{read_restaurants, PlatformTable, PLATFORM_COLUMNS};
