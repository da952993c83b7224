//! The idempotency key's grammar (docs/contract.md, section 2).
//!
//! A value that starts with `"` is an RFC 8941 sf-string (printable ASCII, only `\"` and `\\` escapes); any other
//! value is taken as it is and must be printable ASCII without `"`, `,` or `\`. After unquoting the key has 1..=255
//! characters, so `"abc"` and `abc` are the same key. The IETF draft sends sf-strings; bare values accept what
//! clients send in practice (UUIDs, browser-generated tokens).

use std::fmt;

/// The longest key accepted, in characters after unquoting.
pub const MAX_KEY_LEN: usize = 255;

/// A validated idempotency key, unquoted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a raw key value: surrounding spaces and tabs (HTTP's optional whitespace) are ignored.
    ///
    /// # Errors
    ///
    /// A [`KeyError`] saying what breaks the grammar: empty, longer than [`MAX_KEY_LEN`] characters, a character
    /// outside printable ASCII (or `"`, `,`, `\` in a bare key), or a malformed quoted string.
    pub fn parse(raw: &[u8]) -> Result<Self, KeyError> {
        let raw = trim_optional_whitespace(raw);
        let key = match raw.first() {
            None => return Err(KeyError::Empty),
            Some(b'"') => parse_sf_string(raw)?,
            Some(_) => parse_bare(raw)?,
        };
        match key.len() {
            0 => Err(KeyError::Empty),
            len if len > MAX_KEY_LEN => Err(KeyError::TooLong { len }),
            _ => Ok(Self(key)),
        }
    }

    /// The unquoted key. Treat it as a secret-ish value: log [`IdempotencyKey::redacted`] instead.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form of the key that is safe for logs: its first four characters and its length, or only its length
    /// when the key is too short for a prefix to leave most of it hidden.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

/// A key as logs show it (see [`IdempotencyKey::redacted`]), for keys that come from elsewhere (a message).
pub(crate) fn redact(key: &str) -> String {
    LoggedKey::Given(key).to_string()
}

/// The key of a request as its log lines and span show it: redacted, or `derived` for a route whose key is the
/// request itself. Formatted only when a line or a span field is written, so a request that logs nothing pays
/// nothing for it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LoggedKey<'a> {
    /// A key the client sent, shown as [`IdempotencyKey::redacted`] says.
    Given(&'a str),
    /// `key = "derived"`, or a form route whose field was absent.
    Derived,
}

impl fmt::Display for LoggedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match self {
            Self::Given(key) => key,
            Self::Derived => return f.write_str("derived"),
        };
        let len = key.len();
        if len < 12 {
            return write!(f, "…({len} chars)");
        }
        let prefix_end = key.char_indices().nth(4).map_or(len, |(at, _)| at);
        write!(f, "{}…({len} chars)", &key[..prefix_end])
    }
}

/// Keys are client secrets of a sort (a guessed key could read a replay in `global` scope), so `Debug` redacts.
impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdempotencyKey").field(&self.redacted()).finish()
    }
}

/// Why a key value was refused; every variant is answered with 400 `key-invalid` (or `key-missing` for
/// [`KeyError::Empty`] when the key is required).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The value is empty (or `""`): answered `key-invalid`, like any malformed value (an absent key is
    /// `key-missing`).
    Empty,
    /// More than [`MAX_KEY_LEN`] characters after unquoting.
    TooLong {
        /// The length found.
        len: usize,
    },
    /// A byte that is not allowed at this position (control byte, non-ASCII, or `"` `,` `\` in a bare key).
    InvalidByte {
        /// The offending byte.
        byte: u8,
        /// Its 0-based position in the value.
        position: usize,
    },
    /// A backslash in an sf-string followed by something other than `"` or `\`.
    InvalidEscape {
        /// 0-based position of the backslash.
        position: usize,
    },
    /// An sf-string without its closing quote.
    UnterminatedString,
    /// Bytes after the closing quote of an sf-string.
    TrailingData,
    /// The key was sent more than once (two header instances or two query/form fields).
    Repeated,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the key is empty; send 1 to {MAX_KEY_LEN} characters"),
            Self::TooLong { len } => write!(f, "the key has {len} characters; at most {MAX_KEY_LEN} are allowed"),
            Self::InvalidByte { byte, position } => write!(
                f,
                "byte 0x{byte:02x} at position {position} is not allowed; send printable ASCII, \
                 or quote the key as a structured-field string"
            ),
            Self::InvalidEscape { position } => {
                write!(f, "invalid escape at position {position}; only \\\" and \\\\ are allowed")
            }
            Self::UnterminatedString => write!(f, "the quoted key has no closing quote"),
            Self::TrailingData => write!(f, "characters follow the closing quote of the key"),
            Self::Repeated => write!(f, "the key was sent more than once; send exactly one"),
        }
    }
}

