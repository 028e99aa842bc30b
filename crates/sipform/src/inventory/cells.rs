//! Typed cell access to a row of the platform's tables, per engine: shared by the restaurants
//! table and the phone lines beside it.

use sqlx::Row;

/// Typed cell access, per engine (SQLite stores booleans as integers, or as text).
pub(crate) trait Cells {
    fn text(&self, i: usize) -> Result<Option<String>, String>;
    fn boolean(&self, i: usize) -> Result<Option<bool>, String>;

    /// A whole number, selected as text (`CAST(… AS TEXT)`): SQLite lets any value into an
    /// integer column, and its own `CAST('abc' AS INTEGER)` is 0, so the value is parsed
    /// here, where `'abc'` is an error and not a number.
    fn int(&self, i: usize) -> Result<Option<i64>, String> {
        self.text(i)?.as_deref().map(whole_number).transpose()
    }
}

/// `12`, ` 12 ` or `12.0` (a REAL holding a whole number); anything else is an error quoting
/// the value, shortened.
pub(crate) fn whole_number(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    match t.parse::<f64>() {
        Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(format!(
            "{} is not a whole number",
            crate::escape::excerpt(s)
        )),
    }
}

impl Cells for sqlx::postgres::PgRow {
    fn text(&self, i: usize) -> Result<Option<String>, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
    fn boolean(&self, i: usize) -> Result<Option<bool>, String> {
        self.try_get(i)
            .map_err(|_| "expected a boolean column".to_string())
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
}

#[cfg(test)]
mod tests {
    use super::whole_number;

    #[test]
    fn whole_numbers_only() {
        assert_eq!(whole_number(" 600 "), Ok(600));
        assert_eq!(whole_number("600.0"), Ok(600));
        for bad in ["abc", "", "6e", "600.5", "NaN", "inf"] {
            let e = whole_number(bad).expect_err(bad);
            assert!(e.contains("is not a whole number"), "{e}");
        }
    }
}
