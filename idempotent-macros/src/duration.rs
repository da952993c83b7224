//! Compile-time parser for the `ttl` and `lease` durations.
//!
//! Durations are written as strings (`"24h"`, `"1h30m"`) because that is how people think about them, but the
//! runtime wants a number: parsing here turns a typo into a compile error on the literal instead of a panic or a
//! surprise at startup, and the expansion carries a plain `Duration::from_secs(N)` constant.
//!
//! The grammar is one or more `<digits><unit>` parts, summed, where the unit is `s`, `m`, `h` or `d`. ASCII
//! whitespace is allowed around and inside parts (`"1h 30m"`, `"90 s"`), never inside a number.

use std::fmt;

/// The accepted forms, appended to every duration error so the fix is in the message.
pub(crate) const EXPECTED: &str = r#"expected a duration like "30s", "15m", "24h", "7d" or "1h30m""#;

/// Why a duration string was refused. Kept separate from `syn::Error` so the parser is testable without spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Nothing but whitespace.
    Empty,
    /// A unit (or word) with no number in front of it, like `"h"`.
    MissingNumber {
        /// The unit as written.
        unit: String,
    },
    /// A number with no unit after it, like `"30"`.
    MissingUnit {
        /// The number as written.
        number: String,
    },
    /// A unit other than `s`, `m`, `h`, `d`, like `"30ms"`.
    UnknownUnit {
        /// The unit as written.
        unit: String,
    },
    /// A character that can start neither a number nor a unit, like the `.` in `"1.5h"`.
    UnexpectedChar(char),
    /// All parts add up to zero seconds: a zero ttl or lease would make the option useless.
    Zero,
    /// The total does not fit in `u64` seconds.
    Overflow,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => f.write_str("the duration is empty"),
            DurationError::MissingNumber { unit } => write!(f, "`{unit}` has no number before it"),
            DurationError::MissingUnit { number } => {
                write!(f, "`{number}` has no unit (s, m, h or d)")
            }
            DurationError::UnknownUnit { unit } => {
                write!(f, "unknown unit `{unit}` (the units are s, m, h and d)")
            }
            DurationError::UnexpectedChar(c) => {
                write!(f, "unexpected character `{}`", c.escape_debug())
            }
            DurationError::Zero => f.write_str("the duration must be longer than zero"),
            DurationError::Overflow => f.write_str("the duration is too large"),
        }
    }
}

/// Seconds in one unit, or `None` for an unknown unit.
fn unit_seconds(unit: &str) -> Option<u64> {
    match unit {
        "s" => Some(1),
        "m" => Some(60),
        "h" => Some(60 * 60),
        "d" => Some(24 * 60 * 60),
        _ => None,
    }
}

/// Parses a duration string like `"1h30m"` into whole seconds (greater than zero).
pub(crate) fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let mut chars = text.chars().peekable();
    let mut total: u64 = 0;
    let mut parts = 0usize;

    loop {
        while chars.next_if(char::is_ascii_whitespace).is_some() {}
        let Some(&first) = chars.peek() else { break };

        let mut number = String::new();
        while let Some(digit) = chars.next_if(char::is_ascii_digit) {
            number.push(digit);
        }
        if number.is_empty() {
            if first.is_alphabetic() {
                let unit: String = std::iter::from_fn(|| chars.next_if(|c| c.is_alphabetic())).collect();
                return Err(DurationError::MissingNumber { unit });
            }
            return Err(DurationError::UnexpectedChar(first));
        }

        while chars.next_if(char::is_ascii_whitespace).is_some() {}
        let unit: String = std::iter::from_fn(|| chars.next_if(|c| c.is_alphabetic())).collect();
        if unit.is_empty() {
            return match chars.peek() {
                None => Err(DurationError::MissingUnit { number }),
                Some(&c) => Err(DurationError::UnexpectedChar(c)),
            };
        }
        let per_unit = unit_seconds(&unit).ok_or(DurationError::UnknownUnit { unit })?;

        // Digits only, so the only way `parse` fails is overflow.
        let count: u64 = number.parse().map_err(|_| DurationError::Overflow)?;
        let seconds = count.checked_mul(per_unit).ok_or(DurationError::Overflow)?;
        total = total.checked_add(seconds).ok_or(DurationError::Overflow)?;
        parts += 1;
    }

    match (parts, total) {
        (0, _) => Err(DurationError::Empty),
        (_, 0) => Err(DurationError::Zero),
        (_, total) => Ok(total),
    }
}

