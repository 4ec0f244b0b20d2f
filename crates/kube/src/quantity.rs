//! Kubernetes resource quantities (`100m`, `0.5`, `64Mi`, `1e3`, ...), parsed exactly as the API
//! server parses them.
//!
//! Upstream: `staging/src/k8s.io/apimachinery/pkg/api/resource/{quantity,suffix,amount}.go`
//! (`ParseQuantity`, `parseQuantityString`, `quantitySuffixer`, `CanonicalizeBytes`,
//! `ScaledValue`). The grammar is
//!
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
//! ```
//!
//! Representation: the value is kept exactly as a signed count of nano-units (10^-9), which is
//! the precision the API server keeps (it rounds anything finer *up*, away from zero, to 1n).
//!
//! Deliberate differences from apimachinery, all at absurd magnitudes:
//! - decimal values are limited to |v| <= 10^21 (`1000E`); apimachinery keeps them in an
//!   arbitrary-precision `inf.Dec`. Binary values are capped at 2^63-1 exactly as upstream.
//! - at most [`MAX_SIGNIFICANT_DIGITS`] significant digits are accepted (bounded parse time).
//! - `Display` always prints the canonical form; apimachinery echoes the input string back when it
//!   already looks canonical (`"+1"` prints as `+1` there, `1` here).
//!
//! Faithfully reproduced quirks of the upstream scanner: `"+"`, `"-"`, `"."`, `"Mi"` and `"e3"`
//! all parse as zero, `"1."` parses as 1, and the exponent of `1e<n>` is truncated to 32 bits.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Add;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The regular expression quoted by apimachinery's `ErrFormatWrong` (`splitREString`).
pub const QUANTITY_REGEX: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Nano-units per unit: the finest precision a quantity keeps (`Nano` scale in amount.go).
const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Largest decimal magnitude peapod represents, in nano-units (10^21 units).
const MAX_NANOS: u128 = 1_000_000_000_000_000_000_000_000_000_000;

/// apimachinery caps BinarySI values at 2^63-1 (`maxAllowed` in quantity.go), in nano-units.
const MAX_BINARY_NANOS: u128 = (i64::MAX as u128) * 1_000_000_000;

/// Upper bound on significant digits in the numeric part (peapod's own bound on parse work).
pub const MAX_SIGNIFICANT_DIGITS: usize = 1000;

/// Errors from [`Quantity::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// apimachinery `ErrFormatWrong`.
    #[error(
        "parse quantity `{input}`: quantities must match the regular expression '{QUANTITY_REGEX}'"
    )]
    FormatWrong { input: String },
    /// apimachinery `ErrSuffix`.
    #[error("parse quantity `{input}`: unable to parse quantity's suffix")]
    Suffix { input: String },
    /// Beyond what peapod represents (see the module docs).
    #[error("parse quantity `{input}`: magnitude above 10^21 is not supported")]
    OutOfRange { input: String },
    /// Beyond [`MAX_SIGNIFICANT_DIGITS`].
    #[error("parse quantity `{input}`: more than {MAX_SIGNIFICANT_DIGITS} significant digits")]
    TooManyDigits { input: String },
}

/// How a quantity is printed; remembered from the suffix it was parsed with (`Format` in
/// quantity.go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// `12e6`
    DecimalExponent,
    /// `12Mi` (12 * 2^20)
    BinarySI,
    /// `12M` (12 * 10^6)
    DecimalSI,
}

