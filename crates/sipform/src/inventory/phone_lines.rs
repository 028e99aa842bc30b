//! The platform's `phone_lines` table (database mode): one row per restaurant, the number
//! routed to its agent and the SIP trunk credentials, the password encrypted (see
//! [`crate::crypto`]).
//!
//! The table sits beside `restaurants` (same schema). When it does not exist, restaurants
//! carry no line (the platform before phone lines). A row that cannot be used (an unknown
//! provider, two rows for one restaurant, a password that does not decrypt) makes its
//! restaurant skipped by validate, naming the line and the restaurant: the others go on.

use std::collections::HashMap;

use super::cells::Cells;
use crate::crypto::{self, CryptoError, MasterKey};
use crate::db::{with_pool, Db, DbError, TableName};
use crate::front::diagnostics::Sourced;
use crate::model::secret::Secret;
use crate::model::spec::{PhoneLineSpec, PhoneProvider, PlatformLine, Restaurant, SipTransport};

/// The platform's name for the table.
pub const TABLE: &str = "phone_lines";

/// Text columns, in select order, then `is_active`.
const TEXT: &[&str] = &[
    "id",
    "restaurant_id",
    "phone_number",
    "provider",
    "sip_transport",
    "stun_server",
    "sip_domain",
    "sip_username",
    "sip_password",
    "twilio_trunk_sid",
];

/// One row, decoded but not yet interpreted.
struct LineRow {
    text: Vec<Option<String>>,
    is_active: Option<bool>,
}

impl LineRow {
    fn get(&self, column: &str) -> Option<&str> {
        let i = TEXT.iter().position(|c| *c == column)?;
        self.text[i].as_deref()
    }
}

/// `phone_lines` next to `restaurants` (`platform.restaurants` → `platform.phone_lines`).
pub fn beside(restaurants: &TableName) -> TableName {
    TableName {
        schema: restaurants.schema.clone(),
        name: TABLE.to_string(),
    }
}

async fn exists(db: &Db, table: &TableName) -> Result<bool, DbError> {
    let n: i64 =
        match db.pool() {
            crate::db::Pool::Sqlite(p) => {
                let schema = table.schema.clone().unwrap_or_else(|| "main".into());
                sqlx::query_scalar("SELECT count(*) FROM pragma_table_info(?1, ?2)")
                    .bind(&table.name)
                    .bind(schema)
                    .fetch_one(p)
                    .await
            }
            crate::db::Pool::Postgres(p) => sqlx::query_scalar(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0",
            )
            .bind(table.quoted())
            .fetch_one(p)
            .await,
        }
        .map_err(|e| db.err(&format!("looking for table {table}"), e))?;
    Ok(n > 0)
}

async fn read_rows(db: &Db, table: &TableName) -> Result<Vec<Result<LineRow, String>>, DbError> {
    let mut cols: Vec<String> = TEXT
        .iter()
        .map(|c| format!("CAST({} AS TEXT)", crate::db::quote_ident(c)))
        .collect();
    cols.push(crate::db::quote_ident("is_active"));
    let sql = format!(
        "SELECT {} FROM {} ORDER BY 1",
        cols.join(", "),
        table.quoted()
    );
    Ok(with_pool!(db, p => {
        let rows = sqlx::query(&sql)
            .fetch_all(p)
            .await
            .map_err(|e| db.err(&format!("reading table {table}"), e))?;
        rows.iter()
            .map(|row| {
                let mut text = Vec::with_capacity(TEXT.len());
                for (i, c) in TEXT.iter().enumerate() {
                    text.push(row.text(i).map_err(|m| format!("column {c}: {m}"))?);
                }
                let is_active = row
                    .boolean(TEXT.len())
                    .map_err(|m| format!("column is_active: {m}"))?;
                Ok(LineRow { text, is_active })
            })
            .collect()
    }))
}

/// A restaurant's one row: the line id, its spec, its stored password.
type Picked = (String, PhoneLineSpec, Option<String>);

