//! The controller's status for people and machines: `GET /v1/status` (JSON, `?restaurant=<id>`
//! for one) and a small page at `/` that refreshes itself from it. Read-only and free of
//! secrets, so open like `/metrics`. Names and reasons are tenant data: the page escapes them
//! on the server and its script writes them with `textContent` only; a strict
//! Content-Security-Policy allows no inline code and nothing from elsewhere.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sipform::controller::Handle;
use sipform::model::ids::RestaurantId;
use sipform::ops::status::{Health, RestaurantStatus, StatusReport};
use sipform::output;

/// Nothing but this origin's own script, style and `/v1/status`; no frames, forms or plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Rows the page lists in full; the JSON always has every restaurant.
const PAGE_ROWS: usize = 500;

const SCRIPT: &str = include_str!("controller_status.js");
const STYLE: &str = include_str!("controller_status.css");

/// The routes, added to the listener's router.
pub fn routes<S: Clone + Send + Sync + 'static>(handle: Handle) -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/v1/status", get(status))
        .route(
            "/status.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route(
            "/status.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
        .with_state(Arc::new(handle))
}

async fn status(
    State(handle): State<Arc<Handle>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let snap = handle.snapshot();
    let Some(id) = q.get("restaurant") else {
        return (no_store(), Json(snap)).into_response();
    };
    let one = snap.only(&RestaurantId::new(id.as_str()));
    if one.restaurants.is_empty() {
        let body = json!({"error": "the controller knows no such restaurant"});
        return (StatusCode::NOT_FOUND, no_store(), Json(body)).into_response();
    }
    (no_store(), Json(one)).into_response()
}

fn no_store() -> [(header::HeaderName, &'static str); 1] {
    [(header::CACHE_CONTROL, "no-store")]
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn page(State(handle): State<Arc<Handle>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        render(&handle.snapshot()),
    )
        .into_response()
}

/// The page as the server sends it: complete without its script, which then keeps it current.
pub fn render(s: &StatusReport) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>sipform controller</title>\
         <link rel=\"stylesheet\" href=\"/status.css\">\
         <script src=\"/status.js\" defer></script></head><body>\n\
         <h1>sipform controller</h1>\n",
    );
    let revision = s.revision.as_deref().unwrap_or("unknown");
    let _ = writeln!(
        out,
        "<p>Revision <code id=\"revision\">{}</code> · as of <span id=\"generated\">{}</span> \
         · <span id=\"live\">not refreshed</span></p>",
        html(revision),
        html(&s.generated_at)
    );
    let _ = writeln!(
        out,
        "<p id=\"feed\">{}</p>\n<p id=\"queue\">{}</p>",
        html(&output::feed_line(s)),
        html(&output::queue_line(s))
    );
    let rollout = s.rollout.as_ref().map(output::rollout_line);
    let _ = writeln!(
        out,
        "<p id=\"rollout\">{}</p>",
        html(rollout.as_deref().unwrap_or(""))
    );
    counts(&mut out, s);
    let problems: Vec<&RestaurantStatus> = s
        .restaurants
        .iter()
        .filter(|r| r.status.is_problem())
        .collect();
    out.push_str("<h2>Needing attention</h2>\n");
    table(&mut out, "problems", &problems);
    out.push_str("<h2>Every restaurant</h2>\n");
    let all: Vec<&RestaurantStatus> = s.restaurants.iter().take(PAGE_ROWS).collect();
    table(&mut out, "restaurants", &all);
    let more = s.restaurants.len().saturating_sub(PAGE_ROWS);
    let _ = writeln!(
        out,
        "<p id=\"more\">{}</p>\n</body></html>",
        if more > 0 {
            format!("… and {more} more: see /v1/status")
        } else {
            String::new()
        }
    );
    out
}

fn counts(out: &mut String, s: &StatusReport) {
    out.push_str("<table id=\"counts\"><tr>");
    for h in Health::ALL {
        let _ = write!(out, "<th>{}</th>", h.words());
    }
    out.push_str("</tr><tr>");
    for h in Health::ALL {
        let n = s.counts.get(&h).copied().unwrap_or(0);
        let _ = write!(out, "<td data-status=\"{}\">{n}</td>", h.key());
    }
    out.push_str("</tr></table>\n");
}

/// The revision a restaurant runs, and the commit it was rolled back from if it was (the
/// script writes the same on refresh).
fn revision_cell(r: &RestaurantStatus) -> String {
    match (&r.revision, &r.rolled_back_from) {
        (None, _) => String::new(),
        (Some(v), None) => v.clone(),
        (Some(v), Some(from)) => format!("{v} (rollback from {from})"),
    }
}

fn table(out: &mut String, id: &str, rows: &[&RestaurantStatus]) {
    let _ = write!(
        out,
        "<table id=\"{id}\"><thead><tr><th>Restaurant</th><th>Id</th><th>Status</th>\
         <th>Reason</th><th>When</th><th>Revision</th></tr></thead><tbody>"
    );
    for r in rows {
        let cell = |v: Option<&str>| html(v.unwrap_or(""));
        let _ = write!(
            out,
            "<tr class=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            r.status.key(),
            cell(r.name.as_deref()),
            html(r.id.as_str()),
            r.status.words(),
            cell(r.reason.as_deref()),
            cell(r.when.as_deref()),
            html(&revision_cell(r)),
        );
    }
    out.push_str("</tbody></table>\n");
}

/// Text made safe between tags and inside quoted attributes.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipform::controller::status::Board;

    #[test]
    fn tenant_text_is_escaped_and_counts_shown() {
        let board = Board::default();
        let id = RestaurantId::new("r1");
        board.record(
            &id,
            Some("<img src=x onerror=alert(1)>"),
            &sipform::controller::reconcile::Verdict::Fatal("bad \"row\" & <b>".into()),
        );
        let page = render(&board.snapshot(true));
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("bad &quot;row&quot; &amp; &lt;b&gt;"));
        assert!(page.contains("<td data-status=\"parked\">1</td>"));
        assert!(
            !page.contains("<script>"),
            "no inline script: the CSP allows none"
        );
    }
}
