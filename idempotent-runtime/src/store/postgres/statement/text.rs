//! PostgreSQL's text output, for the rows of a statement sent through the simple query protocol: what the server's
//! `boolout`, `int8out`, `byteaout` (in either `bytea_output`) and `array_out` write. Each decoder answers `None`
//! for text those functions never write, which the caller reports as a corrupt record.

/// `t` or `f`.
pub(crate) fn boolean(text: &str) -> Option<bool> {
    match text {
        "t" => Some(true),
        "f" => Some(false),
        _ => None,
    }
}

/// A `bytea` in the `hex` output (`\x` and two hex digits a byte, the default) or the `escape` output (a byte
/// outside printable ASCII as `\` and three octal digits, a backslash doubled, any other byte as itself). A
/// string that starts with `\x` can only be hex: in the escape output a backslash is followed by another or a
/// digit.
pub(crate) fn bytea(text: &str) -> Option<Vec<u8>> {
    match text.strip_prefix("\\x") {
        Some(digits) => hex(digits.as_bytes()),
        None => escaped(text.as_bytes()),
    }
}

fn hex(digits: &[u8]) -> Option<Vec<u8>> {
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    };
    digits.chunks_exact(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

fn escaped(text: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&byte, after)) = rest.split_first() {
        if byte != b'\\' {
            bytes.push(byte);
            rest = after;
            continue;
        }
        match after {
            [b'\\', tail @ ..] => {
                bytes.push(b'\\');
                rest = tail;
            }
            [high @ b'0'..=b'3', middle @ b'0'..=b'7', low @ b'0'..=b'7', tail @ ..] => {
                bytes.push((high - b'0') << 6 | (middle - b'0') << 3 | (low - b'0'));
                rest = tail;
            }
            _ => return None,
        }
    }
    Some(bytes)
}

/// The elements of a one-dimensional array with the default lower bound and no NULL element, in the text output:
/// `{a,"b c","d\"e"}`. An element is quoted when it is empty or holds a delimiter, a quote, a backslash, a brace,
/// white space or the word NULL; inside quotes a backslash escapes the next character.
pub(crate) fn array(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut elements = Vec::new();
    let mut characters = inner.chars().peekable();
    while characters.peek().is_some() {
        let mut element = String::new();
        if characters.next_if_eq(&'"').is_some() {
            loop {
                match characters.next()? {
                    '"' => break,
                    '\\' => element.push(characters.next()?),
                    character => element.push(character),
                }
            }
        } else {
            while let Some(character) = characters.next_if(|character| *character != ',') {
                element.push(character);
            }
            // An unquoted NULL is a NULL element, and `{}` inside means more than one dimension.
            if element.is_empty() || element.eq_ignore_ascii_case("null") || element.contains(['{', '}', '"']) {
                return None;
            }
        }
        elements.push(element);
        match characters.next() {
            Some(',') if characters.peek().is_some() => {}
            None => {}
            _ => return None,
        }
    }
    Some(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_t_or_f() {
        assert_eq!(boolean("t"), Some(true));
        assert_eq!(boolean("f"), Some(false));
        assert_eq!(boolean("true"), None);
    }

    #[test]
    fn bytea_reads_both_outputs() {
        assert_eq!(bytea("\\x00ab7F").unwrap(), [0x00, 0xab, 0x7f]);
        assert_eq!(bytea("\\x").unwrap(), Vec::<u8>::new());
        assert_eq!(bytea("\\x0"), None, "an odd digit count");
        assert_eq!(bytea("\\x0g"), None);
        // bytea_output = escape: printable bytes as themselves, a backslash doubled, the rest in octal.
        assert_eq!(bytea("ab\\\\c\\000\\377").unwrap(), b"ab\\c\x00\xff");
        assert_eq!(bytea("").unwrap(), Vec::<u8>::new());
        assert_eq!(bytea("\\9"), None);
        assert_eq!(bytea("trailing\\"), None);
    }

    #[test]
    fn arrays_unquote_and_unescape_their_elements() {
        assert_eq!(array("{}").unwrap(), Vec::<String>::new());
        assert_eq!(array("{content-type,x-request-id}").unwrap(), ["content-type", "x-request-id"]);
        assert_eq!(array(r#"{"a b","c\"d","e\\f",""}"#).unwrap(), ["a b", "c\"d", "e\\f", ""]);
        // A bytea[] element: the element's own backslash is escaped inside the quotes.
        let values = array(r#"{"\\x6a736f6e"}"#).unwrap();
        assert_eq!(bytea(&values[0]).unwrap(), b"json");
    }

    #[test]
    fn arrays_refuse_what_the_store_never_writes() {
        assert_eq!(array("{NULL}"), None);
        assert_eq!(array("{{a},{b}}"), None);
        assert_eq!(array("[0:0]={a}"), None);
        assert_eq!(array("{a,}"), None);
        assert_eq!(array(r#"{"a"b}"#), None);
        assert_eq!(array(r#"{"unterminated}"#), None);
        assert_eq!(array("a"), None);
    }
}
