//! How the CLI prints: aligned tables and UTC times for people, JSON for scripts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idempotent_runtime::admin::{self, InFlight, RecordDetails, ReleaseOutcome};
use idempotent_runtime::outbox::DestinationBacklog;
use idempotent_runtime::to_hex;
use serde_json::{Value, json};

use crate::SelectorArgs;

pub(crate) fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

pub(crate) fn print_in_flight(records: &[InFlight], total: u64, stuck_only: bool) {
    let what = |count: u64| match (stuck_only, count) {
        (true, 1) => "stuck record",
        (true, _) => "stuck records",
        (false, 1) => "record in progress",
        (false, _) => "records in progress",
    };
    if records.is_empty() {
        println!("no {}", what(0));
        return;
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            vec![
                if record.stuck { "stuck" } else { "in_progress" }.to_owned(),
                human(record.age),
                record.method.clone(),
                record.route.clone(),
                utc(record.created_at),
                utc(record.locked_until),
                to_hex(&record.key_hash),
                to_hex(&record.scope_hash),
            ]
        })
        .collect();
    let headers = ["STATE", "AGE", "METHOD", "ROUTE", "CREATED AT", "LOCKED UNTIL", "KEY HASH", "SCOPE HASH"];
    let align =
        [Align::Left, Align::Right, Align::Left, Align::Left, Align::Left, Align::Left, Align::Left, Align::Left];
    print!("{}", table(&headers, &rows, &align));
    if u64::try_from(records.len()).unwrap_or(u64::MAX) < total {
        println!("{} of {total} {} (oldest first; --limit for more)", records.len(), what(total));
    } else {
        println!("{total} {}", what(total));
    }
}