/// The spec of a row (its password apart), or why it cannot be used.
fn spec_of(row: &LineRow) -> Result<PhoneLineSpec, String> {
    let phone_number = row
        .get("phone_number")
        .ok_or("phone_number is NULL")?
        .trim()
        .to_string();
    if !crate::model::spec::is_e164(&phone_number) {
        return Err(format!(
            "phone_number {phone_number:?} is not E.164 (`+` and up to 15 digits)"
        ));
    }
    let provider = match row.get("provider").map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(match p.to_ascii_lowercase().as_str() {
            "sip" => PhoneProvider::Sip,
            "twilio" => PhoneProvider::Twilio,
            _ => return Err(format!("provider {p:?} is not one of sip, twilio")),
        }),
    };
    let sip_transport = match row.get("sip_transport").map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(match t.to_ascii_lowercase().as_str() {
            "udp" => SipTransport::Udp,
            "tcp" => SipTransport::Tcp,
            "tls" => SipTransport::Tls,
            _ => return Err(format!("sip_transport {t:?} is not one of udp, tcp, tls")),
        }),
    };
    let text = |c: &str| row.get(c).filter(|v| !v.is_empty()).map(str::to_string);
    Ok(PhoneLineSpec {
        phone_number,
        // The platform's column default; the spec's own rule (sip with a domain) applies only
        // to files, where the provider may be left out.
        provider: Some(provider.unwrap_or(PhoneProvider::Twilio)),
        sip_transport,
        stun_server: text("stun_server"),
        sip_domain: text("sip_domain"),
        sip_username: text("sip_username"),
        sip_password_env: None,
        twilio_trunk_sid: text("twilio_trunk_sid"),
        is_active: row.is_active.unwrap_or(true),
    })
}

/// Gives each restaurant of `restaurants` its row of the `phone_lines` table beside `table`
/// (nothing when the table does not exist), passwords decrypted with `ENCRYPTION_KEY` on every
/// core. A problem is kept on the restaurant ([`PlatformLine::password`]) for validate to
/// skip it with; a row of no listed restaurant is not decrypted.
pub(crate) async fn attach(
    db: &Db,
    table: &TableName,
    restaurants: &mut [Sourced<Restaurant>],
) -> Result<(), DbError> {
    let lines = beside(table);
    if !exists(db, &lines).await? {
        return Ok(());
    }
    let mut by_restaurant = by_restaurant(read_rows(db, &lines).await?, &lines);
    // Pick each restaurant's row, then decrypt every password at once.
    let mut picked: Vec<(usize, Result<Picked, String>)> = Vec::new();
    for (i, r) in restaurants.iter().enumerate() {
        let rid = r.value.id.as_str().to_ascii_lowercase();
        if let Some(rows) = by_restaurant.remove(&rid) {
            picked.push((i, pick(&rows, &lines)));
        }
    }
    let mut decrypted = decrypt(&picked).await.into_iter();
    for (i, p) in picked {
        let r = &mut restaurants[i].value;
        let who = format!("restaurant {} ({:?})", r.id, r.name);
        match p {
            Ok((id, spec, stored)) => {
                let password = match stored {
                    None => Ok(None),
                    Some(_) => password_of(&id, &who, decrypted.next()),
                };
                r.phone_line = Some(spec);
                r.platform.phone_line = Some(PlatformLine { id, password });
            }
            Err(m) => {
                r.platform.phone_line = Some(PlatformLine {
                    id: "?".into(),
                    password: Err(format!("{who}: {m}; nothing is sent for this restaurant")),
                });
            }
        }
    }
    Ok(())
}

