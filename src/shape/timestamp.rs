//! `remote.timestamp`'s text as a Kafka timestamp.

/// Milliseconds since the epoch from a number of ms (`1733400000123`) or an RFC 3339
/// time (`2024-12-05T12:00:00.123+01:00`); `None` for anything else, or a time before
/// 1970 (Kafka has no negative timestamps).
pub fn parse(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let ms = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()?
    } else {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()?
            .timestamp_millis()
    };
    (ms >= 0).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn numbers_of_ms_and_rfc3339_times() {
        assert_eq!(parse(b"1733400000123"), Some(1_733_400_000_123));
        assert_eq!(parse(b"0"), Some(0));
        assert_eq!(parse(b"2024-12-05T12:00:00.123Z"), Some(1_733_400_000_123));
        assert_eq!(
            parse(b"2024-12-05T13:00:00.123+01:00"),
            Some(1_733_400_000_123)
        );
        for bad in [
            "",
            "-5",
            "1.5",
            "1e12",
            " 12",
            "99999999999999999999",
            "yesterday",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
