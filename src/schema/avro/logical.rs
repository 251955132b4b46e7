//! Avro's logical types from JSON: decimals read from their text (never through a
//! float), dates and times from numbers of their units or from ISO 8601 text.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// The most digits a decimal may have here: its unscaled value is an `i128`.
pub const MAX_PRECISION: usize = 38;

/// The unscaled value of the decimal `text` (`-12.5`, `1.25e3`) at `scale` digits
/// after the point, when it has at most `precision` digits and no more after the point.
pub fn decimal(text: &str, precision: usize, scale: usize) -> Result<i128, String> {
    let bad = || format!("\"{text}\" is not a decimal number");
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (text, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = || whole.bytes().chain(fraction.bytes());
    if whole.is_empty() && fraction.is_empty() || !digits().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // The value is the digits times 10^shift; with a negative shift, the digits that
    // shift drops must be zeros.
    let count = (whole.len() + fraction.len()) as i64;
    let shift = scale as i64 - (fraction.len() as i64 - i64::from(exponent));
    let kept = count + shift.min(0);
    let too_many = || format!("{text} has more than {precision} digits");
    let mut value: i128 = 0;
    for (i, b) in digits().enumerate() {
        if i as i64 >= kept {
            if b != b'0' {
                return Err(format!(
                    "{text} has more than {scale} digits after the point"
                ));
            }
            continue;
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or_else(too_many)?;
    }
    if value != 0 {
        for _ in 0..shift.clamp(0, 40) {
            value = value.checked_mul(10).ok_or_else(too_many)?;
        }
    }
    if value.unsigned_abs() >= 10u128.pow(precision.min(MAX_PRECISION) as u32) {
        return Err(too_many());
    }
    Ok(if negative { -value } else { value })
}

/// Writes an unscaled decimal as big-endian two's complement: as `bytes` (the length,
/// then the fewest bytes), or sign-extended to a `fixed` of `size` bytes.
pub fn write_decimal(value: i128, fixed: Option<usize>, out: &mut Vec<u8>) -> Result<(), String> {
    let all = value.to_be_bytes();
    let sign = if value < 0 { 0xff } else { 0 };
    // Drop leading sign bytes while the next byte still carries the sign bit.
    let mut first = 0;
    while first < all.len() - 1 && all[first] == sign && (all[first + 1] & 0x80) == (sign & 0x80) {
        first += 1;
    }
    let minimal = &all[first..];
    match fixed {
        None => {
            super::encode::long(out, minimal.len() as i64);
            out.extend_from_slice(minimal);
        }
        Some(size) if minimal.len() <= size => {
            out.extend(std::iter::repeat_n(sign, size - minimal.len()));
            out.extend_from_slice(minimal);
        }
        Some(size) => return Err(format!("does not fit in a fixed of {size} bytes")),
    }
    Ok(())
}

/// Days since 1970-01-01 of `2024-12-05`.
pub fn date(s: &str) -> Option<i64> {
    let d: NaiveDate = s.parse().ok()?;
    Some(d.signed_duration_since(NaiveDate::default()).num_days())
}

/// Units since midnight of `12:30:05.250`.
pub fn time_of_day(s: &str, per_second: i64) -> Option<i64> {
    let t: NaiveTime = s.parse().ok()?;
    let seconds = i64::from(t.num_seconds_from_midnight());
    Some(seconds * per_second + i64::from(t.nanosecond()) * per_second / 1_000_000_000)
}

/// Units since the epoch of an RFC 3339 time (`2024-12-05T12:00:00.5+01:00`), or of a
/// time without offset (`2024-12-05T12:00:00.5`, for `local-timestamp-*`), read as UTC.
pub fn timestamp(s: &str, per_second: i64) -> Option<i64> {
    let t = match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.naive_utc(),
        Err(_) => s.parse::<NaiveDateTime>().ok()?,
    };
    let seconds = t.and_utc().timestamp();
    let sub = i64::from(t.and_utc().timestamp_subsec_nanos()) * per_second / 1_000_000_000;
    seconds.checked_mul(per_second)?.checked_add(sub)
}

/// `8-4-4-4-12` hexadecimal digits.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_from_their_text() {
        assert_eq!(decimal("12.34", 10, 2), Ok(1234));
        assert_eq!(decimal("12.3", 10, 2), Ok(1230));
        assert_eq!(decimal("-0.05", 10, 2), Ok(-5));
        assert_eq!(decimal("12", 10, 2), Ok(1200));
        assert_eq!(decimal("1.25e1", 10, 2), Ok(1250));
        assert_eq!(decimal("125E-2", 10, 2), Ok(125));
        assert_eq!(decimal("12.340", 10, 2), Ok(1234));
        // 0.1 + 0.2 in floats is 0.30000000000000004; as text it stays exact.
        assert_eq!(decimal("0.3", 4, 3), Ok(300));
        assert_eq!(
            decimal("99999999999999999999999999999999999999", 38, 0),
            Ok(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert!(decimal("12.345", 10, 2)
            .unwrap_err()
            .contains("more than 2 digits after"));
        assert!(decimal("123.4", 4, 2)
            .unwrap_err()
            .contains("more than 4 digits"));
        for bad in ["", "-", ".", "1.2.3", "abc", "1e", "0x10", "1,5"] {
            assert!(decimal(bad, 10, 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn decimals_are_twos_complement_big_endian() {
        let write = |v, fixed| {
            let mut out = Vec::new();
            write_decimal(v, fixed, &mut out).map(|()| out)
        };
        assert_eq!(write(1234, None), Ok(vec![4, 0x04, 0xd2]));
        assert_eq!(write(-1, None), Ok(vec![2, 0xff]));
        assert_eq!(write(128, None), Ok(vec![4, 0x00, 0x80]));
        assert_eq!(write(-129, None), Ok(vec![4, 0xff, 0x7f]));
        assert_eq!(write(0, None), Ok(vec![2, 0]));
        assert_eq!(write(-2, Some(4)), Ok(vec![0xff, 0xff, 0xff, 0xfe]));
        assert!(write(70000, Some(2)).is_err());
    }

    #[test]
    fn dates_and_times_from_text() {
        assert_eq!(date("1970-01-02"), Some(1));
        assert_eq!(date("1969-12-31"), Some(-1));
        assert_eq!(time_of_day("00:00:01.5", 1_000), Some(1_500));
        assert_eq!(
            timestamp("2024-12-05T12:00:00.123Z", 1_000),
            Some(1_733_400_000_123)
        );
        assert_eq!(
            timestamp("2024-12-05T13:00:00.123+01:00", 1_000_000),
            Some(1_733_400_000_123_000)
        );
        assert_eq!(
            timestamp("2024-12-05T12:00:00.123", 1_000),
            Some(1_733_400_000_123)
        );
        assert_eq!(timestamp("yesterday", 1_000), None);
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid("123e4567e89b12d3a456426614174000"));
    }
}