/// The rows of table `lines`, by restaurant id (lowercased); rows without one are ignored,
/// with a warning.
fn by_restaurant(
    rows: Vec<Result<LineRow, String>>,
    lines: &TableName,
) -> HashMap<String, Vec<Result<LineRow, String>>> {
    let mut by_restaurant: HashMap<String, Vec<Result<LineRow, String>>> = HashMap::new();
    let mut unreadable = 0usize;
    for row in rows {
        let key = match &row {
            Ok(r) => r.get("restaurant_id").map(str::to_ascii_lowercase),
            Err(_) => None,
        };
        match key {
            Some(k) => by_restaurant.entry(k).or_default().push(row),
            None => unreadable += 1,
        }
    }
    if unreadable > 0 {
        tracing::warn!(target: crate::LOG_TARGET, "{unreadable} row(s) of table {lines} have no readable restaurant_id: ignored");
    }
    by_restaurant
}

/// A restaurant's one line from its rows, or why there is none it can use.
fn pick(rows: &[Result<LineRow, String>], lines: &TableName) -> Result<Picked, String> {
    match rows {
        [Ok(row)] => match (row.get("id"), spec_of(row)) {
            (Some(id), Ok(spec)) => Ok((
                id.to_string(),
                spec,
                row.get("sip_password").map(str::to_string),
            )),
            (None, _) => Err("a row of table phone_lines for it has a NULL id".to_string()),
            (Some(id), Err(m)) => Err(format!("phone line {id}: {m}")),
        },
        [Err(m)] => Err(format!("its row of table {lines} cannot be read: {m}")),
        many => Err(format!(
            "{} rows of table {lines} claim it (the platform keeps one per restaurant)",
            many.len()
        )),
    }
}

/// Every stored password of `picked`, decrypted at once on every core, in order.
async fn decrypt(
    picked: &[(usize, Result<Picked, String>)],
) -> Vec<Result<Secret<String>, CryptoError>> {
    let wanted: Vec<(String, String)> = picked
        .iter()
        .filter_map(|(_, p)| match p {
            Ok((id, _, Some(stored))) => Some((id.clone(), stored.clone())),
            _ => None,
        })
        .collect();
    let master = if wanted.iter().any(|(_, s)| crypto::is_encrypted(s)) {
        Some(MasterKey::from_env())
    } else {
        None
    };
    match master {
        Some(Err(e)) => wanted.iter().map(|_| Err(e.clone())).collect(),
        Some(Ok(m)) => tokio::task::spawn_blocking(move || crypto::decrypt_all(Some(&m), &wanted))
            .await
            .unwrap_or_default(),
        None => crypto::decrypt_all(None, &wanted),
    }
}

/// Line `id`'s password from its decryption (remembered for apply), or why not.
fn password_of(
    id: &str,
    who: &str,
    decrypted: Option<Result<Secret<String>, CryptoError>>,
) -> Result<Option<Secret<String>>, String> {
    match decrypted {
        Some(Ok(pw)) => {
            crypto::remember(id, pw.clone());
            Ok(Some(pw))
        }
        Some(Err(e)) => Err(format!(
            "phone line {id} of {who}: sip_password: {e}; nothing is sent for this restaurant"
        )),
        None => Err(format!("phone line {id} of {who}: not decrypted")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cols: &[(&str, &str)]) -> LineRow {
        LineRow {
            text: TEXT
                .iter()
                .map(|c| {
                    cols.iter()
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| v.to_string())
                })
                .collect(),
            is_active: None,
        }
    }

    #[test]
    fn rows_become_specs_or_say_why_not() {
        let s = spec_of(&row(&[
            ("phone_number", "+33100000001"),
            ("sip_transport", "TLS"),
        ]))
        .unwrap();
        assert_eq!(
            s.provider,
            Some(PhoneProvider::Twilio),
            "the column's default"
        );
        assert_eq!(s.sip_transport, Some(SipTransport::Tls));
        assert!(s.is_active);
        let e = spec_of(&row(&[("phone_number", "+33 1 00")])).unwrap_err();
        assert!(e.contains("E.164"), "{e}");
        let e = spec_of(&row(&[("phone_number", "+331"), ("provider", "pots")])).unwrap_err();
        assert!(e.contains("pots"), "{e}");
        assert!(spec_of(&row(&[])).is_err());
        assert_eq!(
            beside(&TableName::parse("p.restaurants")).to_string(),
            "p.phone_lines"
        );
    }
}