/// Formats seconds back into the compact form (`5400` -> `"1h30m"`), for error messages that compare two options.
pub(crate) fn format_seconds(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".to_owned();
    }
    let mut rest = seconds;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        let count = rest / size;
        rest %= size;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(unit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{DurationError, format_seconds, parse_duration};

    #[test]
    fn every_unit() {
        assert_eq!(parse_duration("1s"), Ok(1));
        assert_eq!(parse_duration("1m"), Ok(60));
        assert_eq!(parse_duration("1h"), Ok(3_600));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
    }

    #[test]
    fn numbers_larger_than_the_next_unit() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("120m"), Ok(7_200));
        assert_eq!(parse_duration("36h"), Ok(129_600));
        assert_eq!(parse_duration("0030s"), Ok(30));
    }

    #[test]
    fn sums() {
        assert_eq!(parse_duration("1h30m"), Ok(5_400));
        assert_eq!(parse_duration("1d2h3m4s"), Ok(86_400 + 7_200 + 180 + 4));
        // Any order and repeats are summed: the result is still unambiguous.
        assert_eq!(parse_duration("30m1h"), Ok(5_400));
        assert_eq!(parse_duration("1h1h"), Ok(7_200));
        // A zero part is fine as long as the total is not zero.
        assert_eq!(parse_duration("0h30s"), Ok(30));
    }

    #[test]
    fn whitespace() {
        assert_eq!(parse_duration(" 24h "), Ok(86_400));
        assert_eq!(parse_duration("1h 30m"), Ok(5_400));
        assert_eq!(parse_duration("90 s"), Ok(90));
        assert_eq!(parse_duration("\t1h\n"), Ok(3_600));
        assert_eq!(parse_duration("1 0s"), Err(DurationError::UnexpectedChar('0')), "whitespace never splits a number");
    }

    #[test]
    fn empty() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("   "), Err(DurationError::Empty));
    }

    #[test]
    fn zero() {
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert_eq!(parse_duration("0h0m"), Err(DurationError::Zero));
        assert_eq!(parse_duration("000d"), Err(DurationError::Zero));
    }

    #[test]
    fn missing_unit() {
        assert_eq!(parse_duration("30"), Err(DurationError::MissingUnit { number: "30".into() }));
        assert_eq!(parse_duration("1h30"), Err(DurationError::MissingUnit { number: "30".into() }));
    }

    #[test]
    fn missing_number() {
        assert_eq!(parse_duration("h"), Err(DurationError::MissingNumber { unit: "h".into() }));
        assert_eq!(parse_duration("1h m"), Err(DurationError::MissingNumber { unit: "m".into() }));
        assert_eq!(parse_duration("hour"), Err(DurationError::MissingNumber { unit: "hour".into() }));
    }

    #[test]
    fn unknown_unit() {
        for (text, unit) in
            [("30ms", "ms"), ("5min", "min"), ("1H", "H"), ("2w", "w"), ("1y", "y"), ("3ч", "ч"), ("1hour", "hour")]
        {
            assert_eq!(parse_duration(text), Err(DurationError::UnknownUnit { unit: unit.into() }), "{text}");
        }
    }

    #[test]
    fn garbage() {
        assert_eq!(parse_duration("1.5h"), Err(DurationError::UnexpectedChar('.')));
        assert_eq!(parse_duration("-1h"), Err(DurationError::UnexpectedChar('-')));
        assert_eq!(parse_duration("+1h"), Err(DurationError::UnexpectedChar('+')));
        assert_eq!(parse_duration("1h,30m"), Err(DurationError::UnexpectedChar(',')));
        assert_eq!(parse_duration("1_000s"), Err(DurationError::UnexpectedChar('_')));
        // Full-width digits are not ASCII digits.
        assert_eq!(parse_duration("５s"), Err(DurationError::UnexpectedChar('５')));
        assert_eq!(parse_duration("🕐"), Err(DurationError::UnexpectedChar('🕐')));
    }

    #[test]
    fn overflow() {
        assert_eq!(parse_duration("99999999999999999999s"), Err(DurationError::Overflow), "the number itself");
        assert_eq!(parse_duration("18446744073709551615s"), Ok(u64::MAX), "u64::MAX seconds still fits");
        assert_eq!(parse_duration("18446744073709551615d"), Err(DurationError::Overflow), "number times unit");
        assert_eq!(parse_duration("18446744073709551615s1s"), Err(DurationError::Overflow), "the sum");
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            DurationError::UnknownUnit { unit: "ms".into() }.to_string(),
            "unknown unit `ms` (the units are s, m, h and d)"
        );
        assert_eq!(DurationError::UnexpectedChar('\n').to_string(), "unexpected character `\\n`");
        assert_eq!(DurationError::Zero.to_string(), "the duration must be longer than zero");
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_seconds(0), "0s");
        assert_eq!(format_seconds(30), "30s");
        assert_eq!(format_seconds(90), "1m30s");
        assert_eq!(format_seconds(5_400), "1h30m");
        assert_eq!(format_seconds(86_400), "1d");
        assert_eq!(format_seconds(90_061), "1d1h1m1s");
        for text in ["1h30m", "7d", "45s", "2d12h"] {
            let seconds = parse_duration(text).unwrap();
            assert_eq!(format_seconds(seconds), text);
        }
    }
}
