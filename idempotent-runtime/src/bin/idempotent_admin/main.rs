//! `idempotent-admin`: operator tooling for the `idempotency_records` table of `idempotent-runtime`.
//!
//! ```text
//! cargo install idempotent-runtime --features cli     # or, in the repository:
//! cargo run -p idempotent-runtime --features cli --bin idempotent-admin -- counts
//! ```
//!
//! Subcommands: `list [--stuck] [--limit N]`, `show`, `release [--force]`, `purge [--batch N]`, `counts`, `outbox`
//! (the outbox's backlog per destination); `show`
//! and `release` select a record by `--key K --scope SCOPE [--route R] [--method M]` (or by the hashes `list`
//! prints). Global options: `--database-url URL` (default `DATABASE_URL`), `--schema S` (the schema the app gives
//! `PostgresStore::with_schema`), `--json`. Every statement works through a transaction-mode pooler.
//!
//! Exit codes: 0 done, 1 nothing found or refused, 2 usage or connection error.

mod connect;
mod render;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use idempotent_runtime::admin::{self, ReleaseOutcome, Scope, Selector};
use idempotent_runtime::purge::{DEFAULT_PURGE_BATCH, purge_expired};
use idempotent_runtime::{Digest, IdempotencyKey, ScopeSecret, to_hex};
use serde_json::{Value, json};

use crate::connect::connect;
use crate::render::{
    Align, details_json, details_text, in_flight_json, outbox_json, print_in_flight, print_json, print_outbox,
    release_json, release_text, table,
};

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
    /// The outbox per destination: rows waiting, age of the oldest unsent, failing rows and the last error
    Outbox,
}

#[derive(Debug, Args)]
struct SelectorArgs {
    /// The Idempotency-Key as the client sent it (a quoted sf-string is unquoted)
    #[arg(long, value_name = "K", value_parser = parse_key, required_unless_present = "key_hash")]
    key: Option<IdempotencyKey>,
    /// The key's hash in hex, as `list` prints it (instead of --key)
    #[arg(long, value_name = "HEX", value_parser = parse_digest, conflicts_with = "key")]
    key_hash: Option<Digest>,
    /// The scope, in one of the forms the admin API parses (`SCOPE_FORMS`).
    #[arg(
        long,
        value_name = "SCOPE",
        required_unless_present = "scope_hash",
        help = format!("The scope: one of {}", idempotent_runtime::admin::SCOPE_FORMS)
    )]
    scope: Option<Scope>,
    /// The scope's hash in hex, as `list` prints it (instead of --scope)
    #[arg(long, value_name = "HEX", value_parser = parse_digest, conflicts_with = "scope")]
    scope_hash: Option<Digest>,
    /// The app's scope secret (IdempotencyBuilder::scope_secret), for --scope; set it in the environment rather
    /// than on the command line
    #[arg(long, env = "IDEMPOTENT_SCOPE_SECRET", hide_env_values = true, value_name = "SECRET",
          value_parser = parse_scope_secret)]
    scope_secret: Option<ScopeSecret>,
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
            (Some(scope), _) => match &self.scope_secret {
                Some(secret) => scope.keyed_hash(secret),
                None => scope.hash(),
            },
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

/// The app's scope secret, as the bytes of the text given (the app must pass `ScopeSecret::new` the same bytes).
fn parse_scope_secret(secret: &str) -> Result<ScopeSecret, String> {
    ScopeSecret::new(secret.as_bytes()).map_err(|error| error.to_string())
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
        Command::Outbox => {
            let destinations = idempotent_runtime::outbox::backlog_by_destination(&store).await.map_err(|error| {
                Failure::Usage(format!(
                    "{error}\n(no idempotency_outbox table? The app's PostgresStore::migrate() creates it, as \
                     idempotent-runtime/sql/schema.sql does)"
                ))
            })?;
            if json {
                print_json(&outbox_json(&destinations));
            } else {
                print_outbox(&destinations);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use idempotent_runtime::admin::SCOPE_FORMS;

    use super::*;
    use crate::connect::redact;
    use crate::render::{human, utc};

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
    fn a_scope_secret_selects_the_keyed_digest_the_app_stores() {
        let secret = "a deployment secret of 32 bytes or more";
        let args = Cli::try_parse_from(["idempotent-admin", "show", "--key", "k", "--scope", "user:42"]).unwrap();
        let keyed = Cli::try_parse_from([
            "idempotent-admin",
            "show",
            "--key",
            "k",
            "--scope",
            "user:42",
            "--scope-secret",
            secret,
        ])
        .unwrap();
        let scope_hash = |cli: Cli| match cli.command {
            Command::Show(selector) => selector.selector().scope_hash,
            _ => unreachable!("show"),
        };
        let app = ScopeSecret::new(secret).unwrap().digest(idempotent_runtime::ScopeValue::User("42"));
        assert_eq!(scope_hash(keyed), app, "the app's keyed digest");
        assert_ne!(scope_hash(args), app, "without the secret, the unkeyed one");
        assert!(parse_scope_secret("short").is_err(), "a short secret is refused as the app refuses it");
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
