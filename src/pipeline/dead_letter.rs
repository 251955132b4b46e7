//! The dead-letter record of a message whose transform failed (`transform.on_error =
//! "dead_letter"`), whose templates had no value (`remote.on_template_error =
//! "dead_letter"`) or whose record did not fit its schema (`remote.on_schema_error =
//! "dead_letter"`): the original payload, the standard headers, and headers that say
//! where and why it failed.

use crate::record::Headers;

/// Why a message went to a dead-letter topic.
pub struct Cause<'a> {
    /// The transform's failure cause, the template failure's reason, or the schema
    /// failure's.
    pub name: &'a str,
    pub message: String,
    /// For a template or a schema: the field it is written in.
    pub field: Option<&'a str>,
    /// For a template: the template as written.
    pub template: Option<&'a str>,
}

/// Most bytes of the failure message that go into the `error_message` header.
const MAX_ERROR_MESSAGE: usize = 1024;

/// Adds `error_bridge`, `error_entry` (the entry's index, as text), `error_cause` and
/// `error_message` after the standard headers, and for a template or a schema
/// `error_field` (and a template's `error_template`).
pub fn add_headers<'a>(h: &mut Headers<'a>, bridge: &'a str, entry: &'a str, cause: &'a Cause) {
    h.push(("error_bridge", Some(bridge.as_bytes())));
    h.push(("error_entry", Some(entry.as_bytes())));
    h.push(("error_cause", Some(cause.name.as_bytes())));
    let message = truncate(&cause.message, MAX_ERROR_MESSAGE);
    h.push(("error_message", Some(message.as_bytes())));
    if let Some(field) = cause.field {
        h.push(("error_field", Some(field.as_bytes())));
    }
    if let Some(template) = cause.template {
        h.push(("error_template", Some(template.as_bytes())));
    }
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
