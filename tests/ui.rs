//! Compile-time behaviour of `#[idempotent]` as a user meets it: what compiles (`tests/ui/pass`) and the error
//! each mistake gets (`tests/ui/fail`, one mistake per file, with the expected `.stderr` beside it).
//!
//! The `.stderr` files depend on the compiler version, which is why the toolchain is pinned in
//! `rust-toolchain.toml`. After a deliberate change, regenerate them with
//! `TRYBUILD=overwrite cargo test --test ui` and read the diff: every error must point into the test file.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
