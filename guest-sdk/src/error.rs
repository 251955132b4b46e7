use std::fmt;

/// The error a transform returns: a human-readable message.
///
/// The host receives the message in an ERROR document, logs it with the bridge and entry
/// names, counts it (cause `guest_error`) and applies the entry's `transform.on_error`
/// policy. Nothing else crosses the boundary, so the error is just its text.
///
/// Any [`std::error::Error`] converts into it with `?` (its `source()` chain is appended,
/// `outer: inner: root`), and [`Error::msg`] makes one from anything printable:
///
/// ```
/// use rmqtt_kafka_transform::Error;
///
/// fn parse(text: &str) -> Result<f64, Error> {
///     let v: f64 = text.trim().parse()?; // ParseFloatError -> Error
///     if v.is_nan() {
///         return Err(Error::msg(format!("`{text}` is not a number")));
///     }
///     Ok(v)
/// }
/// assert_eq!(parse("oops").unwrap_err().to_string(), "invalid float literal");
/// ```
///
/// `Error` deliberately does not implement `std::error::Error` itself: that is what lets
/// the blanket `From<E: std::error::Error>` conversion exist (the same trade-off as
/// `anyhow::Error`).
pub struct Error {
    message: Box<str>,
    invalid_output: bool,
}

impl Error {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error {
            message: message.to_string().into_boxed_str(),
            invalid_output: false,
        }
    }

    /// An output the module itself found invalid: the host counts it `bad_output`
    /// rather than `guest_error` (and keeps the instance). For runtimes that run code in
    /// another language and check what it returned.
    pub fn invalid_output(message: impl fmt::Display) -> Error {
        Error {
            invalid_output: true,
            ..Error::msg(message)
        }
    }

    /// Whether this is an [`Error::invalid_output`].
    pub fn is_invalid_output(&self) -> bool {
        self.invalid_output
    }

    /// Prefixes the message: `context: message`.
    pub fn context(self, context: impl fmt::Display) -> Error {
        Error {
            message: format!("{context}: {}", self.message).into_boxed_str(),
            ..self
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(err: E) -> Error {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Many errors already repeat their cause in their own message.
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        Error {
            message: message.into_boxed_str(),
            invalid_output: false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.message, f)
    }
}

/// Returns early with an [`Error`] built from a format string, like `anyhow::bail!`.
///
/// ```
/// use rmqtt_kafka_transform::{bail, Error};
///
/// fn check(level: u8) -> Result<(), Error> {
///     if level > 2 {
///         bail!("level {level} is out of range");
///     }
///     Ok(())
/// }
/// assert_eq!(check(7).unwrap_err().to_string(), "level 7 is out of range");
/// ```
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::Error::msg(::core::format_args!($($arg)+)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::num::ParseIntError);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("reading the count")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn std_errors_convert_with_their_sources() {
        let inner = "x".parse::<u8>().unwrap_err();
        let err = Error::from(Outer(inner));
        assert_eq!(
            err.to_string(),
            "reading the count: invalid digit found in string"
        );
        assert_eq!(
            format!("{err:?}"),
            "\"reading the count: invalid digit found in string\""
        );
    }

    #[test]
    fn msg_and_context() {
        let err = Error::msg(42).context("answer");
        assert_eq!(err.message(), "answer: 42");
    }

    #[test]
    fn question_mark_converts() {
        fn f() -> Result<u8, Error> {
            Ok("300".parse::<u8>()?)
        }
        assert_eq!(
            f().unwrap_err().to_string(),
            "number too large to fit in target type"
        );
    }
}
