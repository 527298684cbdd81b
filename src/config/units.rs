//! Human-friendly units in config: durations (`"250ms"`, `"10s"`, `"2h"`) and byte sizes
//! (`"16MiB"`, `16384`). Parsing is strict: a typo is an error, never a silent default.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written as a string with a unit: `ms`, `s`, `m`, `h` (also `us`, `d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConfigDuration(pub Duration);

/// A byte size written as an integer or a string with a unit (`B`, `KB`, `KiB`, `MB`,
/// `MiB`, `GB`, `GiB`; case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

/// Why a unit value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The string is empty.
    #[error("empty value")]
    Empty,
    /// No leading number.
    #[error("expected a number followed by a unit")]
    NoNumber,
    /// The unit is not one we know.
    #[error("unknown unit {0:?}")]
    UnknownUnit(String),
    /// The value overflows.
    #[error("value too large")]
    Overflow,
}

fn split_number(s: &str) -> Result<(u64, &str), UnitError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(UnitError::Empty);
    }
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return Err(UnitError::NoNumber);
    }
    let n: u64 = s[..end].parse().map_err(|_| UnitError::Overflow)?;
    Ok((n, s[end..].trim()))
}

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"2h"`, `"1d"`, `"100us"`. A bare number is refused:
/// the unit must be written.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let (n, unit) = split_number(s)?;
    let mul = |k: u64| n.checked_mul(k).ok_or(UnitError::Overflow);
    Ok(match unit {
        "us" | "µs" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(mul(60)?),
        "h" => Duration::from_secs(mul(3600)?),
        "d" => Duration::from_secs(mul(86_400)?),
        "" => return Err(UnitError::UnknownUnit(String::new())),
        other => return Err(UnitError::UnknownUnit(other.to_owned())),
    })
}

/// Parses `"16MiB"`, `"512KB"`, `"1GiB"`, `"100"`, `"100B"`.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let (n, unit) = split_number(s)?;
    let k: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(UnitError::UnknownUnit(unit.to_owned())),
    };
    n.checked_mul(k).ok_or(UnitError::Overflow)
}

/// Formats a duration back into the config syntax (largest exact unit).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if d.subsec_nanos() % 1_000_000 != 0 {
        format!("{}us", d.as_micros())
    } else if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"250ms\", \"10s\" or \"2h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_duration(v)
                    .map(ConfigDuration)
                    .map_err(|e| E::custom(format!("invalid duration {v:?}: {e} (write e.g. \"250ms\", \"10s\", \"2h\")")))
            }
        }
        d.deserialize_str(V)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: an integer number of bytes or a string such as \"16MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_size(v).map(ByteSize).map_err(|e| E::custom(format!("invalid size {v:?}: {e} (write e.g. 16384 or \"16MiB\")")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration(" 5m "), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("10"), Err(UnitError::UnknownUnit(String::new())));
        assert_eq!(parse_duration("s"), Err(UnitError::NoNumber));
        assert_eq!(parse_duration("10 parsecs"), Err(UnitError::UnknownUnit("parsecs".into())));
        assert_eq!(parse_duration("99999999999999999999s"), Err(UnitError::Overflow));
        assert_eq!(parse_duration("18446744073709551615d"), Err(UnitError::Overflow));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("16384"), Ok(16384));
        assert_eq!(parse_size("1kb"), Ok(1000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("12 bananas").is_err());
    }

    proptest! {
        #[test]
        fn duration_parser_never_panics(s in "\\PC*") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
        }

        #[test]
        fn duration_format_round_trips(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
