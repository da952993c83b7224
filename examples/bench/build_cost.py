#!/usr/bin/env python3
"""What `#[idempotent]` costs an app's build (issue 30): generates an app of N handlers twice, once plain and once
with the attribute on every handler, builds both in release, then rebuilds each app crate after a touch (its
dependencies already built) and reports the rebuild times, the binary sizes and their ratios.

    python3 examples/bench/build_cost.py                    # 100 handlers, 3 rebuilds each (about 10 minutes cold)
    python3 examples/bench/build_cost.py --handlers 20 --rounds 1
    python3 examples/bench/build_cost.py --no-default-features   # the runtime without its PostgreSQL store

A measurement, not a test: run it on a quiet machine (the rebuild times are wall-clock). With --check it exits 3
when a ratio misses its target (rebuild <= 1.5x, binary <= 1.25x)."""

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
TIME_TARGET, SIZE_TARGET = 1.5, 1.25


def manifest(name, default_features):
    runtime = REPO / "idempotent-runtime"
    # The runtime's default features, as a new user gets them. The app keeps its records in memory, so
    # --no-default-features (`default-features = false`) is what it could declare: without the unused PostgreSQL
    # store, whose unwind tables stay in the binary otherwise (BENCHMARKS.md, "Build cost per route").
    features = "" if default_features else ", default-features = false"
    return f"""[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
actix-web = {{ version = "4.18", default-features = false, features = ["macros"] }}
idempotent-runtime = {{ path = "{runtime}"{features} }}
serde = {{ version = "1", features = ["derive"] }}

[workspace]
"""


def main_rs(handlers, annotated):
    lines = [
        "use actix_web::{App, HttpRequest, HttpResponse, HttpServer, post, web};",
        "use idempotent_runtime::{Idempotency, MemoryStore, idempotent};" if annotated else "",
        "",
        "#[derive(serde::Deserialize, serde::Serialize)]",
        "struct Body {",
        "    amount: u64,",
        "}",
        "",
    ]
    for n in range(handlers):
        lines.append(f'#[post("/r{n}")]')
        if annotated:
            lines.append('#[idempotent(ttl = "24h", scope = "user")]')
        lines.append(f"async fn h{n}(body: web::Json<Body>) -> HttpResponse {{")
        lines.append(f"    HttpResponse::Ok().body(format!(\"{n} {{}}\", body.amount))")
        lines.append("}")
        lines.append("")
    lines.append("fn user_of(request: &HttpRequest) -> Option<String> {")
    lines.append('    request.headers().get("x-user")?.to_str().ok().map(str::to_owned)')
    lines.append("}")
    lines.append("")
    lines.append("#[actix_web::main]")
    lines.append("async fn main() -> std::io::Result<()> {")
    if annotated:
        lines.append("    let idempotency = Idempotency::builder(MemoryStore::new()).user_resolver(user_of).build();")
    else:
        lines.append("    let _ = user_of;")
    lines.append("    HttpServer::new(move || {")
    lines.append("        App::new()")
    if annotated:
        lines.append("            .app_data(idempotency.clone())")
    for n in range(handlers):
        lines.append(f"            .service(h{n})")
    lines.append("    })")
    lines.append('    .bind("127.0.0.1:0")?')
    lines.append("    .run()")
    lines.append("    .await")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate(root, name, handlers, annotated, default_features):
    crate = root / name
    (crate / "src").mkdir(parents=True, exist_ok=True)
    (crate / "Cargo.toml").write_text(manifest(name, default_features))
    (crate / "src" / "main.rs").write_text(main_rs(handlers, annotated))
    # The workspace's lock file: the same dependency versions as the library's own builds, and no registry query.
    if not (crate / "Cargo.lock").exists():
        shutil.copy(REPO / "Cargo.lock", crate / "Cargo.lock")
    return crate


def build(crate, target):
    started = time.monotonic()
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", str(crate / "Cargo.toml"), "--target-dir", str(target)],
        check=True,
    )
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handlers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="rebuilds of each app, alternating; medians reported (0: only build)")
    parser.add_argument("--dir", type=pathlib.Path, default=REPO / "target" / "build-cost")
    parser.add_argument("--target-dir", type=pathlib.Path, help="where to build (default: DIR/target)")
    parser.add_argument(
        "--no-default-features",
        action="store_true",
        help="the runtime without its default features (the PostgreSQL store, which this app does not use)",
    )
    parser.add_argument("--check", action="store_true", help=f"exit 3 unless rebuild <= {TIME_TARGET}x and binary <= {SIZE_TARGET}x")
    options = parser.parse_args()

    target = options.target_dir or options.dir / "target"
    apps = {
        "plain": generate(options.dir, "build_cost_plain", options.handlers, False, not options.no_default_features),
        "annotated": generate(options.dir, "build_cost_annotated", options.handlers, True, not options.no_default_features),
    }
    for crate in apps.values():
        print(f"building {crate.name} and its dependencies (release)", flush=True)
        build(crate, target)
    if options.rounds == 0:
        print("built; no rebuilds measured (--rounds 0)")
        return 0
    times = {kind: [] for kind in apps}
    for round_ in range(options.rounds):
        for kind, crate in apps.items():
            os.utime(crate / "src" / "main.rs")
            times[kind].append(build(crate, target))
            print(f"  round {round_ + 1}: {kind:9} rebuild {times[kind][-1]:6.2f} s", flush=True)
    size = {kind: (target / "release" / crate.name).stat().st_size for kind, crate in apps.items()}
    median = {kind: statistics.median(values) for kind, values in times.items()}
    time_ratio = median["annotated"] / median["plain"]
    size_ratio = size["annotated"] / size["plain"]

    print()
    features = "default-features = false" if options.no_default_features else "default features"
    print(f"{options.handlers} handlers, release, the runtime with {features}, the app crate rebuilt after a touch (medians of {options.rounds})")
    print("| build | plain | with `#[idempotent]` | ratio | target |")
    print("|---|---:|---:|---:|---:|")
    print(f"| rebuild of the app | {median['plain']:.2f} s | {median['annotated']:.2f} s | {time_ratio:.3f}x | <= {TIME_TARGET}x |")
    print(f"| release binary | {size['plain'] / 1e6:.2f} MB | {size['annotated'] / 1e6:.2f} MB | {size_ratio:.3f}x | <= {SIZE_TARGET}x |")
    per_route = (size["annotated"] - size["plain"]) / options.handlers / 1e3
    per_route_time = (median["annotated"] - median["plain"]) / options.handlers
    print(f"per annotated route: {per_route_time * 1000:.0f} ms of rebuild, {per_route:.1f} KB of binary (fixed costs included)")
    met = time_ratio <= TIME_TARGET and size_ratio <= SIZE_TARGET
    print("targets: " + ("met" if met else "NOT met"))
    return 3 if options.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
