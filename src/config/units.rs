//! Durations and sizes as the configuration writes them.

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};

/// Parses a duration in rmqtt's notation ("500ms", "5s", "0m", "1h30m"; units ms, s, m,
/// h, d, w and f for fortnights), but strictly: unlike upstream, a typo is an error, not 0.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut rest = s.as_str();
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration \"{text}\": expected a number, e.g. \"500ms\" or \"5s\""
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration \"{text}\": number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "f" => 1_209_600_000,
            "" => {
                return Err(format!(
                    "invalid duration \"{text}\": missing unit (ms, s, m, h, d, w)"
                ))
            }
            u => {
                return Err(format!(
                    "invalid duration \"{text}\": unknown unit \"{u}\" (use ms, s, m, h, d, w)"
                ))
            }
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(ms_per_unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("invalid duration \"{text}\": too large"))?;
    }
    Ok(Duration::from_millis(total))
}

pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration(&String::deserialize(d)?).map_err(D::Error::custom)
}

pub(super) fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    text.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| {
            D::Error::custom(format!(
                "invalid size \"{text}\", e.g. \"16MiB\" or \"512KiB\""
            ))
        })
}
