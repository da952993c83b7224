//! `idempotent-admin`: operator tooling for the `idempotency_records` table of `idempotent-runtime`.
//!
//! ```text
//! cargo install idempotent-runtime --features cli     # or, in the repository:
//! cargo run -p idempotent-runtime --features cli --bin idempotent-admin -- counts
//! ```
//!
//! Subcommands: `list [--stuck] [--limit N]`, `show`, `release [--force]`, `purge [--batch N]`, `counts`; `show`
//! and `release` select a record by `--key K --scope SCOPE [--route R] [--method M]` (or by the hashes `list`
//! prints). Global options: `--database-url URL` (default `DATABASE_URL`), `--schema S` (the schema the app gives
//! `PostgresStore::with_schema`), `--json`. Every statement works through a transaction-mode pooler.
//!
//! Exit codes: 0 done, 1 nothing found or refused, 2 usage or connection error.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use idempotent_runtime::admin::{self, InFlight, RecordDetails, ReleaseOutcome, Scope, Selector};
use idempotent_runtime::purge::{DEFAULT_PURGE_BATCH, purge_expired};
use idempotent_runtime::{Digest, IdempotencyKey, PostgresStore, to_hex};
use serde_json::{Value, json};

/// How to start the usual local server; printed when none answers.
const START_POSTGRES: &str = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

/// Inspect and repair the idempotency records of idempotent-runtime in PostgreSQL.
///
/// Exit codes: 0 done, 1 nothing found or refused, 2 usage or connection error.
#[derive(Debug, Parser)]
#[command(name = "idempotent-admin", version)]
struct Cli {
    /// PostgreSQL URL, e.g. postgres://user@host:5432/db
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
    /// Schema of the idempotency_records table, as given to PostgresStore::with_schema (default: the search_path)
    #[arg(long, global = true, value_name = "S")]
    schema: Option<String>,
    /// Print JSON for scripts instead of aligned text
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List records in progress (oldest first), or only the stuck ones (lease lapsed)
    List {
        /// Only records whose lease lapsed: their worker died or could not store the response
        #[arg(long)]
        stuck: bool,
        /// At most this many records
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// Show the records of one key and scope
    Show(SelectorArgs),
    /// Release (delete) a stuck record so that the next request with its key runs the handler
    Release {
        #[command(flatten)]
        selector: SelectorArgs,
        /// Also release a record that is completed, expired, or whose lease still holds
        #[arg(long)]
        force: bool,
    },
    /// Delete expired records now
    Purge {
        /// Records looked at per statement
        #[arg(long, default_value_t = DEFAULT_PURGE_BATCH, value_name = "N")]
        batch: usize,
    },
    /// Count records by state: in_progress, stuck, completed, expired
    Counts,
}

#[derive(Debug, Args)]
struct SelectorArgs {
    /// The Idempotency-Key as the client sent it (a quoted sf-string is unquoted)
    #[arg(long, value_name = "K", value_parser = parse_key, required_unless_present = "key_hash")]
    key: Option<IdempotencyKey>,
    /// The key's hash in hex, as `list` prints it (instead of --key)
    #[arg(long, value_name = "HEX", value_parser = parse_digest, conflicts_with = "key")]
    key_hash: Option<Digest>,
    /// The scope: user:<id>, global, header:<Name>=<value> or function:<value>
    #[arg(long, value_name = "SCOPE", required_unless_present = "scope_hash")]
    scope: Option<Scope>,
    /// The scope's hash in hex, as `list` prints it (instead of --scope)
    #[arg(long, value_name = "HEX", value_parser = parse_digest, conflicts_with = "scope")]
    scope_hash: Option<Digest>,
    /// Only the record of this route pattern, e.g. /payments/{id}
    #[arg(long, value_name = "R")]
    route: Option<String>,
    /// Only the record of this method, e.g. POST (case-insensitive)
    #[arg(long, value_name = "M")]
    method: Option<String>,
}

impl SelectorArgs {
    fn selector(&self) -> Selector {
        let key_hash = match (&self.key, self.key_hash) {
            (Some(key), _) => admin::key_hash(key.as_str()),
            (None, Some(hash)) => hash,
            (None, None) => unreachable!("clap requires --key or --key-hash"),
        };
        let scope_hash = match (&self.scope, self.scope_hash) {
            (Some(scope), _) => scope.hash(),
            (None, Some(hash)) => hash,
            (None, None) => unreachable!("clap requires --scope or --scope-hash"),
        };
        Selector {
            key_hash,
            scope_hash,
            route: self.route.clone(),
            method: self.method.as_deref().map(str::to_ascii_uppercase),
        }
    }

