//! Each restaurant's own input: a valid id no other restaurant claims, and the phone line it
//! wants with its password. A problem here skips that restaurant only.

use std::collections::HashMap;

use super::Entry;
use crate::escape::excerpt;
use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin};
use crate::model::secret::Secret;
use crate::model::spec::{
    is_e164, parse_timezone, restaurant_id_problem, DesiredPhoneLine, PhoneLineSource,
    PhoneLineSpec, PhoneProvider, Project, Restaurant,
};

/// The problems of each entry's id, by entry: an id that is not one, or one claimed twice.
pub(super) fn id_problems(entries: &[Entry]) -> Vec<Diagnostics> {
    let mut problems: Vec<Diagnostics> = vec![Diagnostics::default(); entries.len()];
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let id = e.restaurant.value.id.as_str();
        if let Some(m) = restaurant_id_problem(id) {
            problems[i].push(Diagnostic::new(e.origin_of("id"), "id", m));
            continue;
        }
        by_id.entry(id).or_default().push(i);
    }
    // Two restaurants claiming one id: which is right cannot be told, so neither is planned.
    for (id, at) in &by_id {
        if at.len() < 2 {
            continue;
        }
        for &i in at {
            let others: Vec<String> = at
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| entries[j].origin_of("id").to_string())
                .collect();
            problems[i].push(Diagnostic::new(
                entries[i].origin_of("id"),
                "id",
                format!(
                    "duplicate restaurant id `{id}` (also at {})",
                    others.join(", ")
                ),
            ));
        }
    }
    problems
}

/// The voices the server's realtime model (`aiModel: gpt-realtime`) speaks with: any other
/// `ai_voice` is refused by the server at call time, so it is refused here, per restaurant.
pub(crate) const KNOWN_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "marin", "sage", "shimmer", "verse",
];

/// The problems of each entry's values whatever the source let in (SQLite stores any value in
/// any column): a NUL byte in any text (a PostgreSQL-backed server rejects it, and the
/// request would be retried forever), a voice the server does not know, a transfer number
/// that is not E.164, a call duration out of range. Each names the row or file and column.
pub(super) fn value_problems(entries: &[Entry], problems: &mut [Diagnostics]) {
    for (i, e) in entries.iter().enumerate() {
        for (column, message) in row_value_problems(&e.restaurant.value) {
            problems[i].push(Diagnostic::new(e.origin_of(column), column, message));
        }
    }
}

/// [`value_problems`] of one restaurant: (column, why).
fn row_value_problems(r: &Restaurant) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let texts = [
        ("name", Some(&r.name)),
        ("phone", r.phone.as_ref()),
        ("contact_email", r.contact_email.as_ref()),
        ("ai_voice", r.ai_voice.as_ref()),
        ("timezone", r.timezone.as_ref()),
        ("transfer_phone_number", r.transfer_phone_number.as_ref()),
        ("chat_title", r.chat_title.as_ref()),
    ];
    for (column, value) in texts {
        if value.is_some_and(|v| v.contains('\0')) {
            out.push((
                column,
                "contains a NUL byte (U+0000), which the server cannot store: this restaurant is skipped".to_string(),
            ));
        }
    }
    if let Some(v) = r.ai_voice.as_deref().filter(|v| !KNOWN_VOICES.contains(v)) {
        out.push((
            "ai_voice",
            format!(
                "{} is not a voice the server knows (one of {}): this restaurant is skipped",
                excerpt(v),
                KNOWN_VOICES.join(", ")
            ),
        ));
    }
    if let Err(e) = parse_timezone(r.timezone.as_deref()) {
        out.push(("timezone", e));
    }
    if let Some(v) = r.transfer_phone_number.as_deref().filter(|v| !is_e164(v)) {
        out.push((
            "transfer_phone_number",
            format!(
                "{} is not a phone number in E.164 form (`+` then up to 15 digits): this restaurant is skipped",
                excerpt(v)
            ),
        ));
    }
    if let Some(n) = r
        .max_call_duration_sec
        .filter(|n| !(1..=86_400).contains(n))
    {
        out.push((
            "max_call_duration_sec",
            format!("{n} is not a call duration between 1 and 86400 seconds: this restaurant is skipped"),
        ));
    }
    out
}

/// The phone line each entry without problems so far wants, by entry. The password is read
/// from the environment variable a block names; one that is unset refuses the restaurant
/// (naming the variable, never a value), its problem in `problems`.
pub(super) fn phone_lines(
    project: &Project,
    entries: &[Entry],
    problems: &mut [Diagnostics],
) -> Vec<Option<DesiredPhoneLine>> {
    let mut lines: Vec<Option<DesiredPhoneLine>> = vec![None; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if !problems[i].is_empty() {
            continue;
        }
        match phone_line(project, &e.restaurant.value) {
            Ok(l) => lines[i] = l,
            Err(m) => {
                let (at, field) = password_origin(e);
                problems[i].push(Diagnostic::new(at, field, m))
            }
        }
    }
    lines
}

/// Where a phone line's password is given: its platform row, the block's variable name in the
/// restaurant's file, or the restaurant's row.
fn password_origin(e: &Entry) -> (Origin, &'static str) {
    match (&e.doc, &e.restaurant.value.platform.phone_line) {
        (_, Some(line)) => (
            Origin::Row {
                table: "phone_lines".into(),
                key: line.id.clone(),
            },
            "sip_password",
        ),
        (Some(d), None) => (
            d.origin("/phone_line/sip_password_env"),
            "phone_line.sip_password_env",
        ),
        (None, None) => (e.restaurant.origin.clone(), "phone_line.sip_password_env"),
    }
}

/// The phone line `r` wants under `project.phone_lines`; `Err` says why it is refused.
fn phone_line(project: &Project, r: &Restaurant) -> Result<Option<DesiredPhoneLine>, String> {
    match project.phone_lines.source {
        PhoneLineSource::RestaurantPhone => Ok(r.phone.as_ref().map(|phone| DesiredPhoneLine {
            spec: PhoneLineSpec {
                phone_number: phone.clone(),
                provider: Some(PhoneProvider::Twilio),
                sip_transport: None,
                stun_server: None,
                sip_domain: None,
                sip_username: None,
                sip_password_env: None,
                twilio_trunk_sid: None,
                is_active: true,
            },
            password: None,
            platform_line: None,
        })),
        PhoneLineSource::Block => block_line(r),
    }
}

/// The phone line block of `r`, its password from the platform's row or the environment.
fn block_line(r: &Restaurant) -> Result<Option<DesiredPhoneLine>, String> {
    // A platform row that could not be read or decrypted refuses the restaurant.
    if let Some(Err(m)) = r.platform.phone_line.as_ref().map(|l| &l.password) {
        return Err(m.clone());
    }
    let Some(spec) = &r.phone_line else {
        return Ok(None);
    };
    let password = match (&spec.sip_password_env, &r.platform.phone_line) {
        // The platform's table: decrypted by the inventory, or why it could not be.
        (None, Some(line)) => line.password.clone()?,
        (None, None) => None,
        (Some(name), _) => match std::env::var(name) {
            Ok(v) if !v.is_empty() => Some(Secret::new(v)),
            _ => {
                return Err(format!(
                    "names the environment variable `{name}`, which is not set (or empty): this restaurant is skipped, nothing is sent for it"
                ))
            }
        },
    };
    let mut spec = spec.clone();
    spec.provider = Some(spec.provider());
    let platform_line = r.platform.phone_line.as_ref().map(|l| l.id.clone());
    Ok(Some(DesiredPhoneLine {
        spec,
        password,
        platform_line,
    }))
}
