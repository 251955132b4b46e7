//! A thrown JavaScript value as one line of text: the error's name and message, and
//! where in the script it was thrown.

use rquickjs::{Ctx, Exception, Value};

/// `TypeError: x is not a function (at route.js:12:5)`; for a thrown non-error, its
/// string form.
pub(crate) fn describe<'js>(ctx: &Ctx<'js>, thrown: Value<'js>) -> String {
    if let Some(error) = thrown
        .as_object()
        .and_then(|o| Exception::from_object(o.clone()))
    {
        let name: String = error.get("name").unwrap_or_else(|_| "Error".into());
        let message = error.message().unwrap_or_default();
        let mut text = if message.is_empty() {
            name
        } else {
            format!("{name}: {message}")
        };
        if let Some(at) = error.stack().as_deref().and_then(first_frame) {
            text.push_str(&format!(" (at {at})"));
        }
        return text;
    }
    let shown = ctx
        .json_stringify(thrown.clone())
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok());
    match shown {
        Some(text) => format!("threw {text}"),
        None => format!("threw a value of type {}", thrown.type_name()),
    }
}

/// `route.js:12:5` from the first frame of a stack in a script file, such as
/// `    at transform (route.js:12:5)`; frames in native code, in the runtime's prelude or
/// in a JSON text (`<input>:1:1`) are skipped.
fn first_frame(stack: &str) -> Option<String> {
    stack
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix("at "))
        .map(|frame| match (frame.find('('), frame.rfind(')')) {
            (Some(open), Some(close)) if open < close => &frame[open + 1..close],
            _ => frame.trim(),
        })
        .find(|place| !place.is_empty() && *place != "native" && !place.starts_with('<'))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::first_frame;

    #[test]
    fn the_first_frame_is_the_place() {
        let stack = "    at transform (route.js:12:5)\n    at <eval> (route.js:20)\n";
        assert_eq!(first_frame(stack).as_deref(), Some("route.js:12:5"));
        assert_eq!(
            first_frame("    at route.js:3:1\n").as_deref(),
            Some("route.js:3:1")
        );
        assert_eq!(first_frame("    at parse (native)\n"), None);
        let json =
            "    at <input>:1:1\n    at json (<prelude>:30:7)\n    at transform (t.js:2:9)\n";
        assert_eq!(first_frame(json).as_deref(), Some("t.js:2:9"));
        assert_eq!(first_frame(""), None);
    }
}