impl std::error::Error for KeyError {}

fn parse_bare(raw: &[u8]) -> Result<String, KeyError> {
    if let Some(position) = raw.iter().position(|&byte| !is_bare_key_byte(byte)) {
        return Err(KeyError::InvalidByte { byte: raw[position], position });
    }
    // Every byte was checked to be ASCII, so this cannot fail; map the impossible error rather than unwrap.
    String::from_utf8(raw.to_vec()).map_err(|_| KeyError::InvalidByte { byte: raw[0], position: 0 })
}

fn is_bare_key_byte(byte: u8) -> bool {
    matches!(byte, 0x21..=0x7e) && !matches!(byte, b'"' | b',' | b'\\')
}

/// RFC 8941 section 4.2.5, restricted to the whole value being one string.
fn parse_sf_string(raw: &[u8]) -> Result<String, KeyError> {
    let mut key = String::with_capacity(raw.len());
    let mut position = 1;
    while position < raw.len() {
        match raw[position] {
            b'\\' => match raw.get(position + 1) {
                Some(&escaped @ (b'"' | b'\\')) => {
                    key.push(char::from(escaped));
                    position += 2;
                }
                _ => return Err(KeyError::InvalidEscape { position }),
            },
            b'"' if position + 1 == raw.len() => return Ok(key),
            b'"' => return Err(KeyError::TrailingData),
            byte @ 0x20..=0x7e => {
                key.push(char::from(byte));
                position += 1;
            }
            byte => return Err(KeyError::InvalidByte { byte, position }),
        }
    }
    Err(KeyError::UnterminatedString)
}

