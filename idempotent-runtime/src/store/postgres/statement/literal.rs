//! Statement parameters written as SQL literals, for `EXECUTE name(...)`: a utility statement takes no bound
//! parameters (`bind message supplies 1 parameters, but prepared statement "" requires 0`), so its arguments
//! travel in its text.
//!
//! A value is first encoded by its own [`ToSql`] in PostgreSQL's binary format, then read back from that format
//! and written out, so the literal is exactly the value the unnamed statement would have bound. A type this
//! module does not know answers `None`, and the caller sends the statement unnamed instead.
//!
//! Every literal is printable ASCII, so that it means the same in every session. The store shares the
//! application's pool, and the application may change the session: `client_encoding` decides how the server
//! reads the statement's bytes (under SJIS a UTF-8 byte can swallow the backslash that follows it, and with
//! `backslash_quote = on` the quote after that then ends nothing), and `standard_conforming_strings` decides
//! whether a backslash escapes in `'...'`. So:
//!
//! - printable ASCII text is written in the escape syntax (`E'...'`, quotes doubled, backslashes doubled), which
//!   reads the same whatever `standard_conforming_strings` says;
//! - any other text (non-ASCII, control characters) is written as its UTF-8 bytes in hex, decoded by the server:
//!   `pg_catalog.convert_from(pg_catalog.decode('<hex>', 'hex'), 'UTF8')`. That form holds no backslash and no
//!   quote of the value's own; it is the text a bound parameter would have given, converted to the database's
//!   encoding just as a bound one is. Binding such a value instead (answering `None`) would be as safe, but
//!   would send every request with a non-ASCII argument (a receiver namespace, a path) down the unnamed path,
//!   parsed and planned each time: a cost that depends on the data, for no gain in safety;
//! - `bytea` is written in hex (`E'\\x...'`), numbers in quotes with their cast, booleans as keywords.

use std::fmt::Write as _;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, Kind, ToSql, Type};

/// Appends `value` of type `ty` to `out` as a literal of that type; `None`, with `out` as it was, when the type
/// is not one the store uses, the value cannot be encoded, or `out` would grow past `max_len`. The caller then
/// binds the value instead.
pub(super) fn write(value: &(dyn ToSql + Sync), ty: &Type, out: &mut String, max_len: usize) -> Option<()> {
    let start = out.len();
    let written = write_unbounded(value, ty, out, max_len);
    if written.is_none() || out.len() > max_len {
        out.truncate(start);
        return None;
    }
    Some(())
}

fn write_unbounded(value: &(dyn ToSql + Sync), ty: &Type, out: &mut String, max_len: usize) -> Option<()> {
    let mut encoded = BytesMut::new();
    let is_null = value.to_sql_checked(ty, &mut encoded).ok()?;
    // An early answer for a value that cannot fit: no literal is shorter than half its binary encoding.
    if out.len() + encoded.len() / 2 > max_len {
        return None;
    }
    match is_null {
        IsNull::Yes => {
            write!(out, "NULL::{}", type_name(ty)?).ok()?;
            Some(())
        }
        IsNull::No => match ty.kind() {
            Kind::Array(element) => write_array(&encoded, element, out),
            _ => write_scalar(&encoded, ty, out),
        },
    }
}

/// The type's name as SQL spells it in a cast or a `PREPARE` parameter list.
pub(super) fn type_name(ty: &Type) -> Option<String> {
    match ty.kind() {
        Kind::Array(element) if is_scalar(element) => Some(format!("{}[]", element.name())),
        _ if is_scalar(ty) => Some(ty.name().to_owned()),
        _ => None,
    }
}

fn is_scalar(ty: &Type) -> bool {
    [Type::BOOL, Type::INT2, Type::INT4, Type::INT8, Type::FLOAT8, Type::TEXT, Type::BYTEA].contains(ty)
}

