//! The SQL of the change feed: the log table and the triggers filling it, on the restaurants
//! table and (when it exists) on `phone_lines` beside it.
//!
//! No trigger names a column in its definition (no `UPDATE OF col`, no `WHEN` on PostgreSQL),
//! so the platform's `ALTER COLUMN … TYPE`, `DROP COLUMN` and `ADD COLUMN` never meet a
//! dependency on a column: the PostgreSQL functions compare the whole row as JSON minus the
//! written-back columns, inside their body, which is not a dependency. SQLite cannot compare a
//! row without naming its columns, so its update trigger names them in `WHEN`; the platform's
//! ORM rebuilds a SQLite table on a schema change (which drops every trigger), and the
//! controller's self-check puts them back ([`super::catalog`]).

use crate::db::{quote_ident, TableName};

/// The PostgreSQL channel the trigger notifies (a wake-up only: the ids are in the log).
pub(crate) const CHANNEL: &str = "sipform_restaurant_changes";

/// The version of the feed's SQL, in a comment on each trigger: an older feed (whose trigger
/// named columns) is not "installed" and is replaced by `install-trigger`.
pub(crate) const VERSION_MARK: &str = "sipform feed 2";

/// The columns sipform writes back: an update of only these is not a change (the controller's
/// own write-back must not wake it), unless one of them is emptied (the platform wiped it: the
/// controller must put it back).
pub(crate) const WRITE_BACK: &[&str] = &[
    "agent_id",
    "final_customer_id",
    "agent_api_token",
    "agent_public_token",
];

/// Every name the feed's objects take, derived from the restaurants table's.
#[derive(Debug, Clone)]
pub struct Names {
    pub table: TableName,
    /// `phone_lines` beside the table.
    pub lines: TableName,
    pub log: TableName,
    /// PostgreSQL: the functions of the restaurants and the lines triggers.
    pub function: TableName,
    pub lines_function: TableName,
}

impl Names {
    pub fn new(table: &TableName, lines: TableName) -> Names {
        let named = |suffix: &str| TableName {
            schema: table.schema.clone(),
            name: format!("{}_{suffix}", table.name),
        };
        Names {
            table: table.clone(),
            lines,
            log: named("sipform_changes"),
            function: named("sipform_notify"),
            lines_function: named("sipform_lines_notify"),
        }
    }

    /// The triggers on the restaurants table, unquoted.
    pub fn triggers(&self, postgres: bool) -> Vec<String> {
        let base = &self.table.name;
        if postgres {
            vec![format!("{base}_sipform_changes")]
        } else {
            ["insert", "update", "delete"]
                .iter()
                .map(|op| format!("{base}_sipform_{op}"))
                .collect()
        }
    }

    /// The triggers on `phone_lines`, unquoted.
    pub(crate) fn line_triggers(&self, postgres: bool) -> Vec<String> {
        let base = &self.table.name;
        if postgres {
            vec![format!("{base}_sipform_lines")]
        } else {
            ["insert", "update", "delete"]
                .iter()
                .map(|op| format!("{base}_sipform_lines_{op}"))
                .collect()
        }
    }
}

/// What the SQL needs besides the names: the id column and the columns compared on SQLite
/// (already mapped by `inventory.columns`, unquoted), and whether `phone_lines` exists.
pub struct Shape {
    pub id: String,
    /// SQLite: the columns whose change is a change (sipform's inputs).
    pub watched: Vec<String>,
    /// The written-back columns, as the table names them.
    pub write_back: Vec<String>,
    pub lines: bool,
}

/// A dollar-quote tag (`$sipform$`, else `$sipform_1$`, …) that does not occur in `body`, so
/// no identifier inside the body can end it early.
fn dollar_tag(body: &str) -> String {
    let mut tag = "$sipform$".to_string();
    let mut n = 0u32;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$sipform_{n}$");
    }
    tag
}

/// An identifier as a `--` comment shows it: on one line (a line break in a quoted identifier
/// would end the comment and run what follows as SQL).
fn in_comment(quoted: &str) -> String {
    crate::escape::escape_for(quoted, false).into_owned()
}

