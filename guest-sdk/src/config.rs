use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The entry's `transform.config` table: string keys and string values.
///
/// The host turns numbers and booleans into text (`threshold = 30` arrives as `"30"`), so
/// typed values are read with [`Config::parse`] or [`Config::require`]:
///
/// ```
/// use rmqtt_kafka_transform::Config;
///
/// let cfg = Config::from_pairs([("threshold", "30"), ("field", "temp")]);
/// assert_eq!(cfg.require::<f64>("threshold").unwrap(), 30.0);
/// assert_eq!(cfg.get_or("field", "value"), "temp");
/// assert_eq!(cfg.parse::<u32>("missing").unwrap(), None);
/// assert_eq!(
///     cfg.require::<u32>("field").unwrap_err().to_string(),
///     "config key `field`: invalid value \"temp\": invalid digit found in string"
/// );
/// ```
///
/// In a module the config is decoded once per instance (in `rmqtt_transform_init`) and
/// lives as long as the instance, so records may borrow from it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Sorted by key, keys unique.
    pairs: Vec<(Box<str>, Box<str>)>,
}

impl Config {
    /// An empty config.
    pub const fn new() -> Config {
        Config { pairs: Vec::new() }
    }

    /// A config with these pairs; a repeated key keeps its last value.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Config
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut cfg = Config::new();
        for (k, v) in pairs {
            cfg.insert(k.into(), v.into());
        }
        cfg
    }

    /// Decodes the ABI config document (`u32 count`, then `count` key/value pairs).
    pub fn decode(document: &[u8]) -> Result<Config, Error> {
        let mut cfg = Config::new();
        abi::config::decode(document, |k, v| cfg.insert(k.into(), v.into()))
            .map_err(|e| Error::msg(format_args!("malformed config document: {e}")))?;
        Ok(cfg)
    }

    fn insert(&mut self, key: String, value: String) {
        match self.pairs.binary_search_by(|(k, _)| (**k).cmp(&key)) {
            Ok(i) => self.pairs[i].1 = value.into_boxed_str(),
            Err(i) => self
                .pairs
                .insert(i, (key.into_boxed_str(), value.into_boxed_str())),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.pairs[i].1)
    }

    /// The value of `key`, or `default` when it is not set.
    pub fn get_or<'s>(&'s self, key: &str, default: &'s str) -> &'s str {
        self.get(key).unwrap_or(default)
    }

    /// `key` parsed as a `T`: `Ok(None)` when it is not set, an error naming the key and
    /// the value when it does not parse.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|e| {
                Error::msg(format_args!(
                    "config key `{key}`: invalid value {value:?}: {e}"
                ))
            }),
        }
    }

    /// Like [`Config::parse`], but a missing key is an error too.
    pub fn require<T>(&self, key: &str) -> Result<T, Error>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.parse(key)?
            .ok_or_else(|| Error::msg(format_args!("missing required config key `{key}`")))
    }

    /// Refuses keys the transform does not read, so that a typo (`topic_prefx`) fails
    /// `init`, and with it the broker's start, instead of being ignored. Call it first in
    /// `init` with every key the transform reads:
    ///
    /// ```
    /// use rmqtt_kafka_transform::Config;
    ///
    /// let cfg = Config::from_pairs([("topic_prefx", "x")]);
    /// assert_eq!(
    ///     cfg.reject_unknown(&["topic_prefix", "field"]).unwrap_err().to_string(),
    ///     "unknown config key `topic_prefx`; this transform reads `topic_prefix`, `field`"
    /// );
    /// assert!(Config::from_pairs([("field", "v")]).reject_unknown(&["field"]).is_ok());
    /// ```
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), Error> {
        let Some((unknown, _)) = self.iter().find(|(k, _)| !known.contains(k)) else {
            return Ok(());
        };
        let reads = if known.is_empty() {
            "no config keys".to_owned()
        } else {
            let names: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            names.join(", ")
        };
        Err(Error::msg(format_args!(
            "unknown config key `{unknown}`; this transform reads {reads}"
        )))
    }

    /// Every `(key, value)`, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.pairs.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// `true` when no key is set.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Config {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Config {
        Config::from_pairs(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let cfg = Config::from_pairs([("b", "2"), ("a", "1"), ("b", "3")]);
        assert_eq!(cfg.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "3")]);
        assert_eq!(cfg.get("a"), Some("1"));
        assert_eq!(cfg.get("c"), None);
        assert_eq!(cfg.get_or("c", "x"), "x");
        assert_eq!(cfg.parse::<i32>("b").unwrap(), Some(3));
        assert_eq!(
            cfg.require::<bool>("c").unwrap_err().to_string(),
            "missing required config key `c`"
        );
        let err = cfg.require::<bool>("a").unwrap_err().to_string();
        assert_eq!(
            err,
            "config key `a`: invalid value \"1\": provided string was not `true` or `false`"
        );
        assert_eq!(format!("{cfg:?}"), r#"{"a": "1", "b": "3"}"#);
    }

    #[test]
    fn decodes_the_abi_document() {
        let pairs = [("field", "temp"), ("threshold", "30")];
        let mut doc = vec![0; abi::config::encoded_len(pairs.iter().copied())];
        abi::config::encode(pairs.iter().copied(), &mut doc);
        let cfg = Config::decode(&doc).unwrap();
        assert_eq!(cfg, Config::from_pairs(pairs));
        assert!(Config::decode(&doc[..doc.len() - 1])
            .unwrap_err()
            .to_string()
            .starts_with("malformed config"));
        assert!(Config::decode(&0u32.to_le_bytes()).unwrap().is_empty());
    }
}
