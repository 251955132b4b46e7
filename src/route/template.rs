//! The configured names an entry routes with: its MQTT topic filter, the `${...}`
//! templates of `remote.topic` and `remote.key`, and checked Kafka topic names.

use std::fmt;
use std::str::FromStr;

use serde::de::{Deserialize, Deserializer, Error as _};
use smallvec::SmallVec;

/// A stack buffer that a rendered topic or key fits in without allocating.
pub type RenderBuf = SmallVec<[u8; 256]>;

/// A validated MQTT topic filter (`local.topic_filter`). The routing tree matches it;
/// this type only checks it, with messages that say what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    raw: String,
}

impl TopicFilter {
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl FromStr for TopicFilter {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("the topic filter is empty".into());
        }
        if raw.contains('\0') {
            return Err("a topic filter cannot contain NUL".into());
        }
        let levels = raw.split('/').count();
        for (i, level) in raw.split('/').enumerate() {
            match level {
                "#" if i + 1 < levels => {
                    return Err(format!(
                        "invalid topic filter \"{raw}\": '#' must be the last level"
                    ))
                }
                "#" | "+" => {}
                l if l.contains(['#', '+']) => {
                    return Err(format!(
                        "invalid topic filter \"{raw}\": '{}' must occupy a whole level",
                        if l.contains('#') { '#' } else { '+' }
                    ))
                }
                _ => {}
            }
        }
        // The broker's own parser has the last word (a `$` level, say, may only come first).
        rmqtt::topic::Topic::from_str(raw)
            .map_err(|e| format!("invalid topic filter \"{raw}\": {e}"))?;
        Ok(TopicFilter {
            raw: raw.to_owned(),
        })
    }
}

/// A variable that a template can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// `${local.topic}`: the MQTT topic after `remote.skip_levels`.
    LocalTopic,
    /// `${clientid}`
    ClientId,
    /// `${username}` (empty when the client has none)
    Username,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        match name {
            "local.topic" => Some(Var::LocalTopic),
            "clientid" => Some(Var::ClientId),
            "username" => Some(Var::Username),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A string with `${...}` placeholders, parsed once at load.
#[derive(Debug, Clone)]
struct Template {
    raw: String,
    parts: Vec<Part>,
}

impl Template {
    fn parse(raw: &str, allowed: &[Var]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let Some(len) = rest[start + 2..].find('}') else {
                return Err(format!("unclosed \"${{\" in \"{raw}\""));
            };
            let name = &rest[start + 2..start + 2 + len];
            match Var::parse(name) {
                Some(var) if allowed.contains(&var) => parts.push(Part::Var(var)),
                _ => {
                    let names: Vec<String> = allowed
                        .iter()
                        .map(|v| format!("${{{}}}", var_name(*v)))
                        .collect();
                    return Err(format!(
                        "unknown placeholder \"${{{name}}}\"; use {}",
                        names.join(", ")
                    ));
                }
            }
            rest = &rest[start + 2 + len + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template {
            raw: raw.to_owned(),
            parts,
        })
    }

    fn constant(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }
}

fn var_name(v: Var) -> &'static str {
    match v {
        Var::LocalTopic => "local.topic",
        Var::ClientId => "clientid",
        Var::Username => "username",
    }
}

/// Values a template can be rendered with.
pub struct Vars<'a> {
    pub local_topic: &'a str,
    pub client_id: &'a str,
    pub username: &'a str,
}

impl Vars<'_> {
    fn get(&self, v: Var) -> &str {
        match v {
            Var::LocalTopic => self.local_topic,
            Var::ClientId => self.client_id,
            Var::Username => self.username,
        }
    }
}

/// `remote.topic`: a Kafka topic name with an optional `${local.topic}`, which is
/// substituted with the MQTT topic where `/` becomes `-`. As upstream does, a `/` in
/// the literal parts also becomes `-`.
#[derive(Debug, Clone)]
pub struct TopicTemplate(Template);

impl TopicTemplate {
    pub fn as_str(&self) -> &str {
        &self.0.raw
    }

    /// The topic when it does not depend on the message.
    pub fn constant(&self) -> Option<&str> {
        self.0.constant()
    }

    /// Renders the topic for one message into `out`.
    pub fn render<'b>(&self, local_topic: &str, out: &'b mut RenderBuf) -> &'b [u8] {
        out.clear();
        for part in &self.0.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Var(_) => {
                    out.extend(
                        local_topic
                            .bytes()
                            .map(|b| if b == b'/' { b'-' } else { b }),
                    )
                }
            }
        }
        out
    }
}