/// A SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The PostgreSQL SQL: idempotent, one transaction's worth.
pub fn postgres(n: &Names, shape: &Shape) -> String {
    let table = n.table.quoted();
    let log = n.log.quoted();
    let id = quote_ident(&shape.id);
    let skip: Vec<String> = shape.write_back.iter().map(|c| literal(c)).collect();
    let skip = format!("ARRAY[{}]::text[]", skip.join(", "));
    let emptied: Vec<String> = shape
        .write_back
        .iter()
        .map(|c| {
            let c = literal(c);
            format!(
                "coalesce(to_jsonb(NEW) -> {c} = 'null'::jsonb AND to_jsonb(OLD) -> {c} <> 'null'::jsonb, false)"
            )
        })
        .collect();
    let emptied = if emptied.is_empty() {
        "false".to_string()
    } else {
        emptied.join("\n            OR ")
    };
    let body = format!(
        "
DECLARE
    rid text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        rid := OLD.{id}::text;
    ELSE
        -- An update of the written-back columns only is sipform's own: not a change.
        IF TG_OP = 'UPDATE'
            AND (to_jsonb(NEW) - {skip}) = (to_jsonb(OLD) - {skip})
            AND NOT ({emptied}) THEN
            RETURN NULL;
        END IF;
        rid := NEW.{id}::text;
    END IF;
    INSERT INTO {log} (restaurant_id) VALUES (rid);
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END
"
    );
    let [trig] = n.triggers(true).try_into().unwrap_or_default();
    let mut sql = format!(
        "-- sipform controller: a change log of {shown}, filled by triggers, and a NOTIFY on
-- channel {CHANNEL}. Idempotent: safe to run again.
CREATE TABLE IF NOT EXISTS {log} (
    seq bigserial PRIMARY KEY,
    restaurant_id text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
{function}
DROP TRIGGER IF EXISTS {trig} ON {table};
CREATE TRIGGER {trig}
    AFTER INSERT OR UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {func}();
COMMENT ON TRIGGER {trig} ON {table} IS {mark};
",
        shown = in_comment(&table),
        function = pg_function(&n.function.quoted(), &body),
        trig = quote_ident(&trig),
        func = n.function.quoted(),
        mark = literal(VERSION_MARK),
    );
    if shape.lines {
        sql.push_str(&postgres_lines(n));
    }
    sql
}

fn pg_function(name: &str, body: &str) -> String {
    let tag = dollar_tag(body);
    format!(
        "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS {tag}{body}{tag};"
    )
}

/// `phone_lines`' trigger: the line's restaurant is logged (both, when a line moves).
fn postgres_lines(n: &Names) -> String {
    let lines = n.lines.quoted();
    let log = n.log.quoted();
    let body = format!(
        "
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO {log} (restaurant_id) VALUES (OLD.restaurant_id::text);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.restaurant_id IS DISTINCT FROM OLD.restaurant_id) THEN
        INSERT INTO {log} (restaurant_id) VALUES (NEW.restaurant_id::text);
    END IF;
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END
"
    );
    let [trig] = n.line_triggers(true).try_into().unwrap_or_default();
    format!(
        "{function}
DROP TRIGGER IF EXISTS {trig} ON {lines};
CREATE TRIGGER {trig}
    AFTER INSERT OR UPDATE OR DELETE ON {lines}
    FOR EACH ROW EXECUTE FUNCTION {func}();
COMMENT ON TRIGGER {trig} ON {lines} IS {mark};
",
        function = pg_function(&n.lines_function.quoted(), &body),
        trig = quote_ident(&trig),
        func = n.lines_function.quoted(),
        mark = literal(VERSION_MARK),
    )
}

