//! Typed cell access to a row of the platform's tables, per engine: shared by the restaurants
//! table and the phone lines beside it.

use sqlx::Row;

/// Typed cell access, per engine (SQLite stores booleans as integers, or as text).
pub(crate) trait Cells {
    fn text(&self, i: usize) -> Result<Option<String>, String>;
    fn boolean(&self, i: usize) -> Result<Option<bool>, String>;
    fn int(&self, i: usize) -> Result<Option<i64>, String>;
}

impl Cells for sqlx::postgres::PgRow {
    fn text(&self, i: usize) -> Result<Option<String>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn boolean(&self, i: usize) -> Result<Option<bool>, String> {
        self.try_get(i)
            .map_err(|_| "expected a boolean column".to_string())
    }
    fn int(&self, i: usize) -> Result<Option<i64>, String> {
        self.try_get(i)
            .map_err(|_| "expected an integer".to_string())
    }
}

impl Cells for sqlx::sqlite::SqliteRow {
    fn text(&self, i: usize) -> Result<Option<String>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn boolean(&self, i: usize) -> Result<Option<bool>, String> {
        if let Ok(v) = self.try_get::<Option<i64>, _>(i) {
            return Ok(v.map(|n| n != 0));
        }
        match self.try_get::<Option<String>, _>(i) {
            Ok(None) => Ok(None),
            Ok(Some(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "t" | "true" | "yes" => Ok(Some(true)),
                "0" | "f" | "false" | "no" | "" => Ok(Some(false)),
                _ => Err(format!("{s:?} is not a boolean")),
            },
            Err(_) => Err("expected a boolean (0/1)".to_string()),
        }
    }
    fn int(&self, i: usize) -> Result<Option<i64>, String> {
        self.try_get(i)
            .map_err(|_| "expected an integer".to_string())
    }
}
