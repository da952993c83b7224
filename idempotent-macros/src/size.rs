//! Compile-time parser for the `max_request_body` and `max_response_body` byte sizes.
//!
//! Sizes are written as strings (`"1MiB"`, `"64KB"`) so that a cap reads the way it is meant; parsing them here
//! makes a typo a compile error on the literal and leaves a plain `usize` constant in the expansion.
//!
//! The grammar is `<digits>[ ]<unit>`: a whole number, at most one space, and one of `B`, `KB`, `KiB`, `MB`,
//! `MiB`, `GB`, `GiB`. Units are case-sensitive because `Mb` (megabit) and `MB` are different things: refusing
//! the ambiguous spelling is safer than guessing.

use std::fmt;

/// The accepted forms, appended to every size error so the fix is in the message.
pub(crate) const EXPECTED: &str =
    r#"expected a size like "100B", "64KB", "512KiB", "10MB", "1MiB" or "1GiB", or a number of bytes"#;

/// The units, with their size in bytes.
const UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KB", 1_000),
    ("KiB", 1 << 10),
    ("MB", 1_000_000),
    ("MiB", 1 << 20),
    ("GB", 1_000_000_000),
    ("GiB", 1 << 30),
];

/// Why a size string was refused. Kept separate from `syn::Error` so the parser is testable without spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SizeError {
    /// The string is empty.
    Empty,
    /// No number at the start, like `"MiB"`.
    MissingNumber,
    /// A number with no unit, like `"1024"` (write the integer `1024` for bytes).
    MissingUnit,
    /// Not one of the units; `suggestion` is the unit it matches ignoring case, if any.
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The correctly cased unit, for `"1mib"`.
        suggestion: Option<&'static str>,
    },
    /// A character that cannot appear there, like the `.` in `"1.5MiB"` or a second space.
    UnexpectedChar(char),
    /// A zero cap would refuse every request.
    Zero,
    /// The size does not fit in `u64` bytes.
    Overflow,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeError::Empty => f.write_str("the size is empty"),
            SizeError::MissingNumber => f.write_str("the size must start with a whole number"),
            SizeError::MissingUnit => {
                f.write_str("the size has no unit (for a number of bytes, write an integer without quotes)")
            }
            SizeError::UnknownUnit { unit, suggestion: Some(suggestion) } => {
                write!(f, "unknown unit `{unit}` (units are case-sensitive: did you mean `{suggestion}`?)")
            }
            SizeError::UnknownUnit { unit, suggestion: None } => {
                write!(f, "unknown unit `{unit}` (the units are B, KB, KiB, MB, MiB, GB and GiB)")
            }
            SizeError::UnexpectedChar(c) => {
                write!(f, "unexpected character `{}`", c.escape_debug())
            }
            SizeError::Zero => f.write_str("the size must be larger than zero"),
            SizeError::Overflow => f.write_str("the size is too large"),
        }
    }
}

/// Parses a size string like `"512KiB"` into bytes (greater than zero).
pub(crate) fn parse_size(text: &str) -> Result<u64, SizeError> {
    if text.is_empty() {
        return Err(SizeError::Empty);
    }
    let digits_end = text.char_indices().find(|(_, c)| !c.is_ascii_digit()).map_or(text.len(), |(index, _)| index);
    let (number, rest) = text.split_at(digits_end);
    if number.is_empty() {
        return match rest.chars().next() {
            Some(c) if c.is_alphabetic() => Err(SizeError::MissingNumber),
            Some(c) => Err(SizeError::UnexpectedChar(c)),
            None => Err(SizeError::Empty),
        };
    }

    let unit = rest.strip_prefix(' ').unwrap_or(rest);
    if unit.is_empty() {
        return Err(SizeError::MissingUnit);
    }
    if let Some(c) = unit.chars().find(|c| !c.is_alphabetic()) {
        return Err(SizeError::UnexpectedChar(c));
    }
    let Some(&(_, per_unit)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        let suggestion = UNITS.iter().map(|(name, _)| *name).find(|name| name.eq_ignore_ascii_case(unit));
        return Err(SizeError::UnknownUnit { unit: unit.to_owned(), suggestion });
    };

    // Digits only, so the only way `parse` fails is overflow.
    let count: u64 = number.parse().map_err(|_| SizeError::Overflow)?;
    match count.checked_mul(per_unit) {
        Some(0) => Err(SizeError::Zero),
        Some(bytes) => Ok(bytes),
        None => Err(SizeError::Overflow),
    }
}

