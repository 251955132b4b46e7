//! Why a value does not fit its schema, and where: `$.readings[2].temperature: expected
//! double, got string`. The path is a chain of borrowed steps on the encoder's stack, put
//! into text only when a value fails.

use std::fmt;

/// A place in the value being encoded: the root, or a step below a parent place.
#[derive(Clone, Copy)]
pub struct At<'a> {
    parent: Option<&'a At<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> At<'a> {
    pub const ROOT: At<'static> = At {
        parent: None,
        step: Step::Root,
    };

    /// The member `key` of the object here.
    pub fn key(&'a self, key: &'a str) -> At<'a> {
        At {
            parent: Some(self),
            step: Step::Key(key),
        }
    }

    /// Element `i` of the array here.
    pub fn index(&'a self, i: usize) -> At<'a> {
        At {
            parent: Some(self),
            step: Step::Index(i),
        }
    }

    /// A mismatch here.
    pub fn mismatch(&self, reason: impl Into<String>) -> Mismatch {
        Mismatch {
            path: self.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
        }
        match self.step {
            Step::Root => f.write_str("$"),
            Step::Key(k) => write!(f, ".{k}"),
            Step::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A value that its schema refuses: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `$` for the whole value, `$.a[2].b` below it.
    pub path: String,
    pub reason: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// The JSON pointer `/a/2/b` as a path, `$.a[2].b` (numbers are taken for indexes, as
/// a pointer does not say which it is).
pub fn path_of_pointer(pointer: &str) -> String {
    let mut path = String::from("$");
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        match token.parse::<usize>() {
            Ok(i) => path.push_str(&format!("[{i}]")),
            Err(_) => {
                path.push('.');
                path.push_str(&token);
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_written_from_the_root() {
        let root = At::ROOT;
        let readings = root.key("readings");
        let second = readings.index(2);
        let t = second.key("temperature");
        let m = t.mismatch("expected double, got string");
        assert_eq!(
            m.to_string(),
            "$.readings[2].temperature: expected double, got string"
        );
        assert_eq!(At::ROOT.mismatch("not JSON").to_string(), "$: not JSON");
    }

    #[test]
    fn pointers_become_paths() {
        assert_eq!(path_of_pointer(""), "$");
        assert_eq!(path_of_pointer("/a/2/b~1c"), "$.a[2].b/c");
    }
}
