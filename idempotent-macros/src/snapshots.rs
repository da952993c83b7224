//! Expansion snapshots: what `#[idempotent]` turns the handlers in `tests/expand/*.rs` into, pretty-printed and
//! compared with `tests/expand/*.expanded.rs`.
//!
//! This does what `macrotest` does, without `cargo expand` (which needs a nightly compiler and a separate binary):
//! the expansion is run at the `proc_macro2` level by [`crate::expand::idempotent`], so the snapshot shows exactly
//! what this crate emits, and nothing of what actix-web's own macros do afterwards.
//!
//! After a deliberate change to the expansion, regenerate with
//! `UPDATE_EXPANSIONS=1 cargo test -p idempotent-macros snapshots` and read the diff.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::ToTokens as _;

use crate::expand::idempotent;

/// The folder of inputs and snapshots.
fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("expand")
}

/// Splits an input file into the attribute's arguments and the item it is on (the attribute removed).
fn split(source: &str, path: &Path) -> (TokenStream, TokenStream) {
    let mut file: syn::File = syn::parse_str(source).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let (Some(syn::Item::Fn(mut item)), true) = (file.items.pop(), file.items.is_empty()) else {
        panic!("{}: expected exactly one fn", path.display());
    };
    let position = item
        .attrs
        .iter()
        .position(|attr| attr.path().is_ident("idempotent"))
        .unwrap_or_else(|| panic!("{}: no #[idempotent] attribute", path.display()));
    let attr = item.attrs.remove(position);
    let args = match attr.meta {
        syn::Meta::Path(_) => TokenStream::new(),
        syn::Meta::List(list) => list.tokens,
        syn::Meta::NameValue(_) => panic!("{}: #[idempotent = ...] is not an input", path.display()),
    };
    (args, item.into_token_stream())
}

/// The pretty-printed expansion of one input file.
fn expand_file(path: &Path) -> String {
    let source = fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let (args, item) = split(&source, path);
    let output = idempotent(args, item);
    let file: syn::File = syn::parse2(output.clone())
        .unwrap_or_else(|error| panic!("{}: the expansion does not parse: {error}\n{output}", path.display()));
    prettyplease::unparse(&file)
}

/// A line diff that is enough to see what changed: the lines that differ, with their numbers.
fn diff(expected: &str, actual: &str) -> String {
    let mut out = String::new();
    let (expected, actual): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    for line in 0..expected.len().max(actual.len()) {
        let (old, new) = (expected.get(line), actual.get(line));
        if old != new {
            let _ = writeln!(out, "{:>4} - {}", line + 1, old.unwrap_or(&"<none>"));
            let _ = writeln!(out, "{:>4} + {}", line + 1, new.unwrap_or(&"<none>"));
        }
    }
    out
}

#[test]
fn expansions_match_their_snapshots() {
    let update = std::env::var_os("UPDATE_EXPANSIONS").is_some_and(|value| value == "1");
    let mut inputs: Vec<PathBuf> = fs::read_dir(folder())
        .expect("tests/expand exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "rs") && !path.to_string_lossy().ends_with(".expanded.rs")
        })
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 5, "the main shapes have inputs: {inputs:?}");

    let mut failures = Vec::new();
    for input in &inputs {
        let actual = expand_file(input);
        let snapshot = input.with_extension("expanded.rs");
        if update {
            fs::write(&snapshot, &actual).unwrap_or_else(|error| panic!("{}: {error}", snapshot.display()));
            continue;
        }
        match fs::read_to_string(&snapshot) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{} differs from the expansion of {}:\n{}",
                snapshot.display(),
                input.display(),
                diff(&expected, &actual)
            )),
            Err(_) => failures.push(format!("{} is missing; the expansion is:\n{actual}", snapshot.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nIf the change is intended, run `UPDATE_EXPANSIONS=1 cargo test -p idempotent-macros snapshots` \
         and review the diff.",
        failures.join("\n")
    );
}
