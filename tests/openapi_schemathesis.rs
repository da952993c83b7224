//! A fuzzer nobody here wrote against the examples' OpenAPI documents: schemathesis runs every check it has
//! (server errors, statuses, headers, content types and bodies as documented, invalid data rejected, valid data
//! accepted, unsupported methods, missing headers...) against the payments and orders examples on PostgreSQL,
//! through `GET /openapi.json`. Pass means it found nothing.
//!
//! Needs the `schemathesis` command (`pip install schemathesis`; `.ci/run` installs it). Its one hook,
//! `tests/openapi/fresh_keys.py`, gives each schema-valid request a key of its own, as the contract asks of clients.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::example_process::ExampleProcess;
use support::postgres::TestSchema;
use support::report_figure;

/// Fixed, so that a failure in CI replays here (`--seed` again); change it to explore.
const SEED: &str = "20261205";
/// Examples per operation in the fuzzing phase (the coverage phase adds its own, systematic cases).
const MAX_EXAMPLES: &str = "100";

/// What one run of schemathesis saw, from its NDJSON report.
#[derive(Debug, Default)]
struct Findings {
    operations: u64,
    test_cases: usize,
    checks: usize,
    check_kinds: BTreeSet<String>,
    failures: Vec<String>,
}

fn findings(report_dir: &Path) -> Findings {
    let report = std::fs::read_dir(report_dir)
        .expect("the report directory")
        .map(|entry| entry.expect("a report").path())
        .find(|path| path.extension().is_some_and(|extension| extension == "ndjson"))
        .expect("an NDJSON report");
    let mut findings = Findings::default();
    let mut cases = HashSet::new();
    for line in std::fs::read_to_string(report).expect("read the report").lines() {
        let event: Value = serde_json::from_str(line).expect("an NDJSON event");
        if let Some(operations) = event["LoadingFinished"]["statistic"]["operations"]["selected"].as_u64() {
            findings.operations = operations;
        }
        let Some(checks) = event["ScenarioFinished"]["recorder"]["checks"].as_object() else { continue };
        for (case, results) in checks {
            cases.insert(case.clone());
            for result in results.as_array().into_iter().flatten() {
                let name = result["name"].as_str().unwrap_or("?").to_owned();
                findings.checks += 1;
                if result["status"] != "success" && result["status"] != "skip" {
                    findings.failures.push(format!("{name} on case {case}: {result}"));
                }
                findings.check_kinds.insert(name);
            }
        }
    }
    findings.test_cases = cases.len();
    findings
}

/// Runs schemathesis with every check against `example` (on a fresh schema) and fails with its own report.
async fn fuzz(example: &str) {
    let installed = Command::new("schemathesis").arg("--version").output().is_ok_and(|out| out.status.success());
    assert!(installed, "this suite needs schemathesis: `python3 -m pip install schemathesis` (.ci/run installs it)");
    let schema = TestSchema::create().await;
    let process = ExampleProcess::start(example, Some(&schema.database_url()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Its working directory too: schemathesis keeps a cache (`.schemathesis/`) where it runs.
    let report_dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("schemathesis-{example}-{}", std::process::id()));
    std::fs::create_dir_all(&report_dir).expect("create the report directory");
    let output = Command::new("schemathesis")
        .args(["run", &format!("{}/openapi.json", process.base)])
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES, "--seed", SEED, "--no-color"])
        .args(["--header", "Authorization: Bearer schemathesis"])
        .args(["--report", "ndjson", "--report-dir"])
        .arg(&report_dir)
        .env("SCHEMATHESIS_HOOKS", "fresh_keys")
        .env("PYTHONPATH", root.join("tests/openapi"))
        .current_dir(&report_dir)
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems in the {example} example:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let found = findings(&report_dir);
    assert!(found.failures.is_empty(), "{:#?}", found.failures);
    assert!(found.operations >= 2 && found.test_cases > 100, "schemathesis tested too little: {found:?}\n{stdout}");
    // schemathesis 4.32 has 15 checks; `--checks all` runs each on every case it applies to.
    assert!(found.check_kinds.len() >= 15, "every check ran: {:?}", found.check_kinds);
    report_figure(&format!(
        "schemathesis, {example} example: {} operations, {} test cases, {} checks of {} kinds, no failure (seed {SEED})",
        found.operations,
        found.test_cases,
        found.checks,
        found.check_kinds.len()
    ));
    drop(process);
    let _ = std::fs::remove_dir_all(&report_dir);
    schema.drop_schema().await;
}

#[actix_web::test]
async fn schemathesis_finds_nothing_in_the_payments_example() {
    fuzz("payments").await;
}

#[actix_web::test]
async fn schemathesis_finds_nothing_in_the_orders_example() {
    fuzz("orders").await;
}