fn write_scalar(encoded: &[u8], ty: &Type, out: &mut String) -> Option<()> {
    match *ty {
        Type::BOOL => out.push_str(if *encoded.first()? != 0 { "true" } else { "false" }),
        // Quoted: `-9223372036854775808::int8` would parse as the negation of an out-of-range int8.
        Type::INT2 => write!(out, "'{}'::int2", i16::from_be_bytes(encoded.try_into().ok()?)).ok()?,
        Type::INT4 => write!(out, "'{}'::int4", i32::from_be_bytes(encoded.try_into().ok()?)).ok()?,
        Type::INT8 => write!(out, "'{}'::int8", i64::from_be_bytes(encoded.try_into().ok()?)).ok()?,
        // `{:?}` prints the shortest text that reads back as the same f64 ("inf" and "NaN" included, which
        // float8in accepts).
        Type::FLOAT8 => write!(out, "'{:?}'::float8", f64::from_be_bytes(encoded.try_into().ok()?)).ok()?,
        Type::TEXT => write_text(std::str::from_utf8(encoded).ok()?, out),
        Type::BYTEA => write_bytea(encoded, out),
        _ => return None,
    }
    Some(())
}

/// Printable ASCII in the escape syntax, anything else as its bytes in hex (see the module's documentation).
fn write_text(text: &str, out: &mut String) {
    if !text.bytes().all(is_printable_ascii) {
        return write_utf8_hex(text.as_bytes(), out);
    }
    out.push_str("E'");
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            character => out.push(character),
        }
    }
    out.push('\'');
}

fn is_printable_ascii(byte: u8) -> bool {
    (b' '..=b'~').contains(&byte)
}

/// UTF-8 `bytes` as text the server decodes: pure ASCII, with no backslash, so the same in every session.
/// Schema-qualified so that no `search_path` can put other functions in their place.
fn write_utf8_hex(bytes: &[u8], out: &mut String) {
    out.push_str("pg_catalog.convert_from(pg_catalog.decode('");
    push_hex(bytes, out);
    out.push_str("', 'hex'), 'UTF8')");
}

