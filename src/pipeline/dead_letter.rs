//! The dead-letter record of a message whose transform failed (`on_error =
//! "dead_letter"`): the original payload, the standard headers, and four headers that
//! say where and why it failed.

use rdkafka::message::{Header, OwnedHeaders};

use super::publish::PublishInfo;
use crate::transform::Failure;

/// Most bytes of the failure message that go into the `error_message` header.
const MAX_ERROR_MESSAGE: usize = 1024;

/// The standard headers plus `error_bridge`, `error_entry`, `error_cause` and
/// `error_message`.
pub fn headers(p: &PublishInfo<'_>, bridge: &str, entry: usize, failure: &Failure) -> OwnedHeaders {
    let mut index = itoa::Buffer::new();
    [
        ("error_bridge", bridge),
        ("error_entry", index.format(entry)),
        ("error_cause", failure.cause.as_str()),
        (
            "error_message",
            truncate(&failure.message, MAX_ERROR_MESSAGE),
        ),
    ]
    .into_iter()
    .fold(p.standard_headers(4), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value),
        })
    })
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
