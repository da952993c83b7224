//! The payments example's checkout in a real browser: Debian's Chromium, headless, driven by Playwright for Python
//! (`tests/browser/checkout.py`), against the example on PostgreSQL. Each check counts the payments it caused in
//! PostgreSQL: two clicks 50 ms apart, a reload, a reload that posts the form again, a second tab with another
//! amount, and a `fetch` from another origin through CORS.
//!
//! Needs `chromium` (Debian's package, or `CHROMIUM=/path`), Playwright for Python (`pip install playwright`; no
//! browser download) and `psql`. `.ci/run` installs them; without them this test fails and says so.

mod support;

use std::path::Path;
use std::process::Command;

use support::example_process::{ExampleProcess, free_port};
use support::postgres::{TestSchema, database_url};
use support::report_figure;

/// The browser the suite drives: `CHROMIUM`, or Debian's.
fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "the browser suite needs Chromium at {chromium}: `apt-get install chromium` (or set CHROMIUM=/path/to/it)"
    );
    chromium
}

/// Fails with the fix when a tool the suite runs is missing.
fn require(program: &str, args: &[&str], fix: &str) {
    let found = Command::new(program).args(args).output().is_ok_and(|output| output.status.success());
    assert!(found, "the browser suite needs `{program} {}`: {fix}", args.join(" "));
}

#[actix_web::test]
async fn a_checkout_in_chromium_charges_once() {
    let chromium = chromium();
    require("python3", &["-c", "import playwright.sync_api"], "`pip install playwright` (it drives Debian's chromium)");
    require("psql", &["--version"], "`apt-get install postgresql-client`");

    let schema = TestSchema::create().await;
    let proxy_port = free_port();
    // The cross-origin check loads its page from http://localhost:<proxy>, another origin than 127.0.0.1's.
    let allowed_origin = format!("http://localhost:{proxy_port}");
    let example = ExampleProcess::start_with_env(
        "payments",
        Some(&schema.database_url()),
        &[("CORS_ALLOWED_ORIGINS", &allowed_origin)],
    );
    let output = Command::new("python3")
        .arg("tests/browser/checkout.py")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("UPSTREAM", format!("127.0.0.1:{}", example.port))
        .env("PROXY_PORT", proxy_port.to_string())
        .env("DATABASE_URL", database_url())
        .env("PAYMENTS_TABLE", format!("{}.payments", schema.name))
        .env("CHROMIUM", chromium)
        .output()
        .expect("run tests/browser/checkout.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser suite failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in stdout.lines() {
        report_figure(line);
    }
    drop(example);
    schema.drop_schema().await;
}
