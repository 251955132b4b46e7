//! Routing a publish to the entries whose topic filter matches it, through a topic
//! tree, so that the cost grows with the topic's depth and not with the entry count.
//!
//! Filters are parsed by rmqtt's own `Topic`, so validity is the broker's, and the
//! matching follows its router (`rmqtt::trie::TopicTree`, the test oracle). The tree is
//! ours because rmqtt's needs a parsed `Topic` per publish (a `Vec` and a `String` per
//! level) and allocates while matching: ~440 ns a publish against ~55 ns here, on a
//! path that runs for every message (`benches/route.rs`). Its nodes are keyed by
//! `Level`, so even a walk of our own over them would allocate a `String` per lookup.
//! This one looks `&str` levels of the topic up and allocates nothing.

use std::collections::HashMap;
use std::str::FromStr;

use rmqtt::topic::{Level, Topic};
use smallvec::SmallVec;

/// Which entries a publish topic reaches.
#[derive(Debug, Default)]
pub struct Routes {
    root: Node,
    len: usize,
}

#[derive(Debug, Default)]
struct Node {
    /// Entries whose filter ends at this level.
    ends: Vec<usize>,
    /// Entries whose filter ends with a `#` after this level: they match whatever
    /// follows, including nothing (`a/#` matches `a`).
    rest: Vec<usize>,
    /// Children by literal level (`""` for an empty one), hashed with rmqtt's hasher:
    /// routing stays flat from 1 to 1,000 children, where a sorted `Vec` made it grow
    /// from 40 ns to 130 ns, and std's SipHash adds 10 ns.
    exact: HashMap<Box<str>, Node, ahash::RandomState>,
    /// The child for `+`.
    any: Option<Box<Node>>,
}

