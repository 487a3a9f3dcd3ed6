//! Duration strings in the config: `"200ms"`, `"1s"`, `"1.5s"`, `"2m"`, `"1h"`, and
//! sums of those such as `"1m30s"`. Owns the parser, the canonical formatter, and the
//! serde adapters the schema uses.

use std::fmt;
use std::time::Duration;

use super::values::from_str_with;

/// What a duration key expects, for type errors ("expected a duration string ...").
const EXPECTING: &str = "a duration string such as \"1s\" or \"200ms\"";

/// Why a duration string was rejected. Every variant names the offending text, so a
/// diagnostic reads well even without the file open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; write e.g. \"1s\" or \"200ms\"")]
    Empty,
    #[error("negative duration {0:?}; durations cannot be negative")]
    Negative(String),
    #[error("duration {0:?} has no unit; write e.g. \"{0}s\" (units: ns, us, ms, s, m, h, d)")]
    MissingUnit(String),
    #[error("duration {value:?} has unknown unit {unit:?} (units: ns, us, ms, s, m, h, d)")]
    BadUnit { value: String, unit: String },
    #[error("duration {0:?} is not a number followed by a unit, e.g. \"1.5s\"")]
    Malformed(String),
    #[error("duration {0:?} is finer than a nanosecond")]
    TooPrecise(String),
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Nanoseconds per unit; the longest suffixes first so `ms` is not read as `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
];

/// Parses a duration string. Surrounding whitespace is ignored; a bare `"0"` is
/// accepted because "zero" needs no unit, any other number must carry one.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative(text.to_owned()));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() {
            return Err(DurationError::Malformed(text.to_owned()));
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(text.to_owned()));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| DurationError::BadUnit {
                value: text.to_owned(),
                unit: unit.to_owned(),
            })?;
        let nanos = scaled(number, scale, text)?;
        total = total
            .checked_add(nanos)
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| DurationError::Overflow(text.to_owned()))?;
    // The remainder of a division by 1e9 always fits in u32.
    let sub = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

/// `number` (digits with at most one '.') times `scale` nanoseconds, exactly.
fn scaled(number: &str, scale: u128, whole_text: &str) -> Result<u128, DurationError> {
    let malformed = || DurationError::Malformed(whole_text.to_owned());
    let overflow = || DurationError::Overflow(whole_text.to_owned());
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
        return Err(malformed());
    }
    if number.ends_with('.') {
        return Err(malformed());
    }
    let int_value: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| overflow())?
    };
    let mut nanos = int_value.checked_mul(scale).ok_or_else(overflow)?;
    // Work digit by digit so "1.5s" is exact and nothing is lost to floats.
    let mut place = scale;
    for digit in frac_part.chars() {
        let d = u128::from(digit.to_digit(10).ok_or_else(malformed)?);
        if !place.is_multiple_of(10) {
            if d != 0 {
                return Err(DurationError::TooPrecise(whole_text.to_owned()));
            }
            continue;
        }
        place /= 10;
        nanos = nanos.checked_add(d * place).ok_or_else(overflow)?;
    }
    Ok(nanos)
}

/// Formats a duration so that [`parse_duration`] reads it back exactly: whole units
/// from hours down to nanoseconds, zero parts left out (`"1m30s"`, `"1s500ms"`).
pub fn format_duration(d: Duration) -> String {
    DurationDisplay(d).to_string()
}

/// Display adapter behind [`format_duration`].
#[derive(Debug, Clone, Copy)]
pub struct DurationDisplay(pub Duration);

impl fmt::Display for DurationDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let secs = d.as_secs();
        let nanos = d.subsec_nanos();
        let parts = [
            (secs / 3_600, "h"),
            ((secs / 60) % 60, "m"),
            (secs % 60, "s"),
            (u64::from(nanos / 1_000_000), "ms"),
            (u64::from((nanos / 1_000) % 1_000), "us"),
            (u64::from(nanos % 1_000), "ns"),
        ];
        for (value, unit) in parts {
            if value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

/// serde adapter: `#[serde(with = "duration::serde_str")]`.
pub mod serde_str {
    use super::*;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_str_with(d, EXPECTING, parse_duration)
    }
}

/// serde adapter for optional durations: `#[serde(default, with = "duration::serde_opt")]`.
pub mod serde_opt {
    use super::*;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        from_str_with(d, EXPECTING, parse_duration).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse_duration("1s"), Ok(ms(1000)));
        assert_eq!(parse_duration("200ms"), Ok(ms(200)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("0.01s"), Ok(ms(10)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1d"), Ok(ms(86_400_000)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration(" 3s "), Ok(ms(3000)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.000000001s"), Ok(Duration::new(1, 1)));
    }

    #[test]
    fn rejects_bad_input_and_names_it() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("  "), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("-1s"),
            Err(DurationError::Negative("-1s".into()))
        );
        assert_eq!(
            parse_duration("5"),
            Err(DurationError::MissingUnit("5".into()))
        );
        assert_eq!(
            parse_duration("5x"),
            Err(DurationError::BadUnit {
                value: "5x".into(),
                unit: "x".into()
            })
        );
        assert_eq!(
            parse_duration("1 s"),
            Err(DurationError::BadUnit {
                value: "1 s".into(),
                unit: " s".into()
            })
        );
        assert_eq!(
            parse_duration("s"),
            Err(DurationError::Malformed("s".into()))
        );
        assert_eq!(
            parse_duration("1.2.3s"),
            Err(DurationError::Malformed("1.2.3s".into()))
        );
        assert_eq!(
            parse_duration("1.s"),
            Err(DurationError::Malformed("1.s".into()))
        );
        assert_eq!(
            parse_duration("1.0000000001s"),
            Err(DurationError::TooPrecise("1.0000000001s".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999999999h"),
            Err(DurationError::Overflow("99999999999999999999999h".into()))
        );
        let message = parse_duration("5fortnights").unwrap_err().to_string();
        assert!(message.contains("\"5fortnights\""), "{message}");
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(ms(1500)), "1s500ms");
        assert_eq!(format_duration(ms(90_000)), "1m30s");
        assert_eq!(format_duration(Duration::new(3_661, 1_001)), "1h1m1s1us1ns");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn decimal_seconds_are_exact(whole in 0u64..1_000_000, millis in 0u64..1000) {
            let text = format!("{whole}.{millis:03}s");
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_millis(whole * 1000 + millis)));
        }

        #[test]
        fn never_panics(text in "\\PC{0,12}") {
            let _ = parse_duration(&text);
        }
    }
}