/// The outbox's backlog, one line per destination with unsent rows.
pub(crate) fn print_outbox(destinations: &[DestinationBacklog]) {
    if destinations.is_empty() {
        println!("the outbox has no unsent messages");
        return;
    }
    let rows: Vec<Vec<String>> = destinations
        .iter()
        .map(|destination| {
            vec![
                destination.destination.clone(),
                destination.waiting.to_string(),
                human(destination.oldest_unsent),
                destination.failing.to_string(),
                destination.last_error.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let headers = ["DESTINATION", "WAITING", "OLDEST", "FAILING", "LAST ERROR"];
    let align = [Align::Left, Align::Right, Align::Right, Align::Right, Align::Left];
    print!("{}", table(&headers, &rows, &align));
    let waiting: u64 = destinations.iter().map(|destination| destination.waiting).sum();
    let failing: u64 = destinations.iter().map(|destination| destination.failing).sum();
    let plural = |count: u64, one: &'static str, many: &'static str| if count == 1 { one } else { many };
    println!(
        "{waiting} {} waiting in {} {}, {failing} failing",
        plural(waiting, "message", "messages"),
        destinations.len(),
        plural(destinations.len() as u64, "destination", "destinations")
    );
}

pub(crate) fn outbox_json(destinations: &[DestinationBacklog]) -> Value {
    let rows: Vec<Value> = destinations
        .iter()
        .map(|destination| {
            json!({
                "destination": destination.destination,
                "waiting": destination.waiting,
                "oldest_unsent_secs": destination.oldest_unsent.as_secs_f64(),
                "failing": destination.failing,
                "last_error": destination.last_error,
            })
        })
        .collect();
    json!({
        "waiting": destinations.iter().map(|destination| destination.waiting).sum::<u64>(),
        "failing": destinations.iter().map(|destination| destination.failing).sum::<u64>(),
        "oldest_unsent_secs": destinations.iter().map(|destination| destination.oldest_unsent.as_secs_f64()).reduce(f64::max),
        "destinations": rows,
    })
}

pub(crate) fn in_flight_json(record: &InFlight) -> Value {
    json!({
        "state": if record.stuck { "stuck" } else { "in_progress" },
        "method": record.method,
        "route": record.route,
        "key_hash": to_hex(&record.key_hash),
        "scope_hash": to_hex(&record.scope_hash),
        "created_at": utc(record.created_at),
        "locked_until": utc(record.locked_until),
        "age_secs": record.age.as_secs_f64(),
    })
}

pub(crate) fn details_text(record: &RecordDetails) -> String {
    let or_dash = |time: Option<SystemTime>| time.map(utc).unwrap_or_else(|| "-".to_owned());
    let state = match (record.state, record.lease_remaining) {
        (admin::State::InProgress, Some(remaining)) => format!("in_progress (lease holds {} more)", human(remaining)),
        (admin::State::Stuck, _) => "stuck (in progress, lease lapsed: `release` frees it)".to_owned(),
        (admin::State::Expired, _) => "expired (ignored by every request; `purge` deletes it)".to_owned(),
        (state, _) => state.to_string(),
    };
    let headers = if record.header_names.is_empty() { "-".to_owned() } else { record.header_names.join(", ") };
    let body = match (record.body_len, record.state, record.completed_at) {
        (Some(len), _, _) => format!("{len} bytes"),
        (None, _, Some(_)) => "not stored (over the response cap)".to_owned(),
        (None, _, None) => "-".to_owned(),
    };
    let rows = vec![
        vec!["record".to_owned(), format!("{} {}", record.method, record.route)],
        vec!["key hash".to_owned(), to_hex(&record.key_hash)],
        vec!["scope hash".to_owned(), to_hex(&record.scope_hash)],
        vec!["state".to_owned(), state],
        vec!["status".to_owned(), record.status.map(|status| status.to_string()).unwrap_or_else(|| "-".to_owned())],
        vec!["created at".to_owned(), format!("{} ({} ago)", utc(record.created_at), human(record.age))],
        vec!["completed at".to_owned(), or_dash(record.completed_at)],
        vec!["locked until".to_owned(), or_dash(record.locked_until)],
        vec!["expires at".to_owned(), utc(record.expires_at)],
        vec!["headers".to_owned(), headers],
        vec!["body".to_owned(), body],
    ];
    table(&[], &rows, &[Align::Left, Align::Left])
}

pub(crate) fn details_json(record: &RecordDetails) -> Value {
    json!({
        "method": record.method,
        "route": record.route,
        "key_hash": to_hex(&record.key_hash),
        "scope_hash": to_hex(&record.scope_hash),
        "state": record.state.as_str(),
        "status": record.status,
        "created_at": utc(record.created_at),
        "completed_at": record.completed_at.map(utc),
        "locked_until": record.locked_until.map(utc),
        "expires_at": utc(record.expires_at),
        "age_secs": record.age.as_secs_f64(),
        "lease_remaining_secs": record.lease_remaining.map(|remaining| remaining.as_secs_f64()),
        "header_names": record.header_names,
        "body_len": record.body_len,
    })
}

pub(crate) fn release_text(outcome: &ReleaseOutcome, selector: &SelectorArgs) -> String {
    let name = |record: &RecordDetails| format!("{} {}", record.method, record.route);
    match outcome {
        ReleaseOutcome::Released { record, forced } => format!(
            "released {} ({}, was {}{}): the next request with this key runs the handler\n",
            name(record),
            selector.describe(),
            record.state,
            if *forced { ", forced" } else { "" }
        ),
        ReleaseOutcome::Refused { record, reason } => format!(
            "refused to release {} ({}): {reason}\npass --force to release it anyway\n",
            name(record),
            selector.describe()
        ),
        ReleaseOutcome::NotFound => format!("no record for {}: nothing released\n", selector.describe()),
        ReleaseOutcome::Ambiguous(records) => {
            let mut text = format!(
                "{} records match {}; nothing released. Add --method and --route to pick one:\n",
                records.len(),
                selector.describe()
            );
            for record in records {
                text.push_str(&format!("  --method {} --route {}  ({})\n", record.method, record.route, record.state));
            }
            text
        }
        ReleaseOutcome::Changed { record } => format!(
            "{} changed while it was being released (completed, taken over or released meanwhile): nothing \
             released; run `show` again\n",
            name(record)
        ),
    }
}

pub(crate) fn release_json(outcome: &ReleaseOutcome) -> Value {
    match outcome {
        ReleaseOutcome::Released { record, forced } => {
            json!({ "outcome": "released", "forced": forced, "record": details_json(record) })
        }
        ReleaseOutcome::Refused { record, reason } => {
            json!({ "outcome": "refused", "reason": reason.to_string(), "record": details_json(record) })
        }
        ReleaseOutcome::NotFound => json!({ "outcome": "not_found" }),
        ReleaseOutcome::Ambiguous(records) => {
            let records: Vec<Value> = records.iter().map(details_json).collect();
            json!({ "outcome": "ambiguous", "records": records })
        }
        ReleaseOutcome::Changed { record } => json!({ "outcome": "changed", "record": details_json(record) }),
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell, two spaces apart; `headers` may be empty.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>], align: &[Align]) -> String {
    let header_row: Vec<String> = headers.iter().map(|header| (*header).to_owned()).collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header_row).filter(|row| !row.is_empty()).chain(rows).collect();
    let columns = all.iter().map(|row| row.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| all.iter().filter_map(|row| row.get(column)).map(|cell| cell.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in all {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            let width = widths[column];
            let last = column + 1 == row.len();
            match align.get(column).copied().unwrap_or(Align::Left) {
                Align::Right => line.push_str(&format!("{cell:>width$}")),
                Align::Left if last => line.push_str(cell),
                Align::Left => line.push_str(&format!("{cell:<width$}")),
            }
            if !last {
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// RFC 3339 in UTC with milliseconds, e.g. `2025-06-01T12:00:00.123Z`.
pub(crate) fn utc(time: SystemTime) -> String {
    let (secs, millis) = match time.duration_since(UNIX_EPOCH) {
        Ok(since) => (i64::try_from(since.as_secs()).unwrap_or(i64::MAX), since.subsec_millis()),
        Err(before) => {
            let before = before.duration();
            let secs = -i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_millis() {
                0 => (secs, 0),
                millis => (secs - 1, 1000 - millis),
            }
        }
    };
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A short duration for people: `850ms`, `42s`, `3m05s`, `2h07m`, `3d04h`.
pub(crate) fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => format!("{}ms", duration.subsec_millis()),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24),
    }
}
