//! Examples and integration tests live beside this crate.