fn push_hex(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

fn write_bytea(bytes: &[u8], out: &mut String) {
    out.push_str("E'\\\\x");
    push_hex(bytes, out);
    out.push_str("'::bytea");
}

/// A one-dimensional array in the binary format: dimensions, null flag, element type, then each element as a
/// length (-1 for NULL) and its bytes.
fn write_array(encoded: &[u8], element: &Type, out: &mut String) -> Option<()> {
    let mut reader = Reader(encoded);
    let dimensions = reader.i32()?;
    let _has_nulls = reader.i32()?;
    let _element_oid = reader.i32()?;
    let name = type_name(element)?;
    if dimensions == 0 {
        write!(out, "'{{}}'::{name}[]").ok()?;
        return Some(());
    }
    if dimensions != 1 {
        return None;
    }
    let length = reader.i32()?;
    let _lower_bound = reader.i32()?;
    out.push_str("ARRAY[");
    for index in 0..length {
        if index > 0 {
            out.push_str(", ");
        }
        match usize::try_from(reader.i32()?) {
            Ok(size) => write_scalar(reader.take(size)?, element, out)?,
            Err(_) => write!(out, "NULL::{name}").ok()?,
        }
    }
    write!(out, "]::{name}[]").ok()?;
    reader.0.is_empty().then_some(())
}

/// Reads the binary format front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, size: usize) -> Option<&'a [u8]> {
        if size > self.0.len() {
            return None;
        }
        let (taken, rest) = self.0.split_at(size);
        self.0 = rest;
        Some(taken)
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(value: &(dyn ToSql + Sync), ty: Type) -> Option<String> {
        let mut out = String::new();
        write(value, &ty, &mut out, 1024).map(|()| out)
    }

    #[test]
    fn strings_escape_quotes_and_backslashes_whatever_the_server_setting() {
        assert_eq!(literal(&"/a/{id}", Type::TEXT).unwrap(), "E'/a/{id}'");
        assert_eq!(literal(&"it's \\ here", Type::TEXT).unwrap(), "E'it''s \\\\ here'");
    }

    #[test]
    fn text_that_is_not_printable_ascii_is_written_as_its_bytes() {
        let decoded = |hex: &str| format!("pg_catalog.convert_from(pg_catalog.decode('{hex}', 'hex'), 'UTF8')");
        assert_eq!(literal(&"é'", Type::TEXT).unwrap(), decoded("c3a927"));
        // Under SJIS, 0x81 opens a two-byte character that would swallow the backslash after it.
        assert_eq!(literal(&"\u{81}\\'", Type::TEXT).unwrap(), decoded("c2815c27"));
        assert_eq!(literal(&"a\nb", Type::TEXT).unwrap(), decoded("610a62"));
        assert_eq!(literal(&"\0", Type::TEXT).unwrap(), decoded("00"), "the server refuses it, as when bound");
        let names = vec!["ok".to_owned(), "ü".to_owned()];
        assert_eq!(literal(&names, Type::TEXT_ARRAY).unwrap(), format!("ARRAY[E'ok', {}]::text[]", decoded("c3bc")));
    }

    #[test]
    fn every_literal_is_printable_ascii() {
        for text in ["", "plain", "it's", "back\\slash", "日本語", "\u{81}\\", "tab\t", "\u{7f}", "\u{10ffff}"] {
            let written = literal(&text, Type::TEXT).unwrap();
            assert!(written.bytes().all(is_printable_ascii), "{text:?} became {written:?}");
        }
    }

    #[test]
    fn numbers_bytes_and_null_keep_their_types() {
        assert_eq!(literal(&-7_i64, Type::INT8).unwrap(), "'-7'::int8");
        assert_eq!(literal(&i64::MIN, Type::INT8).unwrap(), "'-9223372036854775808'::int8");
        assert_eq!(literal(&201_i16, Type::INT2).unwrap(), "'201'::int2");
        assert_eq!(literal(&0.1_f64, Type::FLOAT8).unwrap(), "'0.1'::float8");
        assert_eq!(literal(&true, Type::BOOL).unwrap(), "true");
        assert_eq!(literal(&vec![0_u8, 0xab], Type::BYTEA).unwrap(), "E'\\\\x00ab'::bytea");
        assert_eq!(literal(&None::<i64>, Type::INT8).unwrap(), "NULL::int8");
    }

    #[test]
    fn arrays_list_their_elements() {
        let names = vec!["content-type".to_owned(), "x-a'b".to_owned()];
        assert_eq!(literal(&names, Type::TEXT_ARRAY).unwrap(), "ARRAY[E'content-type', E'x-a''b']::text[]");
        assert_eq!(literal(&Vec::<String>::new(), Type::TEXT_ARRAY).unwrap(), "ARRAY[]::text[]");
        let values = vec![b"json".to_vec()];
        assert_eq!(literal(&values, Type::BYTEA_ARRAY).unwrap(), "ARRAY[E'\\\\x6a736f6e'::bytea]::bytea[]");
    }

    #[test]
    fn a_value_past_the_length_limit_is_left_to_binding() {
        let mut out = String::from("EXECUTE x(");
        assert_eq!(write(&vec![0_u8; 600], &Type::BYTEA, &mut out, 1024), None);
        assert_eq!(out, "EXECUTE x(", "nothing written");
        // Short non-ASCII elements take far more room as literals than encoded: the limit holds all the same.
        let names = vec!["é".to_owned(); 20];
        assert_eq!(write(&names, &Type::TEXT_ARRAY, &mut out, 1024), None);
        assert_eq!(out, "EXECUTE x(", "nothing written");
        let mut alone = String::new();
        write(&names, &Type::TEXT_ARRAY, &mut alone, usize::MAX).unwrap();
        let fits = out.len() + alone.len();
        assert_eq!(write(&names, &Type::TEXT_ARRAY, &mut out, fits - 1), None);
        assert_eq!(write(&names, &Type::TEXT_ARRAY, &mut out, fits), Some(()));
        assert_eq!(out.len(), fits);
    }

    #[test]
    fn an_unknown_type_is_left_to_binding() {
        assert_eq!(literal(&1.5_f32, Type::FLOAT4), None);
        assert_eq!(type_name(&Type::TIMESTAMPTZ), None);
    }
}
