//! The injected clock value and Go's duration text formats.
//!
//! The supervisor logic never reads a clock: every entry point takes `now: Millis`. The
//! executor supplies wall-clock milliseconds since the Unix epoch (status timestamps are wall
//! time); it should derive them from a monotonic clock anchored once at start so that a wall
//! clock step does not fire or starve timers.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time: milliseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Signed milliseconds from `earlier` to `self` (Go's `Time.Sub`).
    pub fn signed_since(self, earlier: Millis) -> i64 {
        (i128::from(self.0) - i128::from(earlier.0)).clamp(i64::MIN as i128, i64::MAX as i128)
            as i64
    }

    /// Truncated to whole seconds, as a `metav1.Time` serialises (RFC 3339, second precision).
    pub fn floor_seconds(self) -> Millis {
        Millis(self.0 - self.0 % 1000)
    }
}

/// Adds a duration, rounding sub-millisecond parts *up* so a wake-up is never early.
impl Add<Duration> for Millis {
    type Output = Millis;
    fn add(self, d: Duration) -> Millis {
        let ms = d.as_nanos().div_ceil(1_000_000);
        Millis(self.0.saturating_add(u64::try_from(ms).unwrap_or(u64::MAX)))
    }
}

impl Sub<Duration> for Millis {
    type Output = Millis;
    fn sub(self, d: Duration) -> Millis {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Millis(self.0.saturating_sub(ms))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// Go's `time.Duration.String()`: `10s`, `1m20s`, `5m0s`, `1h0m0s`, `1.5s`, `500ms`, `0s`.
/// kubelet prints the current back-off with it in the `CrashLoopBackOff` message.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        // Below a second Go switches unit: ns, µs, ms with a fraction.
        let (unit, divisor) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, divisor));
    }
    let secs = fraction(nanos % 60_000_000_000, 1_000_000_000);
    let minutes_total = nanos / 60_000_000_000;
    if minutes_total == 0 {
        return format!("{secs}s");
    }
    let hours = minutes_total / 60;
    let minutes = minutes_total % 60;
    if hours == 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{hours}h{minutes}m{secs}s")
    }
}

/// `value / divisor` with the fraction's trailing zeros dropped (Go's `fmtFrac`).
fn fraction(value: u128, divisor: u128) -> String {
    let whole = value / divisor;
    let rest = value % divisor;
    if rest == 0 {
        return whole.to_string();
    }
    let width = divisor.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Errors from [`parse_go_duration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration `{0}`")]
    Invalid(String),
    #[error("invalid duration `{0}`: missing unit (one of ns, us, µs, ms, s, m, h)")]
    MissingUnit(String),
    #[error("invalid duration `{0}`: unknown unit `{1}` (one of ns, us, µs, ms, s, m, h)")]
    UnknownUnit(String, String),
    #[error("invalid duration `{0}`: must not be negative")]
    Negative(String),
    #[error("invalid duration `{0}`: too large")]
    Overflow(String),
}

/// Go's `time.ParseDuration` for non-negative durations: `300ms`, `1.5s`, `2h45m`, `0`.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input;
    if let Some(rest) = s.strip_prefix('-') {
        // "-0" is zero in Go; any other negative value is refused here.
        if rest.trim_start_matches('0').is_empty() && !rest.is_empty() {
            return Ok(Duration::ZERO);
        }
        return Err(DurationError::Negative(input.to_string()));
    }
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // [0-9]*(\.[0-9]*)?
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let (unit, rest) = rest.split_at(unit_len);
        let scale: u128 = match unit {
            "" => return Err(DurationError::MissingUnit(input.to_string())),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            other => {
                return Err(DurationError::UnknownUnit(
                    input.to_string(),
                    other.to_string(),
                ));
            }
        };
        let overflow = || DurationError::Overflow(input.to_string());
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut value = int_value.checked_mul(scale).ok_or_else(overflow)?;
        // Fraction: digits beyond the unit's nanosecond resolution are dropped, like Go.
        let mut place = scale;
        for c in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            value += u128::from(c - b'0') * place;
        }
        total = total.checked_add(value).ok_or_else(overflow)?;
        // Go's Duration is an int64 of nanoseconds.
        if total > i64::MAX as u128 {
            return Err(overflow());
        }
        s = rest;
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_strings() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(80), "1m20s"),
            (Duration::from_secs(160), "2m40s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3661), "1h1m1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_nanos(15), "15ns"),
            (Duration::from_millis(61_250), "1m1.25s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_go_duration(d), want);
        }
    }

    #[test]
    fn parses_go_durations() {
        let ok = [
            ("1s", Duration::from_secs(1)),
            ("4s", Duration::from_secs(4)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m30s", Duration::from_secs(90)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("0", Duration::ZERO),
            ("+5m", Duration::from_secs(300)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
        ];
        for (s, want) in ok {
            assert_eq!(parse_go_duration(s), Ok(want), "{s}");
        }
        for bad in [
            "",
            "1",
            "s",
            ".s",
            "1x",
            "-1s",
            "1s2",
            "1..5s",
            "9999999999h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_go_duration("3x").unwrap_err().to_string(),
            "invalid duration `3x`: unknown unit `x` (one of ns, us, µs, ms, s, m, h)"
        );
    }

    #[test]
    fn millis_arithmetic_rounds_up() {
        assert_eq!(Millis(1000) + Duration::from_micros(1), Millis(1001));
        assert_eq!(Millis(1000) + Duration::from_secs(10), Millis(11_000));
        assert_eq!(Millis(5).saturating_since(Millis(10)), Duration::ZERO);
        assert_eq!(Millis(5).signed_since(Millis(10)), -5);
        assert_eq!(Millis(12_345).floor_seconds(), Millis(12_000));
    }
}