impl FromStr for TopicTemplate {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let mut t = Template::parse(&raw.replace('/', "-"), &[Var::LocalTopic])?;
        t.raw = raw.to_owned();
        for part in &t.parts {
            if let Part::Literal(s) = part {
                if let Some(c) = s.chars().find(|c| !abi::rules::is_topic_char(*c)) {
                    return Err(format!(
                        "\"{raw}\" contains '{c}', which Kafka topic names cannot contain (allowed: a-z A-Z 0-9 . _ -)"
                    ));
                }
            }
        }
        if t.parts.is_empty() {
            return Err("the topic is empty".into());
        }
        if let Some(c) = t.constant() {
            check_kafka_topic(c)?;
        }
        Ok(TopicTemplate(t))
    }
}

/// `remote.key`: a template over `${clientid}`, `${username}` and `${local.topic}`
/// (the MQTT topic after `remote.skip_levels`, unchanged).
#[derive(Debug, Clone)]
pub struct KeyTemplate(Template);

impl KeyTemplate {
    pub fn as_str(&self) -> &str {
        &self.0.raw
    }

    /// Renders the key for one message into `out`.
    pub fn render<'b>(&self, vars: &Vars<'_>, out: &'b mut RenderBuf) -> &'b [u8] {
        out.clear();
        for part in &self.0.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Var(v) => out.extend_from_slice(vars.get(*v).as_bytes()),
            }
        }
        out
    }
}

impl FromStr for KeyTemplate {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Template::parse(raw, &[Var::ClientId, Var::Username, Var::LocalTopic]).map(KeyTemplate)
    }
}

/// Kafka's topic naming rules, as the transform ABI states them for host and guest alike.
pub fn check_kafka_topic(name: &str) -> Result<(), String> {
    abi::rules::check_topic(name).map_err(|e| e.to_string())
}

/// Drops the first `n` levels of an MQTT topic (`remote.skip_levels`).
pub fn skip_levels(topic: &str, n: usize) -> &str {
    if n == 0 {
        return topic;
    }
    match topic.match_indices('/').nth(n - 1) {
        Some((i, _)) => &topic[i + 1..],
        None => "",
    }
}

/// A Kafka topic name that was checked at load (`transform.dead_letter_topic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTopic(String);

impl KafkaTopic {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KafkaTopic {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        check_kafka_topic(s).map(|()| KafkaTopic(s.to_owned()))
    }
}

macro_rules! deserialize_from_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(D::Error::custom)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}
deserialize_from_str!(TopicFilter, TopicTemplate, KeyTemplate, KafkaTopic);

/// Templates are equal when they were written the same.
impl PartialEq for TopicTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq for KeyTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_filters_are_refused() {
        for bad in ["", "a/#/b", "a/b#", "a+/b", "x\0y", "a/$b"] {
            assert!(bad.parse::<TopicFilter>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn topic_template_substitutes_like_upstream() {
        let t: TopicTemplate = "remote-topic1-egress-${local.topic}".parse().unwrap();
        let mut buf = RenderBuf::new();
        assert_eq!(
            t.render("local/topic1/egress/a", &mut buf),
            b"remote-topic1-egress-local-topic1-egress-a"
        );
        let fixed: TopicTemplate = "a/b".parse().unwrap();
        assert_eq!(fixed.constant(), Some("a-b"));
        assert!("bad topic".parse::<TopicTemplate>().is_err());
        assert!("x-${clientid}".parse::<TopicTemplate>().is_err());
        assert!("x-${local.topic".parse::<TopicTemplate>().is_err());
    }

    #[test]
    fn key_template_renders_all_vars() {
        let k: KeyTemplate = "${clientid}|${username}|${local.topic}".parse().unwrap();
        let mut buf = RenderBuf::new();
        let vars = Vars {
            local_topic: "a/b",
            client_id: "c1",
            username: "",
        };
        assert_eq!(k.render(&vars, &mut buf), b"c1||a/b");
        assert!("${nope}".parse::<KeyTemplate>().is_err());
    }

    #[test]
    fn skip_levels_drops_leading_levels() {
        assert_eq!(skip_levels("a/b/c/d", 0), "a/b/c/d");
        assert_eq!(skip_levels("a/b/c/d", 2), "c/d");
        assert_eq!(skip_levels("a/b", 5), "");
    }

    #[test]
    fn kafka_topic_rules() {
        assert!(check_kafka_topic("telemetry.v1_x-y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(250)] {
            assert!(check_kafka_topic(bad).is_err(), "{bad:?}");
        }
    }
}