#[cfg(test)]
mod tests {
    use super::{SizeError, parse_size};

    #[test]
    fn every_unit() {
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("64KB"), Ok(64_000));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1_073_741_824));
    }

    #[test]
    fn one_space_between_number_and_unit() {
        assert_eq!(parse_size("1 MiB"), Ok(1_048_576));
        assert_eq!(parse_size("100 B"), Ok(100));
        assert_eq!(parse_size("1  MiB"), Err(SizeError::UnexpectedChar(' ')));
        assert_eq!(parse_size("1\tMiB"), Err(SizeError::UnexpectedChar('\t')));
        assert_eq!(parse_size(" 1MiB"), Err(SizeError::UnexpectedChar(' ')));
        assert_eq!(parse_size("1MiB "), Err(SizeError::UnexpectedChar(' ')));
    }

    #[test]
    fn units_are_case_sensitive() {
        assert_eq!(parse_size("1mib"), Err(SizeError::UnknownUnit { unit: "mib".into(), suggestion: Some("MiB") }));
        assert_eq!(parse_size("1Kb"), Err(SizeError::UnknownUnit { unit: "Kb".into(), suggestion: Some("KB") }));
        assert_eq!(parse_size("1b"), Err(SizeError::UnknownUnit { unit: "b".into(), suggestion: Some("B") }));
    }

    #[test]
    fn unknown_units() {
        for unit in ["TB", "TiB", "K", "M", "bytes", "KiBs", "MiB\u{301}"] {
            let text = format!("1{unit}");
            assert!(
                matches!(
                    parse_size(&text),
                    Err(SizeError::UnknownUnit { suggestion: None, .. } | SizeError::UnexpectedChar(_))
                ),
                "{text}: {:?}",
                parse_size(&text)
            );
        }
        assert_eq!(parse_size("1TB"), Err(SizeError::UnknownUnit { unit: "TB".into(), suggestion: None }));
    }

    #[test]
    fn empty_and_missing_parts() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert_eq!(parse_size("MiB"), Err(SizeError::MissingNumber));
        assert_eq!(parse_size("1024"), Err(SizeError::MissingUnit));
        assert_eq!(parse_size("1024 "), Err(SizeError::MissingUnit));
        assert_eq!(parse_size(" "), Err(SizeError::UnexpectedChar(' ')));
    }

    #[test]
    fn zero() {
        assert_eq!(parse_size("0B"), Err(SizeError::Zero));
        assert_eq!(parse_size("0MiB"), Err(SizeError::Zero));
        assert_eq!(parse_size("000 GiB"), Err(SizeError::Zero));
    }

    #[test]
    fn garbage() {
        assert_eq!(parse_size("1.5MiB"), Err(SizeError::UnexpectedChar('.')));
        assert_eq!(parse_size("-1MiB"), Err(SizeError::UnexpectedChar('-')));
        assert_eq!(parse_size("1_000B"), Err(SizeError::UnexpectedChar('_')));
        assert_eq!(parse_size("1MiB1KiB"), Err(SizeError::UnexpectedChar('1')));
        assert_eq!(parse_size("１MiB"), Err(SizeError::UnexpectedChar('１')));
        assert_eq!(parse_size("💾"), Err(SizeError::UnexpectedChar('💾')));
    }

    #[test]
    fn overflow() {
        assert_eq!(parse_size("99999999999999999999B"), Err(SizeError::Overflow));
        assert_eq!(parse_size("18446744073709551615B"), Ok(u64::MAX));
        assert_eq!(parse_size("18446744073709551615KiB"), Err(SizeError::Overflow));
        assert_eq!(parse_size("17179869184GiB"), Err(SizeError::Overflow));
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            parse_size("1mib").unwrap_err().to_string(),
            "unknown unit `mib` (units are case-sensitive: did you mean `MiB`?)"
        );
        assert_eq!(
            parse_size("1TB").unwrap_err().to_string(),
            "unknown unit `TB` (the units are B, KB, KiB, MB, MiB, GB and GiB)"
        );
        assert_eq!(
            parse_size("1024").unwrap_err().to_string(),
            "the size has no unit (for a number of bytes, write an integer without quotes)"
        );
    }
}
