//! The `#[idempotent]` attribute for actix-web handlers.
//!
//! Use it through the `idempotent-runtime` crate, which re-exports it: the code this attribute generates calls
//! into that crate (`::idempotent_runtime::__private`), so the two are versioned together.
//!
//! This crate is only the compile-time half. It reads the options, checks everything that can be checked before
//! the program runs (a duration with an unknown unit, a header name with a space, a lease longer than the ttl, a
//! handler that is not `async`) and reports each mistake on the token that caused it. It then wraps the handler
//! in a function that hands the request to the runtime, which does the claiming, fingerprinting, storing and
//! replaying. See [`macro@idempotent`] for the attribute itself.
//!
//! Layout: `args` parses the options, `validate` checks them and the handler, `expand` generates the code,
//! `duration` and `size` are the pure unit parsers. The entry point below only converts token types, so all of
//! it is reachable from unit tests.

mod args;
mod duration;
mod errors;
mod expand;
mod handler;
mod size;
mod validate;

#[cfg(test)]
mod snapshots;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

// The attribute's documentation is a file of its own so that its examples also compile as doctests of the
// workspace's root package (`src/lib.rs`), which depends on the runtime that re-exports the attribute: a
// dev-dependency of this crate on the runtime would be a cycle that `cargo package` cannot order.
#[doc = include_str!("idempotent.md")]
#[proc_macro_attribute]
pub fn idempotent(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::idempotent(attr.into(), item.into()).into()
}
