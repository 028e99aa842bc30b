//! Restaurants from a folder of YAML files, one restaurant each: the inventory of local
//! development and of projects without the platform's database. No change feed (the
//! controller's `--watch` and its resync see changes) and nothing is written back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{Inventory, InventoryError, InventoryRead};
use crate::front::diagnostics::Diagnostics;
use crate::front::load;
use crate::model::ids::RestaurantId;

/// A folder of restaurant files.
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    pub fn new(dir: &Path) -> Files {
        Files {
            dir: dir.to_path_buf(),
        }
    }

    fn read(&self) -> Result<InventoryRead, InventoryError> {
        load::read_restaurant_files(&self.dir).map_err(InventoryError::Invalid)
    }
}

/// Every restaurant file of `dir`, in file-name order: the valid ones with their document, and
/// each invalid file as skipped. Fails only when the folder itself cannot be listed.
pub fn read_files(dir: &Path) -> Result<InventoryRead, Diagnostics> {
    load::read_restaurant_files(dir)
}

#[async_trait]
impl Inventory for Files {
    fn describe(&self) -> String {
        format!("folder {}", self.dir.display())
    }

    async fn read_all(
        &self,
        _known: &BTreeSet<RestaurantId>,
    ) -> Result<InventoryRead, InventoryError> {
        self.read()
    }

    /// The folder is read whole (a file's name says nothing of its id); the restaurants of
    /// `ids` are kept, and every file whose id could not be read (it might be one of them).
    async fn read_some(
        &self,
        ids: &BTreeSet<RestaurantId>,
    ) -> Result<InventoryRead, InventoryError> {
        let all = self.read()?;
        let mut read = InventoryRead::default();
        let wanted = |id: &str| ids.iter().any(|i| i.as_str() == id);
        for (r, doc) in all.restaurants.into_iter().zip(all.docs) {
            if wanted(r.value.id.as_str()) {
                read.restaurants.push(r);
                read.docs.push(doc);
            }
        }
        read.skipped = all
            .skipped
            .into_iter()
            .filter(|s| s.id.as_deref().is_none_or(wanted))
            .collect();
        Ok(read)
    }

    async fn all_ids(&self) -> Result<Vec<RestaurantId>, InventoryError> {
        let read = self.read()?;
        let valid = read.restaurants.iter().map(|r| r.value.id.clone());
        let invalid = read
            .skipped
            .iter()
            .filter_map(|s| s.id.as_deref())
            .map(RestaurantId::new);
        Ok(valid.chain(invalid).collect())
    }
}
