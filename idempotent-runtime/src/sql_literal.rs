//! The PostgreSQL store's SQL literal writer, for its fuzz target (`fuzz/fuzz_targets/sql_literal.rs`) and its
//! property test against a real server (`tests/sql_literal_property.rs`). Not public API: it changes without
//! notice.
//!
//! The writer is private to the store's statement module; this module compiles the same file a second time
//! (feature `testing` only) rather than open the store's module tree to tests.

use tokio_postgres::types::{ToSql, Type};

#[allow(clippy::duplicate_mod)] // On purpose: see the module's documentation.
#[path = "store/postgres/statement/literal.rs"]
mod writer;

/// `value` of type `ty` as the store writes it into `EXECUTE name(...)`, or `None` when the store would bind it
/// instead (a type the writer does not know, or a literal longer than `max_len`).
pub fn write(value: &(dyn ToSql + Sync), ty: &Type, max_len: usize) -> Option<String> {
    let mut out = String::new();
    writer::write(value, ty, &mut out, max_len).map(|()| out)
}

/// Checks that `literal` means the same in every session and ends exactly at its end: it is printable ASCII (so
/// no `client_encoding` reads it otherwise), every string in it is closed, it reads as the same strings with
/// `standard_conforming_strings` on and off, and outside its strings it holds only names, casts, brackets that
/// balance and commas inside them (so no quote, comment, statement or second value follows it).
///
/// # Errors
///
/// What is wrong with the literal.
pub fn check(literal: &str) -> Result<(), String> {
    if let Some(byte) = literal.bytes().find(|byte| !(b' '..=b'~').contains(byte)) {
        return Err(format!("byte {byte:#04x} is not printable ASCII in {literal:?}"));
    }
    let standard = tokens(literal.as_bytes(), true).map_err(|error| format!("{error} in {literal:?}"))?;
    let escaping = tokens(literal.as_bytes(), false).map_err(|error| format!("{error} in {literal:?}"))?;
    if standard != escaping {
        return Err(format!(
            "{literal:?} reads as {standard:?} with standard_conforming_strings on, {escaping:?} with it off"
        ));
    }
    Ok(())
}

/// The fuzz target: `data` chooses a type and a value of it (and maybe a length limit); the value is written
/// after the start of an `EXECUTE`, and [`check`]ed.
///
/// # Panics
///
/// When the literal fails [`check`], a supported value is not written without a limit, a limit is exceeded, or
/// a refused value left text behind.
pub fn fuzz(data: &[u8]) {
    const START: &str = "EXECUTE idempotent_x(";
    let Some((&selector, rest)) = data.split_first() else { return };
    let (limit, payload) = match rest {
        [low, high, payload @ ..] if selector & 0x80 != 0 => {
            (START.len() + usize::from(u16::from_le_bytes([*low, *high])), payload)
        }
        _ => (usize::MAX, rest),
    };
    let mut out = String::from(START);
    let written = match selector & 0x7f {
        0 => writer::write(&payload.first().is_some_and(|byte| byte & 1 == 1), &Type::BOOL, &mut out, limit),
        1 => writer::write(&i16::from_le_bytes(padded(payload)), &Type::INT2, &mut out, limit),
        2 => writer::write(&i32::from_le_bytes(padded(payload)), &Type::INT4, &mut out, limit),
        3 => writer::write(&i64::from_le_bytes(padded(payload)), &Type::INT8, &mut out, limit),
        4 => writer::write(&f64::from_le_bytes(padded(payload)), &Type::FLOAT8, &mut out, limit),
        5 => writer::write(&text(payload), &Type::TEXT, &mut out, limit),
        6 => writer::write(&payload, &Type::BYTEA, &mut out, limit),
        7 => writer::write(&elements(payload, text), &Type::TEXT_ARRAY, &mut out, limit),
        8 => writer::write(&elements(payload, <[u8]>::to_vec), &Type::BYTEA_ARRAY, &mut out, limit),
        9 => writer::write(
            &elements(payload, |bytes| i64::from_le_bytes(padded(bytes))),
            &Type::INT8_ARRAY,
            &mut out,
            limit,
        ),
        10 => writer::write(
            &elements(payload, |bytes| f64::from_le_bytes(padded(bytes))),
            &Type::FLOAT8_ARRAY,
            &mut out,
            limit,
        ),
        11 => writer::write(&None::<String>, &Type::TEXT, &mut out, limit),
        _ => return,
    };
    match written {
        None => {
            assert!(limit != usize::MAX, "selector {selector}: a supported value was refused: {data:?}");
            assert_eq!(out, START, "a refused value leaves the statement as it was");
        }
        Some(()) => {
            assert!(out.len() <= limit, "{} bytes past the limit of {limit}", out.len());
            if let Err(error) = check(&out[START.len()..]) {
                panic!("selector {selector}, data {data:?}: {error}");
            }
        }
    }
}

/// `bytes`, zero-padded or cut to `N`.
fn padded<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut array = [0; N];
    let length = bytes.len().min(N);
    array[..length].copy_from_slice(&bytes[..length]);
    array
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Array elements: the parts of `bytes` between 0xff bytes; a part that starts with 0xfe is a NULL.
fn elements<T>(bytes: &[u8], element: impl Fn(&[u8]) -> T) -> Vec<Option<T>> {
    bytes.split(|byte| *byte == 0xff).map(|part| (part.first() != Some(&0xfe)).then(|| element(part))).collect()
}

