//! Decoding a stored response from arbitrary column values (a damaged or foreign row): never panics, and whatever
//! it accepts is a valid HTTP response that encodes back to the same columns.
#![no_main]

use arbitrary::Arbitrary;
use idempotent_runtime::store::StoredResponse;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Columns {
    status: i64,
    names: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
    body: Option<Vec<u8>>,
}

fuzz_target!(|columns: Columns| {
    let body = columns.body.clone().map(Into::into);
    let Ok(response) = StoredResponse::from_parts(columns.status, &columns.names, &columns.values, body) else {
        return;
    };
    assert_eq!(i64::from(response.status.as_u16()), columns.status);
    assert_eq!(response.headers.len(), columns.names.len());
    for ((name, value), (raw_name, raw_value)) in response.headers.iter().zip(columns.names.iter().zip(&columns.values)) {
        assert_eq!(name.as_str().as_bytes(), raw_name.to_ascii_lowercase().as_slice());
        assert_eq!(value.as_bytes(), raw_value.as_slice());
    }
    assert_eq!(response.body.as_deref(), columns.body.as_deref());
});
