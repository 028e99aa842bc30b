//! `sipform status` for people: the counts, the controller's feed and queue when the report
//! comes from one, then one line per restaurant (name, id, status, when, reason). Tenant
//! values (names, reasons quoting them) are escaped for the terminal.

use std::fmt::Write as _;

use crate::escape::escape;
use crate::ops::status::{Health, StatusReport};

/// The report as a table.
pub fn status(r: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Revision: {} (as of {})",
        r.revision.as_deref().unwrap_or("unknown"),
        r.generated_at
    );
    let _ = writeln!(out, "{}", counts_line(r));
    if r.feed.is_some() {
        let _ = writeln!(out, "{}\n{}", feed_line(r), queue_line(r));
    }
    if r.restaurants.is_empty() {
        return out;
    }
    let name_of = |n: &Option<String>| escape(n.as_deref().unwrap_or("-")).into_owned();
    let width = |f: &dyn Fn(&crate::ops::status::RestaurantStatus) -> usize, min: usize| {
        r.restaurants.iter().map(f).max().unwrap_or(0).max(min)
    };
    let wn = width(&|x| name_of(&x.name).chars().count(), "RESTAURANT".len());
    let wi = width(&|x| x.id.as_str().chars().count(), "ID".len());
    let ws = width(&|x| x.status.words().len(), "STATUS".len());
    let ww = width(&|x| x.when.as_deref().map_or(1, str::len), "WHEN".len());
    let wr = width(&|x| revision_of(x).chars().count(), "REVISION".len());
    out.push('\n');
    let _ = writeln!(
        out,
        "{:wn$}  {:wi$}  {:ws$}  {:wr$}  {:ww$}  REASON",
        "RESTAURANT", "ID", "STATUS", "REVISION", "WHEN"
    );
    for x in &r.restaurants {
        let reason = x.reason.as_deref().map_or("-".into(), escape);
        let line = format!(
            "{:wn$}  {:wi$}  {:ws$}  {:wr$}  {:ww$}  {reason}",
            name_of(&x.name),
            escape(x.id.as_str()),
            x.status.words(),
            revision_of(x),
            x.when.as_deref().unwrap_or("-"),
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if r.feed.is_none() && r.restaurants.iter().all(|x| x.when.is_none()) {
        out.push_str("\nAs recorded by the last apply; `--refresh` compares with the server.\n");
    }
    out
}

/// The revision a restaurant runs, and the commit it was rolled back from if it was.
fn revision_of(x: &crate::ops::status::RestaurantStatus) -> String {
    match (&x.revision, &x.rolled_back_from) {
        (None, _) => "-".into(),
        (Some(r), None) => escape(r).into_owned(),
        (Some(r), Some(from)) => format!("{} (rollback from {})", escape(r), escape(from)),
    }
}

/// `3 restaurants: 2 synced, 1 parked` (the statuses present, in order).
pub(crate) fn counts_line(r: &StatusReport) -> String {
    let parts: Vec<String> = Health::ALL
        .iter()
        .filter_map(|h| {
            let n = r.counts.get(h).copied().unwrap_or(0);
            (n > 0).then(|| format!("{n} {}", h.words()))
        })
        .collect();
    let total = r.restaurants.len();
    if parts.is_empty() {
        format!("{total} restaurants")
    } else {
        format!("{total} restaurants: {}", parts.join(", "))
    }
}

/// The controller's change feed in words.
pub fn feed_line(r: &StatusReport) -> String {
    let f = r.feed.unwrap_or_default();
    format!(
        "Feed: {}, change-log trigger {}",
        if f.connected {
            "connected"
        } else {
            "disconnected"
        },
        if f.installed {
            "installed"
        } else {
            "not installed"
        }
    )
}

/// The controller's queue in words.
pub fn queue_line(r: &StatusReport) -> String {
    let q = r.queue.unwrap_or_default();
    format!(
        "Queue: {} waiting, {} due, {} parked",
        q.depth, q.due, q.parked
    )
}