/// An exact Kubernetes quantity. Equality, ordering and hashing compare the *value* only
/// (`1` == `1000m`), like apimachinery's `Cmp`.
#[derive(Debug, Clone, Copy)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl Quantity {
    /// Zero, `DecimalSI`.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSI,
    };

    /// `value` whole units in `format` (apimachinery `NewQuantity`).
    pub fn new(value: i64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(value) * NANOS_PER_UNIT,
            format,
        }
    }

    /// `value` thousandths in `format` (apimachinery `NewMilliQuantity`).
    pub fn new_milli(value: i64, format: Format) -> Quantity {
        Quantity {
            nanos: i128::from(value) * 1_000_000,
            format,
        }
    }

    /// Parse a quantity string exactly as `resource.ParseQuantity` does (no surrounding
    /// whitespace allowed; the serde impl trims it like `UnmarshalJSON`).
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        parse(input)
    }

    /// The format the quantity prints in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The exact value in nano-units (10^-9).
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// True when the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// -1, 0 or 1.
    pub fn signum(&self) -> i32 {
        match self.nanos.cmp(&0) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }

    /// `ceil(q / 10^scale)` rounded away from zero and saturated to i64, as apimachinery's
    /// `ScaledValue` (e.g. `scaled_value(-3)` is `MilliValue`).
    pub fn scaled_value(&self, scale: i32) -> i64 {
        if self.nanos == 0 {
            return 0;
        }
        // value / 10^scale expressed in nanos: nanos / 10^(scale + 9).
        let shift = i64::from(scale) + 9;
        let magnitude = self.nanos.unsigned_abs();
        let scaled: u128 = if shift >= 0 {
            let divisor = match pow10_u128(shift) {
                Some(d) => d,
                // Dividing by more than 10^38: the magnitude rounds away from zero to 1.
                None => return self.signum() as i64,
            };
            magnitude.div_ceil(divisor)
        } else {
            pow10_u128(-shift)
                .and_then(|m| magnitude.checked_mul(m))
                .unwrap_or(u128::MAX)
        };
        let clamped = i64::try_from(scaled).unwrap_or(i64::MAX);
        if self.nanos < 0 { -clamped } else { clamped }
    }

    /// CPU in millicores, rounded up (apimachinery `MilliValue`, used by kubelet for cpu).
    pub fn to_millicores(&self) -> i64 {
        self.scaled_value(-3)
    }

    /// Whole units rounded up, e.g. bytes for memory (apimachinery `Value`).
    pub fn to_bytes(&self) -> i64 {
        self.scaled_value(0)
    }

    /// Sum; like apimachinery `Add`, a zero left-hand side takes the right-hand side's format.
    /// Saturates instead of overflowing (unreachable for parsed quantities).
    pub fn saturating_add(self, other: Quantity) -> Quantity {
        let format = if self.nanos == 0 {
            other.format
        } else {
            self.format
        };
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format,
        }
    }

    /// The canonical string, as apimachinery's `String()` for a computed value.
    pub fn canonical(&self) -> String {
        self.to_string()
    }
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity::ZERO
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}
impl Hash for Quantity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.nanos.hash(state);
    }
}