    /// The selector as the operator wrote it, for messages.
    fn describe(&self) -> String {
        let key = match (&self.key, self.key_hash) {
            (Some(key), _) => format!("key {:?}", key.as_str()),
            (None, hash) => format!("key hash {}", hash.map(|hash| to_hex(&hash)).unwrap_or_default()),
        };
        let scope = match (&self.scope, self.scope_hash) {
            (Some(scope), _) => format!("scope {scope}"),
            (None, hash) => format!("scope hash {}", hash.map(|hash| to_hex(&hash)).unwrap_or_default()),
        };
        let mut described = format!("{key} in {scope}");
        if let Some(method) = &self.method {
            described.push_str(&format!(", method {}", method.to_ascii_uppercase()));
        }
        if let Some(route) = &self.route {
            described.push_str(&format!(", route {route}"));
        }
        described
    }
}

fn parse_key(raw: &str) -> Result<IdempotencyKey, String> {
    IdempotencyKey::parse(raw.as_bytes()).map_err(|error| error.to_string())
}

fn parse_digest(hex: &str) -> Result<Digest, String> {
    let invalid = || format!("expected 64 hex digits (a hash as `list` prints it), got {hex:?}");
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(invalid());
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
    }
    Ok(digest)
}

/// How a run ended, as an exit code.
enum Failure {
    /// 1: nothing found, or the record was left alone.
    Nothing,
    /// 2: bad usage, or the database cannot be used; the message says how to fix it.
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(Failure::Usage(format!("could not start the async runtime: {error}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(failure),
    }
}

fn fail(failure: Failure) -> ExitCode {
    match failure {
        Failure::Nothing => ExitCode::from(1),
        Failure::Usage(message) => {
            eprintln!("idempotent-admin: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let url = cli.database_url.as_deref().ok_or_else(|| {
        Failure::Usage(
            "no database: pass --database-url URL or set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
                .to_owned(),
        )
    })?;
    let store = connect(url, cli.schema.as_deref()).await?;
    let json = cli.json;
    let failed = |error: idempotent_runtime::StoreError| Failure::Usage(format!("{error}"));
    match cli.command {
        Command::List { stuck, limit } => {
            let page = admin::list_in_flight(&store, stuck, limit).await.map_err(failed)?;
            if json {
                let records: Vec<Value> = page.records.iter().map(in_flight_json).collect();
                print_json(&json!({ "total": page.total, "records": records }));
            } else {
                print_in_flight(&page.records, page.total, stuck);
            }
        }
        Command::Show(selector) => {
            let records = admin::show(&store, &selector.selector()).await.map_err(failed)?;
            if json {
                let records: Vec<Value> = records.iter().map(details_json).collect();
                print_json(&json!({ "records": records }));
            } else if records.is_empty() {
                println!("no record for {}", selector.describe());
            } else {
                let shown: Vec<String> = records.iter().map(details_text).collect();
                print!("{}", shown.join("\n"));
            }
            if records.is_empty() {
                return Err(Failure::Nothing);
            }
        }
        Command::Release { selector, force } => {
            let outcome = admin::release(&store, &selector.selector(), force).await.map_err(failed)?;
            let released = matches!(outcome, ReleaseOutcome::Released { .. });
            if json {
                print_json(&release_json(&outcome));
            } else {
                print!("{}", release_text(&outcome, &selector));
            }
            if !released {
                return Err(Failure::Nothing);
            }
        }
        Command::Purge { batch } => {
            let report = purge_expired(&store, batch).await.map_err(failed)?;
            if json {
                print_json(&json!({
                    "examined": report.examined, "deleted": report.deleted, "batches": report.batches,
                }));
            } else {
                println!(
                    "purged: examined {}, deleted {}, batches {}",
                    report.examined, report.deleted, report.batches
                );
            }
        }
        Command::Counts => {
            let counts = admin::counts(&store).await.map_err(failed)?;
            let total = counts.in_progress + counts.stuck + counts.completed + counts.expired;
            if json {
                print_json(&json!({
                    "in_progress": counts.in_progress, "stuck": counts.stuck, "completed": counts.completed,
                    "expired": counts.expired, "total": total,
                }));
            } else {
                let rows = [
                    ("in_progress", counts.in_progress, "lease holds"),
                    ("stuck", counts.stuck, "lease lapsed: `list --stuck`, `release`"),
                    ("completed", counts.completed, "replayed until they expire"),
                    ("expired", counts.expired, "ignored; `purge` deletes them"),
                    ("total", total, ""),
                ];
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|(name, count, note)| vec![(*name).to_owned(), count.to_string(), (*note).to_owned()])
                    .collect();
                print!("{}", table(&[], &rows, &[Align::Left, Align::Right, Align::Left]));
            }
        }
    }
    Ok(())
}

/// A store on a small pool on the URL, checked: the server answers and the table exists (in `--schema`, else in
/// the connection's search path). The schema is named in every statement, never set on the connection, so the URL
/// may name a transaction-mode pooler (PgBouncer).
async fn connect(url: &str, schema: Option<&str>) -> Result<PostgresStore, Failure> {
    let shown = redact(url);
    let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
        Failure::Usage(format!(
            "--database-url {shown} is not a PostgreSQL URL ({error}); expected e.g. postgres://user@host:5432/db"
        ))
    })?;
    if schema.is_some_and(str::is_empty) {
        return Err(Failure::Usage("--schema needs a schema name".to_owned()));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let manager =
        Manager::from_config(config, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
        .max_size(2)
        .build()
        .map_err(|error| Failure::Usage(format!("could not set up a connection pool: {error}")))?;
    let client = pool.get().await.map_err(|error| {
        Failure::Usage(format!(
            "cannot connect to PostgreSQL at {shown}: {}\n\
             Is the server running? Start the local one with\n    {START_POSTGRES}\n\
             or name a server that accepts connections with --database-url URL (or DATABASE_URL).",
            error_chain(&error)
        ))
    })?;
    let table = match schema {
        Some(schema) => format!("\"{}\".idempotency_records", schema.replace('"', "\"\"")),
        None => "idempotency_records".to_owned(),
    };
    let rows = client
        .query_typed(
            "SELECT to_regclass($1) IS NOT NULL AS present, current_setting('search_path') AS path",
            &[(&table, tokio_postgres::types::Type::TEXT)],
        )
        .await
        .map_err(|error| Failure::Usage(format!("PostgreSQL at {shown} failed: {}", error_chain(&error))))?;
    let row = rows.first().ok_or_else(|| Failure::Usage(format!("PostgreSQL at {shown} answered no row")))?;
    let present: bool = row.get("present");
    if !present {
        let path: String = row.get("path");
        let place = match schema {
            Some(schema) => format!("schema {schema:?}"),
            None => format!("search_path {path:?}"),
        };
        return Err(Failure::Usage(format!(
            "no idempotency_records table in {place} at {shown}: pass --schema with the schema the app uses, or \
             create the table (PostgresStore::migrate(), or idempotent-runtime/sql/schema.sql)"
        )));
    }
    drop(client);
    let store = PostgresStore::new(pool);
    Ok(match schema {
        Some(schema) => store.with_schema(schema),
        None => store,
    })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((credentials, host)) = rest.split_once('@') else { return url.to_owned() };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// An error with its causes, e.g. "error connecting to server: Connection refused (os error 111)".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

fn print_in_flight(records: &[InFlight], total: u64, stuck_only: bool) {
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

fn in_flight_json(record: &InFlight) -> Value {
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

fn details_text(record: &RecordDetails) -> String {
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

fn details_json(record: &RecordDetails) -> Value {
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

fn release_text(outcome: &ReleaseOutcome, selector: &SelectorArgs) -> String {
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

fn release_json(outcome: &ReleaseOutcome) -> Value {
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
enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell, two spaces apart; `headers` may be empty.
fn table(headers: &[&str], rows: &[Vec<String>], align: &[Align]) -> String {
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
fn utc(time: SystemTime) -> String {
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
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => format!("{}ms", duration.subsec_millis()),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use idempotent_runtime::admin::SCOPE_FORMS;

    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(UNIX_EPOCH + Duration::from_millis(1_709_210_096_789)), "2024-02-29T12:34:56.789Z");
        assert_eq!(utc(UNIX_EPOCH - Duration::from_millis(1)), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn formats_durations() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(185)), "3m05s");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 7 * 60)), "2h07m");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3d04h");
    }

    #[test]
    fn parses_hashes_and_redacts_passwords() {
        let digest = admin::key_hash("k");
        assert_eq!(parse_digest(&to_hex(&digest)), Ok(digest));
        assert!(parse_digest("abc").is_err());
        assert!(parse_digest(&"zz".repeat(32)).is_err());
        assert_eq!(redact("postgres://app:secret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(redact("postgres://postgres@127.0.0.1/x"), "postgres://postgres@127.0.0.1/x");
    }

    #[test]
    fn scope_forms_are_in_the_help() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let mut command = Cli::command();
        let help = command.find_subcommand_mut("show").expect("show").render_help().to_string();
        for form in SCOPE_FORMS.split(", ") {
            assert!(help.contains(form), "{form} in {help}");
        }
    }
}
