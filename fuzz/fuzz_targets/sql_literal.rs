//! The PostgreSQL store's SQL literal writer on arbitrary values of every type it writes: each literal is
//! printable ASCII, reads the same with `standard_conforming_strings` on and off, and ends exactly at its end (no
//! quote closes it early); a length limit holds, and a refused value leaves the statement as it was. The logic is
//! `idempotent_runtime::__sql_literal::fuzz`, which a unit test also runs on a stable toolchain.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| idempotent_runtime::__sql_literal::fuzz(data));
