//! Members of a JSON payload (`${payload.a[2].b}`), found by reading the payload only as
//! far as the member: jiter (pydantic's JSON iterator) steps over every other value
//! without building it, and a string without escapes or a number is returned as the
//! payload's own bytes.

use std::fmt;

use jiter::{Jiter, Peek};

/// One step of a member path: an object's member or an array's element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(Box<str>),
    Index(usize),
}

/// A path into a JSON document, as `.a[2].b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Box<[Step]>);

impl Path {
    /// Parses `.key` and `[index]` steps; an error carries its byte offset in `text`.
    pub(super) fn parse(text: &str) -> Result<Path, (usize, String)> {
        let mut steps = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let rest = &text[at..];
            if let Some(name) = rest.strip_prefix('.') {
                let len = name.find(['.', '[']).unwrap_or(name.len());
                let key = &name[..len];
                if key.is_empty() {
                    return Err((at + 1, "empty member name".into()));
                }
                if let Some(i) = key.find(']') {
                    return Err((at + 1 + i, "']' without '['".into()));
                }
                steps.push(Step::Key(key.into()));
                at += 1 + len;
            } else if let Some(index) = rest.strip_prefix('[') {
                let Some(close) = index.find(']') else {
                    return Err((at, "'[' is not closed by ']'".into()));
                };
                let digits = &index[..close];
                match digits.parse() {
                    Ok(i) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                        steps.push(Step::Index(i))
                    }
                    _ => {
                        let why = format!("an array index is a number, as [0]; got \"{digits}\"");
                        return Err((at + 1, why));
                    }
                }
                at += close + 2;
            } else {
                return Err((at, "expected '.' or '[' between the steps of a path".into()));
            }
        }
        Ok(Path(steps.into()))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in self.0.iter() {
            match step {
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Why a member has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The document has no value at the path.
    Absent,
    /// The payload is not JSON (up to where the path leads).
    NotJson,
}

/// A member's value: the payload's own bytes, or text that has to be written out (an
/// escaped string decoded, an object or array with its whitespace removed).
pub enum Found<'a, 'j> {
    Borrowed(&'a [u8]),
    Decoded(&'j str),
    Spaced(&'a [u8]),
}

/// Finds `path` in `json`, reading no further than the member, and hands its value to
/// `take` (a decoded string lives only as long as the iterator).
pub fn find<'a, R>(
    json: &'a [u8],
    path: &Path,
    take: impl FnOnce(Found<'a, '_>) -> R,
) -> Result<R, Missing> {
    let mut iter = Jiter::new(json);
    for step in path.0.iter() {
        match step {
            Step::Key(key) => enter_member(&mut iter, key)?,
            Step::Index(i) => enter_element(&mut iter, *i)?,
        }
    }
    let peek = iter.peek().map_err(|_| Missing::NotJson)?;
    let start = iter.current_index();
    iter.known_skip(peek).map_err(|_| Missing::NotJson)?;
    let raw = iter.slice_to_current(start);
    match peek {
        Peek::String => {
            let inner = &raw[1..raw.len() - 1];
            if !inner.contains(&b'\\') {
                // Skipping a string does not check its UTF-8.
                std::str::from_utf8(inner).map_err(|_| Missing::NotJson)?;
                return Ok(take(Found::Borrowed(inner)));
            }
            let mut decoder = Jiter::new(raw);
            let text = decoder.next_str().map_err(|_| Missing::NotJson)?;
            Ok(take(Found::Decoded(text)))
        }
        Peek::Object | Peek::Array if has_space_outside_strings(raw) => {
            Ok(take(Found::Spaced(raw)))
        }
        _ => Ok(take(Found::Borrowed(raw))),
    }
}

/// Moves into the value of member `key` of the object at the iterator.
fn enter_member(iter: &mut Jiter<'_>, key: &str) -> Result<(), Missing> {
    if expect(iter, Peek::Object)? {
        let mut next = iter.known_object().map_err(|_| Missing::NotJson)?;
        while let Some(k) = next {
            if k == key {
                return Ok(());
            }
            iter.next_skip().map_err(|_| Missing::NotJson)?;
            next = iter.next_key().map_err(|_| Missing::NotJson)?;
        }
    }
    Err(Missing::Absent)
}

/// Moves into element `index` of the array at the iterator.
fn enter_element(iter: &mut Jiter<'_>, index: usize) -> Result<(), Missing> {
    if expect(iter, Peek::Array)? {
        let mut next = iter.known_array().map_err(|_| Missing::NotJson)?;
        let mut i = 0;
        while let Some(peek) = next {
            if i == index {
                return Ok(());
            }
            iter.known_skip(peek).map_err(|_| Missing::NotJson)?;
            next = iter.array_step().map_err(|_| Missing::NotJson)?;
            i += 1;
        }
    }
    Err(Missing::Absent)
}

/// Whether the next value is of kind `want`; another kind is read through, so that a
/// payload that is not JSON is told from one without the path.
fn expect(iter: &mut Jiter<'_>, want: Peek) -> Result<bool, Missing> {
    let peek = iter.peek().map_err(|_| Missing::NotJson)?;
    if peek == want {
        return Ok(true);
    }
    iter.known_skip(peek).map_err(|_| Missing::NotJson)?;
    Ok(false)
}

fn has_space_outside_strings(json: &[u8]) -> bool {
    let mut tokens = Tokens::default();
    json.iter().any(|&b| tokens.is_space_between(b))
}

/// Writes `json` (a valid value) without the whitespace between its tokens.
pub fn compact(json: &[u8], out: &mut impl Extend<u8>) {
    let mut tokens = Tokens::default();
    out.extend(
        json.iter()
            .copied()
            .filter(|&b| !tokens.is_space_between(b)),
    );
}

/// Follows JSON text byte by byte, enough to tell whitespace inside strings from
/// whitespace between tokens.
#[derive(Default)]
struct Tokens {
    in_string: bool,
    escaped: bool,
}

impl Tokens {
    fn is_space_between(&mut self, b: u8) -> bool {
        if !self.in_string {
            self.in_string = b == b'"';
            return is_space(b);
        }
        match b {
            _ if self.escaped => self.escaped = false,
            b'\\' => self.escaped = true,
            b'"' => self.in_string = false,
            _ => {}
        }
        false
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Path {
        Path::parse(text).unwrap()
    }

    /// The member's text as a template would write it.
    fn value(json: &str, p: &str) -> Result<String, Missing> {
        find(json.as_bytes(), &path(p), |found| match found {
            Found::Borrowed(b) => String::from_utf8(b.to_vec()).unwrap(),
            Found::Decoded(s) => s.to_owned(),
            Found::Spaced(b) => {
                let mut out = Vec::new();
                compact(b, &mut out);
                String::from_utf8(out).unwrap()
            }
        })
    }

    #[test]
    fn paths_parse_and_print_back() {
        for text in [".a", ".a.b", "[0]", ".a[2].c", ".a[10][3].x-y z"] {
            assert_eq!(path(text).to_string(), text);
        }
    }

    #[test]
    fn members_of_every_kind() {
        let doc = r#" { "s": "plain", "n": -1.50e3, "t": true, "z": null,
            "o": { "k" : [1, 2 , {"x": "a b"}] }, "a": [ "p", "q" ] } "#;
        assert_eq!(value(doc, ".s").unwrap(), "plain");
        assert_eq!(value(doc, ".n").unwrap(), "-1.50e3");
        assert_eq!(value(doc, ".t").unwrap(), "true");
        assert_eq!(value(doc, ".z").unwrap(), "null");
        assert_eq!(value(doc, ".o").unwrap(), r#"{"k":[1,2,{"x":"a b"}]}"#);
        assert_eq!(value(doc, ".o.k[2].x").unwrap(), "a b");
        assert_eq!(value(doc, ".a[1]").unwrap(), "q");
        assert_eq!(value("[[0,[5]]]", "[0][1][0]").unwrap(), "5");
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let doc = r#"{"k\u00e9y": "tab\there \"q\" \u20ac \ud83d\ude00", "u": "müll €"}"#;
        assert_eq!(value(doc, ".kéy").unwrap(), "tab\there \"q\" € 😀");
        assert_eq!(value(doc, ".u").unwrap(), "müll €");
    }

    #[test]
    fn the_first_of_duplicate_members_wins() {
        assert_eq!(value(r#"{"a":1,"a":2}"#, ".a").unwrap(), "1");
    }

    #[test]
    fn absent_members_and_non_json_are_told_apart() {
        let doc = r#"{"a": {"b": 1}, "l": [1]}"#;
        for p in [".x", ".a.c", ".a.b.c", ".l[1]", ".a[0]", ".l.x"] {
            assert_eq!(value(doc, p), Err(Missing::Absent), "{p}");
        }
        assert_eq!(value("42", ".a"), Err(Missing::Absent));
        for bad in ["", "hello", "{\"a\" 1}", "{\"b\": tru", "\u{1}"] {
            assert_eq!(value(bad, ".a"), Err(Missing::NotJson), "{bad:?}");
        }
    }

    #[test]
    fn reading_stops_at_the_member() {
        // Whatever follows the member is never read.
        assert_eq!(value(r#"{"id": "d1", then garbage"#, ".id").unwrap(), "d1");
    }
}