impl Add for Quantity {
    type Output = Quantity;
    fn add(self, rhs: Quantity) -> Quantity {
        self.saturating_add(rhs)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

fn pow10_u128(exp: i64) -> Option<u128> {
    let exp = u32::try_from(exp).ok()?;
    10u128.checked_pow(exp)
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// The pieces `parseQuantityString` splits a string into.
struct Scanned<'a> {
    negative: bool,
    /// Integer digits with leading zeros stripped (may be empty).
    num: &'a str,
    /// Fraction digits (may be empty).
    denom: &'a str,
    suffix: &'a str,
}

/// Port of the scanner `parseQuantityString` (quantity.go); `None` is `ErrFormatWrong`.
fn scan(s: &str) -> Option<Scanned<'_>> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut negative = false;
    match b.first() {
        Some(b'-') => {
            negative = true;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    // Strip leading zeros; reaching the end here means the value is zero with no suffix.
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some(Scanned {
            negative,
            num: "",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = &s[num_start..pos];
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        // A character that is neither a suffix letter, a sign nor a digit.
        return None;
    }
    Some(Scanned {
        negative,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

/// `quantitySuffixer.interpret` (suffix.go): (power of two, power of ten, format).
fn interpret_suffix(suffix: &str) -> Option<(u32, i64, Format)> {
    let decimal = |e: i64| Some((0, e, Format::DecimalSI));
    let binary = |e: u32| Some((e, 0, Format::BinarySI));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let rest = suffix.strip_prefix(['e', 'E'])?;
            if rest.is_empty() {
                return None;
            }
            let parsed = parse_go_int64(rest)?;
            // Upstream returns `int32(parsed)`: a silent two's-complement truncation.
            Some((0, i64::from(parsed as i32), Format::DecimalExponent))
        }
    }
}

/// `strconv.ParseInt(s, 10, 64)`: optional sign, ASCII digits, no overflow.
fn parse_go_int64(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = 0;
    for c in digits.bytes() {
        v = v * 10 + i128::from(c - b'0');
        if v > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let v = if negative { -v } else { v };
    i64::try_from(v).ok()
}

fn parse(input: &str) -> Result<Quantity, QuantityError> {
    let format_wrong = || QuantityError::FormatWrong {
        input: input.to_string(),
    };
    if input.is_empty() {
        return Err(format_wrong());
    }
    if input == "0" {
        return Ok(Quantity::ZERO);
    }
    let scanned = scan(input).ok_or_else(format_wrong)?;
    let (exp2, exp10, format) =
        interpret_suffix(scanned.suffix).ok_or_else(|| QuantityError::Suffix {
            input: input.to_string(),
        })?;

    // Significant digits of num.denom as one integer D, value = D * 10^(exp10 - len(denom)).
    let digits: String = scanned.num.chars().chain(scanned.denom.chars()).collect();
    let trimmed = digits.trim_start_matches('0');
    let without_trailing = trimmed.trim_end_matches('0');
    let trailing_zeros = (trimmed.len() - without_trailing.len()) as i64;
    let significant = without_trailing;
    if significant.is_empty() {
        return Ok(Quantity { nanos: 0, format });
    }
    if significant.len() > MAX_SIGNIFICANT_DIGITS {
        return Err(QuantityError::TooManyDigits {
            input: input.to_string(),
        });
    }
    // Power of ten that turns D into nano-units.
    let exp10_nanos = exp10 - scanned.denom.len() as i64 + trailing_zeros + 9;
    let magnitude = match magnitude_nanos(significant, exp2, exp10_nanos) {
        Some(m) => m,
        None if format == Format::BinarySI => MAX_BINARY_NANOS,
        None => {
            return Err(QuantityError::OutOfRange {
                input: input.to_string(),
            });
        }
    };
    let mut format = format;
    let magnitude = if format == Format::BinarySI {
        // "The max is just a simple cap" (quantity.go), applied to binary values only.
        let capped = magnitude.min(MAX_BINARY_NANOS);
        // "This avoids rounding and hopefully confusion, too."
        if capped < NANOS_PER_UNIT as u128 {
            format = Format::DecimalSI;
        }
        capped
    } else {
        magnitude
    };
    if magnitude > MAX_NANOS {
        return Err(QuantityError::OutOfRange {
            input: input.to_string(),
        });
    }
    let nanos = i128::try_from(magnitude).map_err(|_| QuantityError::OutOfRange {
        input: input.to_string(),
    })?;
    Ok(Quantity {
        nanos: if scanned.negative { -nanos } else { nanos },
        format,
    })
}

/// `ceil(D * 2^exp2 * 10^exp10)` for the decimal digit string `D` (no leading zeros, nonzero),
/// or `None` when it is certainly larger than [`MAX_NANOS`] (10^30).
fn magnitude_nanos(digits: &str, exp2: u32, exp10: i64) -> Option<u128> {
    let nd = digits.len() as i64;
    // D >= 10^(nd-1) and 2^exp2 >= 1: bail out early on certain overflow.
    if nd - 1 + exp10 > 30 {
        return None;
    }
    let mut big = BigNat::from_decimal(digits);
    big.shl(exp2);
    if exp10 >= 0 {
        for _ in 0..exp10 {
            big.mul_add_small(10, 0);
        }
        return big.to_u128();
    }
    let k = -exp10;
    // D * 2^exp2 < 10^nd * 10^19 <= 10^k: a nonzero value below one nano rounds up to 1n.
    if k >= nd + 19 {
        return Some(1);
    }
    let mut inexact = false;
    let mut remaining = k;
    while remaining > 0 {
        let step = remaining.min(9);
        let divisor = 10u32.pow(step as u32);
        if big.div_rem_small(divisor) != 0 {
            inexact = true;
        }
        remaining -= step;
    }
    let quotient = big.to_u128()?;
    Some(if inexact { quotient + 1 } else { quotient })
}

/// Just enough arbitrary-precision arithmetic for exact parsing (little-endian u32 limbs).
struct BigNat(Vec<u32>);

impl BigNat {
    fn from_decimal(digits: &str) -> BigNat {
        let mut n = BigNat(Vec::new());
        for c in digits.bytes() {
            n.mul_add_small(10, u32::from(c - b'0'));
        }
        n
    }

    fn mul_add_small(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn shl(&mut self, bits: u32) {
        let whole = (bits / 32) as usize;
        let rest = bits % 32;
        if rest > 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let v = (u64::from(*limb) << rest) | u64::from(carry);
                *limb = v as u32;
                carry = (v >> 32) as u32;
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        if whole > 0 {
            let mut shifted = vec![0u32; whole];
            shifted.append(&mut self.0);
            self.0 = shifted;
        }
    }

    /// Divides in place, returns the remainder.
    fn div_rem_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / u64::from(d)) as u32;
            rem = cur % u64::from(d);
        }
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
        rem as u32
    }

    fn to_u128(&self) -> Option<u128> {
        let mut v: u128 = 0;
        for (i, limb) in self.0.iter().enumerate() {
            if *limb == 0 {
                continue;
            }
            if i >= 4 {
                return None;
            }
            v |= u128::from(*limb) << (32 * i);
        }
        Some(v)
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical formatting (CanonicalizeBytes)
// ---------------------------------------------------------------------------------------------

fn decimal_suffix(exp: i32) -> &'static str {
    match exp {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => "",
    }
}

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let sign = if self.nanos < 0 { "-" } else { "" };
        let magnitude = self.nanos.unsigned_abs();
        let mut format = self.format;
        if format == Format::BinarySI {
            // Binary values in (-1024, 1024) and non-integers print as DecimalSI.
            if magnitude < 1024 * NANOS_PER_UNIT as u128
                || !magnitude.is_multiple_of(NANOS_PER_UNIT as u128)
            {
                format = Format::DecimalSI;
            }
        }
        if format == Format::BinarySI {
            let mut mantissa = magnitude / NANOS_PER_UNIT as u128;
            let mut power = 0usize;
            while mantissa.is_multiple_of(1024) && power < BINARY_SUFFIXES.len() - 1 {
                mantissa /= 1024;
                power += 1;
            }
            return write!(f, "{sign}{mantissa}{}", BINARY_SUFFIXES[power]);
        }
        // Move factors of ten into the exponent, then lower it to a multiple of three.
        let mut mantissa = magnitude;
        let mut exp: i32 = -9;
        while mantissa.is_multiple_of(10) {
            mantissa /= 10;
            exp += 1;
        }
        let r = exp.rem_euclid(3);
        mantissa *= 10u128.pow(r as u32);
        exp -= r;
        match format {
            Format::DecimalExponent => {
                if exp == 0 {
                    write!(f, "{sign}{mantissa}")
                } else {
                    write!(f, "{sign}{mantissa}e{exp}")
                }
            }
            _ => {
                if exp > 18 {
                    // No SI suffix above E (apimachinery would drop the suffix here).
                    mantissa *= 10u128.pow((exp - 18) as u32);
                    exp = 18;
                }
                write!(f, "{sign}{mantissa}{}", decimal_suffix(exp))
            }
        }
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;
        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a kubernetes quantity string or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                // UnmarshalJSON trims surrounding whitespace before ParseQuantity.
                parse(v.trim()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                if !v.is_finite() {
                    return Err(E::custom("quantity must be a finite number"));
                }
                parse(&format!("{v}")).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(QuantityVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_and_canonicalizes_table() {
        // (input, canonical output, format)
        let cases: &[(&str, &str, Format)] = &[
            ("0", "0", Format::DecimalSI),
            ("100m", "100m", Format::DecimalSI),
            ("0.5", "500m", Format::DecimalSI),
            ("1", "1", Format::DecimalSI),
            ("+1", "1", Format::DecimalSI),
            ("1.5", "1500m", Format::DecimalSI),
            ("1000", "1k", Format::DecimalSI),
            ("1000m", "1", Format::DecimalSI),
            ("64Mi", "64Mi", Format::BinarySI),
            ("1.5Gi", "1536Mi", Format::BinarySI),
            ("1024Mi", "1Gi", Format::BinarySI),
            ("1025Mi", "1025Mi", Format::BinarySI),
            ("1G", "1G", Format::DecimalSI),
            ("1e3", "1e3", Format::DecimalExponent),
            ("1E3", "1e3", Format::DecimalExponent),
            ("1.5e3", "1500", Format::DecimalExponent),
            ("12e6", "12e6", Format::DecimalExponent),
            ("1e-3", "1e-3", Format::DecimalExponent),
            ("1e+3", "1e3", Format::DecimalExponent),
            ("0.1m", "100u", Format::DecimalSI),
            ("1n", "1n", Format::DecimalSI),
            ("0.1n", "1n", Format::DecimalSI),
            ("1u", "1u", Format::DecimalSI),
            ("1k", "1k", Format::DecimalSI),
            ("1M", "1M", Format::DecimalSI),
            ("1T", "1T", Format::DecimalSI),
            ("1P", "1P", Format::DecimalSI),
            ("1E", "1E", Format::DecimalSI),
            ("1000E", "1000E", Format::DecimalSI),
            ("1Ki", "1Ki", Format::BinarySI),
            ("0.5Ki", "512", Format::BinarySI),
            ("0.1Ki", "102400m", Format::BinarySI),
            ("1Ei", "1Ei", Format::BinarySI),
            // 8Ei = 2^63 is capped at 2^63-1.
            ("8Ei", "9223372036854775807", Format::BinarySI),
            ("-1", "-1", Format::DecimalSI),
            ("-1.5Gi", "-1536Mi", Format::BinarySI),
            ("-0.5Ki", "-512", Format::BinarySI),
            ("1.", "1", Format::DecimalSI),
            (".5", "500m", Format::DecimalSI),
            ("007", "7", Format::DecimalSI),
            ("1.000", "1", Format::DecimalSI),
            ("0.0000000001", "1n", Format::DecimalSI),
            ("1e-100", "1e-9", Format::DecimalExponent),
            ("100000000000", "100G", Format::DecimalSI),
            // Upstream scanner quirks, reproduced.
            ("+", "0", Format::DecimalSI),
            ("-", "0", Format::DecimalSI),
            (".", "0", Format::DecimalSI),
            ("Mi", "0", Format::BinarySI),
            ("e3", "0", Format::DecimalExponent),
            ("0Mi", "0", Format::BinarySI),
            // int32(4294967296) == 0 upstream.
            ("1e4294967296", "1", Format::DecimalExponent),
        ];
        for (input, want, format) in cases {
            let got = q(input);
            assert_eq!(got.to_string(), *want, "canonical form of {input}");
            assert_eq!(got.format(), *format, "format of {input}");
        }
    }

    #[test]
    fn rejects_what_the_api_server_rejects() {
        for bad in [
            "",
            " 1",
            "1 ",
            "1K",
            "1ki",
            "1mi",
            "1.1.1",
            "1+1",
            "abc",
            "1e",
            "1e-",
            "1e+",
            "1ee3",
            "1Mi3",
            "1e3i",
            "1e3.5",
            ".5i",
            "1i",
            "1KiB",
            "1b",
            "--1",
            "+-1",
            "0x10",
            "1_000",
            "1e99999999999999999999",
            "∞",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            Quantity::parse("1K"),
            Err(QuantityError::Suffix { .. })
        ));
        assert!(matches!(
            Quantity::parse("1 "),
            Err(QuantityError::FormatWrong { .. })
        ));
        assert_eq!(
            Quantity::parse("x").unwrap_err().to_string(),
            "parse quantity `x`: quantities must match the regular expression \
             '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
        assert!(matches!(
            Quantity::parse("1e30"),
            Err(QuantityError::OutOfRange { .. })
        ));
        // Binary values are capped, not rejected.
        assert_eq!(q("100000000000000000000000000Ei").to_bytes(), i64::MAX);
    }

    #[test]
    fn millicores_and_bytes_round_up_like_milli_value_and_value() {
        assert_eq!(q("100m").to_millicores(), 100);
        assert_eq!(q("0.5").to_millicores(), 500);
        assert_eq!(q("1").to_millicores(), 1000);
        assert_eq!(q("1.0001").to_millicores(), 1001);
        assert_eq!(q("1n").to_millicores(), 1);
        assert_eq!(q("0").to_millicores(), 0);
        assert_eq!(q("-1n").to_millicores(), -1);
        assert_eq!(q("64Mi").to_bytes(), 64 * 1024 * 1024);
        assert_eq!(q("1G").to_bytes(), 1_000_000_000);
        assert_eq!(q("1.5").to_bytes(), 2);
        assert_eq!(q("100m").to_bytes(), 1);
        assert_eq!(q("1000E").to_bytes(), i64::MAX);
        assert_eq!(q("1.5Gi").to_bytes(), 1_610_612_736);
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(q("999m") < q("1"));
        assert!(q("1Gi") > q("1G"));
    }

    #[test]
    fn serde_accepts_strings_numbers_and_trims() {
        let v: Quantity = serde_json::from_str("\" 100m \"").unwrap();
        assert_eq!(v, q("100m"));
        let v: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(v, q("2"));
        let v: Quantity = serde_json::from_str("0.25").unwrap();
        assert_eq!(v.to_string(), "250m");
        assert_eq!(serde_json::to_string(&q("1.5Gi")).unwrap(), "\"1536Mi\"");
        assert!(serde_json::from_str::<Quantity>("\"1K\"").is_err());
    }

    fn suffix_strategy() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "", "n", "u", "m", "k", "M", "G", "T", "P", "Ki", "Mi", "Gi", "Ti", "Pi", "e0", "e3",
            "e-3", "E6", "e9",
        ])
    }

    proptest! {
        // No regression files: they would land in the source tree.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        // Every canonical string parses back to the same value and the same string.
        #[test]
        fn canonical_form_round_trips(int in 0u64..100_000, frac in 0u32..1000,
                                      neg: bool, suffix in suffix_strategy()) {
            let s = format!("{}{}.{:03}{}", if neg { "-" } else { "" }, int, frac, suffix);
            let parsed = Quantity::parse(&s).unwrap();
            let printed = parsed.to_string();
            let reparsed = Quantity::parse(&printed).unwrap();
            prop_assert_eq!(reparsed, parsed, "{} -> {}", s, printed);
            prop_assert_eq!(reparsed.to_string(), printed);
        }

        // Integers in milli units order and compare exactly like the integers.
        #[test]
        fn ordering_matches_integers(a in -10_000_000i64..10_000_000, b in -10_000_000i64..10_000_000) {
            let qa = Quantity::parse(&format!("{a}m")).unwrap();
            let qb = Quantity::parse(&format!("{}", Quantity::new_milli(b, Format::DecimalSI))).unwrap();
            prop_assert_eq!(qa.cmp(&qb), a.cmp(&b));
            prop_assert_eq!(qa.to_millicores(), a);
        }

        // MilliValue is the ceiling of the exact value (for positive values).
        #[test]
        fn milli_value_is_ceiling(n in 1u64..u64::from(u32::MAX), scale in 0u32..12) {
            let s = format!("{n}e-{scale}");
            let quantity = Quantity::parse(&s).unwrap();
            let millis = i128::from(quantity.to_millicores());
            let nanos = quantity.as_nanos();
            prop_assert!(millis * 1_000_000 >= nanos);
            prop_assert!((millis - 1) * 1_000_000 < nanos);
        }

        // Binary quantities print with the largest power-of-1024 suffix and round-trip.
        #[test]
        fn binary_round_trip(m in 1u64..100_000, p in 0usize..5) {
            let s = format!("{m}{}", BINARY_SUFFIXES[p]);
            let parsed = Quantity::parse(&s).unwrap();
            prop_assert_eq!(parsed.to_bytes(), (m as i64) << (10 * p));
            prop_assert_eq!(Quantity::parse(&parsed.to_string()).unwrap(), parsed);
        }

        // Arbitrary input never panics, and accepted input survives a round trip.
        #[test]
        fn arbitrary_input_never_panics(s in "[-+0-9.eEinumkKMGTPx ]{0,24}") {
            if let Ok(parsed) = Quantity::parse(&s) {
                prop_assert_eq!(Quantity::parse(&parsed.to_string()).unwrap(), parsed);
            }
        }
    }
}