impl Routes {
    /// `filters`: (entry id, MQTT topic filter), ids distinct.
    pub fn new<'a>(filters: impl IntoIterator<Item = (usize, &'a str)>) -> Result<Routes, String> {
        let mut routes = Routes::default();
        for (id, filter) in filters {
            let topic = Topic::from_str(filter)
                .map_err(|e| format!("\"{filter}\" is not a valid MQTT topic filter: {e}"))?;
            routes.root.insert(&topic, id);
            routes.len += 1;
        }
        Ok(routes)
    }

    /// Appends the ids of the entries whose filter matches `topic`, each once, in
    /// ascending order (configuration order), without allocating unless `out` spills.
    pub fn matches(&self, topic: &str, out: &mut SmallVec<[usize; 8]>) {
        let start = out.len();
        // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a topic
        // starting with `$` (`#` does not forward `$SYS/...`).
        self.root.descend(topic, !topic.starts_with('$'), out);
        out[start..].sort_unstable();
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is routed to, so that a publish can skip routing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Node {
    fn insert(&mut self, levels: &[Level], id: usize) {
        match levels.split_first() {
            None => self.ends.push(id),
            // `Topic::from_str` only accepts `#` as the last level.
            Some((Level::MultiWildcard, _)) => self.rest.push(id),
            Some((Level::SingleWildcard, tail)) => {
                self.any.get_or_insert_default().insert(tail, id)
            }
            Some((level, tail)) => {
                let key = level.value().unwrap_or_default();
                self.exact.entry(key.into()).or_default().insert(tail, id)
            }
        }
    }

    /// Matches `topic`, one or more levels, below this node; `wildcards` is false where
    /// `+` and `#` may not match the first level. Every node is visited at most once,
    /// so every id is appended at most once.
    fn descend(&self, topic: &str, wildcards: bool, out: &mut SmallVec<[usize; 8]>) {
        let (level, tail) = match topic.split_once('/') {
            Some((level, tail)) => (level, Some(tail)),
            None => (topic, None),
        };
        if wildcards {
            out.extend_from_slice(&self.rest);
            if let Some(any) = &self.any {
                any.reached(tail, out);
            }
        }
        if let Some(child) = self.exact.get(level) {
            child.reached(tail, out);
        }
    }

    /// This node matched a level; `tail` is what is left of the topic after it.
    fn reached(&self, tail: Option<&str>, out: &mut SmallVec<[usize; 8]>) {
        match tail {
            Some(tail) => self.descend(tail, true, out),
            None => {
                out.extend_from_slice(&self.ends);
                out.extend_from_slice(&self.rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rmqtt::trie::TopicTree;

    use super::*;

    fn routed(filters: &[&str], topic: &str) -> Vec<usize> {
        let routes = Routes::new(filters.iter().copied().enumerate()).unwrap();
        let mut out = SmallVec::new();
        routes.matches(topic, &mut out);
        out.to_vec()
    }

    #[test]
    fn mqtt_edge_cases() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            ("a/+", "a/b", true),
            ("a/+", "a", false),
            ("a/+", "a/", true),
            ("a/+/c", "a/x/c", true),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/#", "ab", false),
            ("#", "a/b", true),
            ("+/+", "/", true),
            ("/a", "/a", true),
            ("/a", "a", false),
            ("a/+/b", "a//b", true),
            ("#", "$SYS/broker", false),
            // rmqtt's `Topic::matches_str` says true; its router (`TopicTree`) does not.
            ("+", "$SYS", false),
            ("+/#", "$SYS/broker", false),
            ("+/broker", "$SYS/broker", false),
            ("$SYS/#", "$SYS", true),
            ("$SYS/+", "$SYS/broker", true),
            // Only a leading `$` is special (rmqtt cannot parse such a topic to route it).
            ("a/+", "a/$x", true),
        ];
        for (filter, topic, want) in cases {
            assert_eq!(
                routed(&[filter], topic) == [0],
                want,
                "{filter} against {topic}"
            );
        }
    }

    #[test]
    fn every_entry_matches_once_in_configuration_order() {
        let filters = ["a/#", "a/b", "+/b", "a/b", "#", "x", "+/+"];
        assert_eq!(routed(&filters, "a/b"), [0, 1, 2, 3, 4, 6]);

        let routes = Routes::new([(7, "a"), (3, "+")]).unwrap();
        let mut out = SmallVec::from_slice(&[9]);
        routes.matches("a", &mut out);
        assert_eq!(out.as_slice(), [9, 3, 7]);
        assert_eq!(routes.len(), 2);
    }

    #[test]
    fn invalid_filters_are_named() {
        for bad in ["a/#/b", "a/b#", "a+/b", "a/$b"] {
            let err = Routes::new([(0, bad)]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    /// A deterministic xorshift generator, so that a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        /// 1 to 4 levels from `alphabet`, the first one sometimes `$s`.
        fn levels<'a>(&mut self, alphabet: &[&'a str]) -> Vec<&'a str> {
            let mut levels = vec!["$s"];
            if self.below(5) > 0 {
                levels[0] = alphabet[self.below(alphabet.len())];
            }
            for _ in 0..self.below(4) {
                levels.push(alphabet[self.below(alphabet.len())]);
            }
            levels
        }
    }

    /// rmqtt's router is the oracle: the entries `TopicTree` finds for the topic.
    #[test]
    fn agrees_with_rmqtt() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..500 {
            let filters: Vec<String> = (0..=rng.below(20))
                .map(|_| {
                    let mut levels = rng.levels(&["a", "b", "", "+", "#"]);
                    if let Some(i) = levels.iter().position(|l| *l == "#") {
                        levels.truncate(i + 1);
                    }
                    levels.join("/")
                })
                .collect();
            let parsed: Vec<Topic> = filters.iter().map(|f| f.parse().unwrap()).collect();
            let mut tree = TopicTree::default();
            for (id, filter) in parsed.iter().enumerate() {
                tree.insert(filter, id);
            }
            let routes = Routes::new(filters.iter().map(String::as_str).enumerate()).unwrap();
            for _ in 0..50 {
                let topic = rng.levels(&["a", "b", ""]).join("/");
                let mut expected: Vec<usize> = tree
                    .matches(&topic.parse().unwrap())
                    .iter()
                    .flat_map(|(_, ids)| ids)
                    .copied()
                    .collect();
                expected.sort_unstable();
                let mut out = SmallVec::new();
                routes.matches(&topic, &mut out);
                assert_eq!(out.as_slice(), expected, "{topic} against {filters:?}");
                // `matches_str` agrees but where its `+` meets a leading `$` level.
                if !topic.starts_with('$') {
                    let scan = (0..parsed.len()).filter(|&i| parsed[i].matches_str(&topic));
                    assert!(scan.eq(expected), "{topic} against {filters:?}");
                }
            }
        }
    }
}