/// What the server's lexer sees in a literal: code bytes, and strings as they decode (an escape kept as a NUL
/// and the escaped byte, so that a string that decodes differently compares differently).
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Code(u8),
    Text { escape_syntax: bool, text: Vec<u8> },
}

/// Splits `literal` (printable ASCII) as the server's lexer would with `standard_conforming_strings` as given.
fn tokens(literal: &[u8], standard_conforming_strings: bool) -> Result<Vec<Token>, String> {
    let is_name_byte = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$';
    let mut tokens = Vec::new();
    let mut depth = 0_usize;
    let mut index = 0;
    while let Some(&byte) = literal.get(index) {
        if byte == b'\'' {
            let before = index.checked_sub(1).map(|at| literal[at]);
            let before_that = index.checked_sub(2).map(|at| literal[at]);
            let escape_syntax = match (before, before_that) {
                (Some(b'E' | b'e'), before_that) if !before_that.is_some_and(is_name_byte) => {
                    tokens.pop();
                    true
                }
                (Some(before), _) if is_name_byte(before) => {
                    return Err(format!("a string right after a name at byte {index}"));
                }
                _ => false,
            };
            let (text, end) = string(literal, index + 1, escape_syntax || !standard_conforming_strings)?;
            tokens.push(Token::Text { escape_syntax, text });
            index = end;
            continue;
        }
        match byte {
            b'(' | b'[' => depth += 1,
            b')' | b']' => {
                depth = depth.checked_sub(1).ok_or_else(|| format!("byte {index} closes a bracket never opened"))?;
            }
            b',' if depth == 0 => return Err(format!("a comma outside brackets at byte {index}: a second value")),
            b',' | b' ' | b'.' | b':' => {}
            byte if is_name_byte(byte) && byte != b'$' => {}
            byte => return Err(format!("{:?} outside a string at byte {index}", char::from(byte))),
        }
        tokens.push(Token::Code(byte));
        index += 1;
    }
    if depth != 0 {
        return Err(format!("{depth} brackets left open"));
    }
    Ok(tokens)
}

/// The string that starts at `index` (after its opening quote), and where its closing quote ends.
fn string(literal: &[u8], mut index: usize, escapes: bool) -> Result<(Vec<u8>, usize), String> {
    let mut text = Vec::new();
    loop {
        match (literal.get(index), literal.get(index + 1)) {
            (None, _) => return Err("a string is still open at the literal's end".to_owned()),
            (Some(b'\\'), escaped) if escapes => {
                let escaped = escaped.ok_or("the literal ends in an escape")?;
                text.extend([0, *escaped]);
                index += 2;
            }
            (Some(b'\''), Some(b'\'')) => {
                text.push(b'\'');
                index += 2;
            }
            (Some(b'\''), _) => return Ok((text, index + 1)),
            (Some(byte), _) => {
                text.push(*byte);
                index += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_target_holds_for_seeds_and_random_inputs() {
        let seeds: [&[u8]; 8] = [
            b"\x05it's \\ a 'quote'\\",
            "\x05\u{81}\\'".as_bytes(),
            b"\x06\x00\x27\x5c\xff",
            b"\x07a'\xffb\\\xff\xfe\xff\xc3\xa9",
            b"\x04\x00\x00\x00\x00\x00\x00\xf8\x7f",
            b"\x85\x03\x00\xc3\xa9\xc3\xa9",
            b"\x8a\x00\x00",
            b"\x0b",
        ];
        for seed in seeds {
            fuzz(seed);
        }
        let mut random = fastrand::Rng::with_seed(29);
        for _ in 0..20_000 {
            let length = random.usize(0..64);
            let data: Vec<u8> = (0..length)
                .map(|index| if index == 0 { (random.u8(..) % 12) | (random.u8(..) & 0x80) } else { random.u8(..) })
                .collect();
            fuzz(&data);
        }
    }

    #[test]
    fn the_check_finds_a_literal_that_ends_early_or_depends_on_the_session() {
        let rejected = [
            ("'a\\'", "standard strings end at the backslash, escaping ones do not"),
            ("'a\\b'", "a backslash that escapes with standard_conforming_strings off only"),
            ("E'a\\'", "an escaped quote: still open"),
            ("E'a'', 'b'", "a doubled quote: still open"),
            ("'a', 'b'", "a second value"),
            ("'a' -- comment", "a comment"),
            ("'a'; SELECT 1", "a second statement"),
            ("'é'", "not ASCII"),
            ("x'41'", "a prefixed string"),
            ("ARRAY['a'", "a bracket left open"),
        ];
        for (literal, why) in rejected {
            assert!(check(literal).is_err(), "{why}: {literal:?} passed");
        }
        for literal in ["E'it''s \\\\ ok'", "'-7'::int8", "ARRAY[E'a', NULL::text]::text[]", "E'\\\\x00'::bytea"] {
            check(literal).unwrap();
        }
    }
}