/// The SQLite SQL: idempotent. Trigger bodies name the log unqualified (SQLite requires it).
pub fn sqlite(n: &Names, shape: &Shape) -> String {
    let table = n.table.quoted();
    let log = n.log.quoted();
    let bare_log = quote_ident(&n.log.name);
    let id = quote_ident(&shape.id);
    let mut changed: Vec<String> = shape
        .watched
        .iter()
        .map(|c| format!("OLD.{c} IS NOT NEW.{c}", c = quote_ident(c)))
        .collect();
    changed.extend(shape.write_back.iter().map(|c| {
        format!(
            "(NEW.{c} IS NULL AND OLD.{c} IS NOT NULL)",
            c = quote_ident(c)
        )
    }));
    let [ins, upd, del]: [String; 3] = n.triggers(false).try_into().unwrap_or_default();
    let mark = format!("/* {VERSION_MARK} */");
    let mut sql = format!(
        "-- sipform controller: a change log of {shown}, filled by triggers. Idempotent.
CREATE TABLE IF NOT EXISTS {log} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    restaurant_id TEXT NOT NULL,
    changed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
DROP TRIGGER IF EXISTS {ins};
CREATE TRIGGER {ins} AFTER INSERT ON {table}
BEGIN {mark} INSERT INTO {bare_log} (restaurant_id) VALUES (CAST(NEW.{id} AS TEXT)); END;
DROP TRIGGER IF EXISTS {upd};
CREATE TRIGGER {upd} AFTER UPDATE ON {table}
WHEN {changed}
BEGIN {mark} INSERT INTO {bare_log} (restaurant_id) VALUES (CAST(NEW.{id} AS TEXT)); END;
DROP TRIGGER IF EXISTS {del};
CREATE TRIGGER {del} AFTER DELETE ON {table}
BEGIN {mark} INSERT INTO {bare_log} (restaurant_id) VALUES (CAST(OLD.{id} AS TEXT)); END;
",
        shown = in_comment(&table),
        ins = quote_ident(&ins),
        upd = quote_ident(&upd),
        del = quote_ident(&del),
        changed = changed.join("\n    OR "),
    );
    if shape.lines {
        sql.push_str(&sqlite_lines(n, &bare_log, &mark));
    }
    sql
}

fn sqlite_lines(n: &Names, log: &str, mark: &str) -> String {
    let lines = n.lines.quoted();
    let [ins, upd, del]: [String; 3] = n.line_triggers(false).try_into().unwrap_or_default();
    let put = |row: &str| {
        format!("INSERT INTO {log} (restaurant_id) VALUES (CAST({row}.\"restaurant_id\" AS TEXT));")
    };
    format!(
        "DROP TRIGGER IF EXISTS {ins};
CREATE TRIGGER {ins} AFTER INSERT ON {lines}
BEGIN {mark} {new} END;
DROP TRIGGER IF EXISTS {upd};
CREATE TRIGGER {upd} AFTER UPDATE ON {lines}
BEGIN {mark} {new}
    INSERT INTO {log} (restaurant_id) SELECT CAST(OLD.\"restaurant_id\" AS TEXT)
        WHERE OLD.\"restaurant_id\" IS NOT NEW.\"restaurant_id\"; END;
DROP TRIGGER IF EXISTS {del};
CREATE TRIGGER {del} AFTER DELETE ON {lines}
BEGIN {mark} {old} END;
",
        ins = quote_ident(&ins),
        upd = quote_ident(&upd),
        del = quote_ident(&del),
        new = put("NEW"),
        old = put("OLD"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(lines: bool) -> Shape {
        Shape {
            id: "id".into(),
            watched: vec!["name".into(), "phone".into()],
            write_back: vec!["agent_id".into()],
            lines,
        }
    }

    fn names() -> Names {
        let t = TableName::parse("restaurants");
        Names::new(&t, TableName::parse("phone_lines"))
    }

    #[test]
    fn postgres_triggers_name_no_column() {
        let sql = postgres(&names(), &shape(true));
        for line in sql.lines().filter(|l| l.contains("AFTER ")) {
            assert!(!line.contains(" OF "), "{line}");
            assert!(!line.contains("WHEN"), "{line}");
        }
        assert!(sql.contains("\"restaurants_sipform_lines\""), "{sql}");
        assert!(sql.contains(VERSION_MARK));
    }

    #[test]
    fn sqlite_lines_are_optional() {
        let without = sqlite(&names(), &shape(false));
        assert!(!without.contains("phone_lines"), "{without}");
        let with = sqlite(&names(), &shape(true));
        assert!(with.contains("AFTER UPDATE ON \"phone_lines\""), "{with}");
        assert!(!with.contains("UPDATE OF"), "{with}");
    }

    #[test]
    fn dollar_tag_avoids_the_body() {
        assert_eq!(dollar_tag("x"), "$sipform$");
        assert_eq!(dollar_tag("a$sipform$b"), "$sipform_1$");
    }
}