/// Trims only SP and HTAB, HTTP's optional whitespace; other control bytes stay and are refused.
fn trim_optional_whitespace(raw: &[u8]) -> &[u8] {
    let is_ows = |byte: &u8| matches!(byte, b' ' | b'\t');
    let start = raw.iter().position(|byte| !is_ows(byte)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|byte| !is_ows(byte)).map_or(start, |last| last + 1);
    &raw[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<String, KeyError> {
        IdempotencyKey::parse(raw.as_bytes()).map(|key| key.as_str().to_owned())
    }

    #[test]
    fn bare_values_are_taken_as_they_are() {
        assert_eq!(parse("8e03978e-40d5-43e8-bc93-6894a57f9324").unwrap(), "8e03978e-40d5-43e8-bc93-6894a57f9324");
        assert_eq!(parse("a").unwrap(), "a");
        assert_eq!(parse("!#$%&'()*+-./:;<=>?@[]^_`{|}~").unwrap(), "!#$%&'()*+-./:;<=>?@[]^_`{|}~");
    }

    #[test]
    fn quoted_and_bare_forms_are_the_same_key() {
        assert_eq!(parse("\"abc\"").unwrap(), parse("abc").unwrap());
    }

    #[test]
    fn sf_strings_unescape_quote_and_backslash_and_allow_spaces() {
        assert_eq!(parse(r#""a\"b\\c d""#).unwrap(), r#"a"b\c d"#);
        assert_eq!(parse(r#""a,b""#).unwrap(), "a,b");
    }

    #[test]
    fn surrounding_optional_whitespace_is_ignored() {
        assert_eq!(parse(" \tabc\t ").unwrap(), "abc");
        assert_eq!(parse("  \"abc\"  ").unwrap(), "abc");
    }

    #[test]
    fn empty_values_are_refused() {
        assert_eq!(parse(""), Err(KeyError::Empty));
        assert_eq!(parse("   "), Err(KeyError::Empty));
        assert_eq!(parse("\"\""), Err(KeyError::Empty));
    }

    #[test]
    fn length_limit_is_counted_after_unquoting() {
        let longest = "k".repeat(MAX_KEY_LEN);
        assert_eq!(parse(&longest).unwrap(), longest);
        assert_eq!(parse(&format!("\"{longest}\"")).unwrap(), longest);
        assert_eq!(parse(&"k".repeat(MAX_KEY_LEN + 1)), Err(KeyError::TooLong { len: MAX_KEY_LEN + 1 }));
        // 255 escaped quotes are 510 bytes on the wire but 255 characters of key.
        let escaped = format!("\"{}\"", r#"\""#.repeat(MAX_KEY_LEN));
        assert_eq!(parse(&escaped).unwrap().len(), MAX_KEY_LEN);
    }

    #[test]
    fn bare_values_refuse_quote_comma_backslash_and_space() {
        assert_eq!(parse("a,b"), Err(KeyError::InvalidByte { byte: b',', position: 1 }));
        assert_eq!(parse("a\\b"), Err(KeyError::InvalidByte { byte: b'\\', position: 1 }));
        assert_eq!(parse("a\"b"), Err(KeyError::InvalidByte { byte: b'"', position: 1 }));
        assert_eq!(parse("a b"), Err(KeyError::InvalidByte { byte: b' ', position: 1 }));
    }

    #[test]
    fn control_bytes_are_refused_in_both_forms() {
        assert_eq!(parse("a\u{7f}"), Err(KeyError::InvalidByte { byte: 0x7f, position: 1 }));
        assert_eq!(parse("a\u{1}"), Err(KeyError::InvalidByte { byte: 0x01, position: 1 }));
        assert_eq!(parse("\"a\u{0}\""), Err(KeyError::InvalidByte { byte: 0x00, position: 2 }));
        assert_eq!(parse("\"a\tb\""), Err(KeyError::InvalidByte { byte: b'\t', position: 2 }));
    }

    #[test]
    fn non_ascii_is_refused_in_both_forms() {
        assert_eq!(parse("clé"), Err(KeyError::InvalidByte { byte: 0xc3, position: 2 }));
        assert_eq!(parse("\"clé\""), Err(KeyError::InvalidByte { byte: 0xc3, position: 3 }));
        assert!(IdempotencyKey::parse(&[b'a', 0xff]).is_err());
    }

    #[test]
    fn malformed_sf_strings_are_refused() {
        assert_eq!(parse("\"abc"), Err(KeyError::UnterminatedString));
        assert_eq!(parse("\""), Err(KeyError::UnterminatedString));
        assert_eq!(parse(r#""abc\""#), Err(KeyError::UnterminatedString));
        assert_eq!(parse(r#""a\nb""#), Err(KeyError::InvalidEscape { position: 2 }));
        assert_eq!(parse(r#""abc\"#), Err(KeyError::InvalidEscape { position: 4 }));
        assert_eq!(parse("\"abc\"def"), Err(KeyError::TrailingData));
        // A list of two strings (what a proxy makes of two header instances) is not one key.
        assert_eq!(parse("\"a\", \"b\""), Err(KeyError::TrailingData));
    }

    #[test]
    fn debug_and_redacted_never_show_the_whole_key() {
        let key = IdempotencyKey::parse(b"secret-key-123").unwrap();
        assert_eq!(key.redacted(), "secr…(14 chars)");
        assert!(!format!("{key:?}").contains("secret-key-123"));
        assert_eq!(IdempotencyKey::parse(b"1234").unwrap().redacted(), "…(4 chars)", "short keys show no prefix");
    }
}
