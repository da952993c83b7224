//! The key grammar on arbitrary header bytes: never panics, and whatever it accepts is a valid key that
//! round-trips through its sf-string form.
#![no_main]

use idempotent_runtime::{IdempotencyKey, MAX_KEY_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let Ok(key) = IdempotencyKey::parse(raw) else { return };
    let text = key.as_str();
    assert!((1..=MAX_KEY_LEN).contains(&text.len()), "length {}", text.len());
    assert!(text.bytes().all(|byte| (0x20..=0x7e).contains(&byte)), "printable ASCII only: {text:?}");
    let quoted = format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    let again = IdempotencyKey::parse(quoted.as_bytes()).expect("the sf-string form of a key parses");
    assert_eq!(again.as_str(), text, "sf-string round trip");
});
