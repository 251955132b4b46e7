//! `${...}` templates, parsed once at load into literal text and placeholders. A template
//! that does not parse refuses the configuration with the column of the problem.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use super::member::Path;

/// A value a template can insert; see docs/configuration.md, "Templates".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `${local.topic}`: the MQTT topic after `remote.skip_levels`.
    LocalTopic,
    /// `${clientid}`
    ClientId,
    /// `${username}` (empty when the client has none)
    Username,
    /// `${topic}`: the whole MQTT topic.
    Topic,
    /// `${topic.N}`: level N of the topic, from 0.
    TopicLevel(usize),
    /// `${payload}`: the payload as it is.
    Payload,
    /// `${payload.a[2].b}`: a member of a JSON payload.
    Member(Path),
    /// `${qos}`: 0, 1 or 2.
    Qos,
    /// `${retain}`: `true` or `false`.
    Retain,
    /// `${timestamp}`: when the broker received the publish, in ms since the epoch.
    Timestamp,
    /// `${property.NAME}`: the first MQTT v5 user property named NAME.
    Property(Box<str>),
}

/// What an unknown placeholder's error lists.
const KNOWN: &str = "${topic}, ${topic.N}, ${local.topic}, ${clientid}, ${username}, ${payload}, \
                     ${payload.PATH}, ${qos}, ${retain}, ${timestamp}, ${property.NAME}";

impl Placeholder {
    /// Parses the text between `${` and `}`; an error carries its byte offset in `name`.
    fn parse(name: &str) -> Result<Placeholder, (usize, String)> {
        Ok(match name {
            "local.topic" => Placeholder::LocalTopic,
            "clientid" => Placeholder::ClientId,
            "username" => Placeholder::Username,
            "topic" => Placeholder::Topic,
            "payload" => Placeholder::Payload,
            "qos" => Placeholder::Qos,
            "retain" => Placeholder::Retain,
            "timestamp" => Placeholder::Timestamp,
            _ => return Placeholder::parse_qualified(name),
        })
    }

    /// `topic.N`, `payload.PATH`, `payload[N]…` and `property.NAME`.
    fn parse_qualified(name: &str) -> Result<Placeholder, (usize, String)> {
        if let Some(level) = name.strip_prefix("topic.") {
            let is_number = !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit());
            return match level.parse() {
                Ok(n) if is_number => Ok(Placeholder::TopicLevel(n)),
                _ => Err((6, format!("\"{level}\" is not a topic level; levels are numbered from 0, as in ${{topic.1}}"))),
            };
        }
        if let Some(path) = name.strip_prefix("payload") {
            if path.starts_with(['.', '[']) {
                return Path::parse(path)
                    .map(Placeholder::Member)
                    .map_err(|(at, problem)| (at + "payload".len(), problem));
            }
        }
        if let Some(property) = name.strip_prefix("property.") {
            if !property.is_empty() {
                return Ok(Placeholder::Property(property.into()));
            }
            return Err((9, "the user property's name is missing".into()));
        }
        Err((
            0,
            format!("unknown placeholder \"${{{name}}}\"; use one of {KNOWN}"),
        ))
    }
}

#[derive(Debug, Clone)]
pub(super) enum Part {
    Literal(Box<str>),
    /// A placeholder and where it is written in the template (for error messages).
    Value(Placeholder, Range<usize>),
}

/// A string with `${...}` placeholders: `remote.key`, `remote.headers.*`,
/// `remote.timestamp` and `remote.payload`.
#[derive(Debug, Clone)]
pub struct Template {
    raw: String,
    pub(super) parts: Vec<Part>,
}

/// Why a template did not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The template as written.
    pub template: String,
    /// 1-based, in characters.
    pub column: usize,
    pub problem: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, column, problem) = (&self.template, self.column, &self.problem);
        write!(f, "\"{t}\", column {column}: {problem}")
    }
}

impl Template {
    pub fn parse(raw: &str) -> Result<Template, TemplateError> {
        let error = |at: usize, problem: String| TemplateError {
            template: raw.to_owned(),
            column: raw[..at].chars().count() + 1,
            problem,
        };
        let mut parts = Vec::new();
        let mut literal_from = 0;
        while let Some(found) = raw[literal_from..].find("${") {
            let start = literal_from + found;
            if start > literal_from {
                parts.push(Part::Literal(raw[literal_from..start].into()));
            }
            let name_from = start + 2;
            let Some(len) = raw[name_from..].find('}') else {
                return Err(error(start, "\"${\" is not closed by \"}\"".into()));
            };
            let name = &raw[name_from..name_from + len];
            // Offset 0 is the placeholder as a whole: reported where its `${` is.
            let placeholder = Placeholder::parse(name)
                .map_err(|(at, p)| error(if at == 0 { start } else { name_from + at }, p))?;
            literal_from = name_from + len + 1;
            parts.push(Part::Value(placeholder, start..literal_from));
        }
        if literal_from < raw.len() {
            parts.push(Part::Literal(raw[literal_from..].into()));
        }
        Ok(Template {
            raw: raw.to_owned(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The text when the template has no placeholder.
    pub fn constant(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }

    pub(super) fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(v, _) => Some(v),
            Part::Literal(_) => None,
        })
    }

    /// The text of the placeholder written at `span`.
    pub(super) fn text(&self, span: &Range<usize>) -> &str {
        &self.raw[span.clone()]
    }
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(raw: &str) -> Result<Template, TemplateError> {
        Template::parse(raw)
    }
}

/// `remote.topic`: a template whose literal text must fit a Kafka topic name. As
/// upstream does, a `/` in the literal text and in `${local.topic}` or `${topic}`
/// becomes `-`; every other value is inserted as it is, and the rendered name is
/// checked per record.
#[derive(Debug, Clone)]
pub struct TopicTemplate(pub(super) Template);

impl TopicTemplate {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The topic when it does not depend on the message.
    pub fn constant(&self) -> Option<&str> {
        self.0.constant()
    }

    pub fn template(&self) -> &Template {
        &self.0
    }
}

impl FromStr for TopicTemplate {
    type Err = TemplateError;

    fn from_str(raw: &str) -> Result<TopicTemplate, TemplateError> {
        let mut t = Template::parse(raw)?;
        let error = |problem: String| TemplateError {
            template: raw.to_owned(),
            column: 1,
            problem,
        };
        let mut at = 0;
        for part in &mut t.parts {
            match part {
                Part::Literal(text) => {
                    if let Some((i, c)) = text
                        .char_indices()
                        .find(|(_, c)| *c != '/' && !abi::rules::is_topic_char(*c))
                    {
                        return Err(TemplateError {
                            column: raw[..at + i].chars().count() + 1,
                            ..error(format!("'{c}' is not allowed in a Kafka topic name (only a-z A-Z 0-9 . _ -)"))
                        });
                    }
                    at += text.len();
                    *text = text.replace('/', "-").into();
                }
                Part::Value(_, span) => at = span.end,
            }
        }
        match t.constant() {
            Some("") => return Err(error("the topic is empty".into())),
            Some(name) => abi::rules::check_topic(name).map_err(|e| error(e.to_string()))?,
            None => {}
        }
        Ok(TopicTemplate(t))
    }
}

text_value!(Template, TopicTemplate);

/// Templates are equal when they were written the same.
impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq for TopicTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> (usize, String) {
        let e = raw.parse::<Template>().unwrap_err();
        (e.column, e.problem)
    }

    #[test]
    fn every_placeholder_parses() {
        let t: Template = "${local.topic}${clientid}${username}${topic}${topic.12}${payload}\
             ${payload.a.b}${payload[3]}${qos}${retain}${timestamp}${property.tenant id}"
            .parse()
            .unwrap();
        let got: Vec<_> = t.placeholders().cloned().collect();
        assert_eq!(got.len(), 12);
        assert_eq!(got[4], Placeholder::TopicLevel(12));
        assert_eq!(got[11], Placeholder::Property("tenant id".into()));
        assert!(matches!(got[6], Placeholder::Member(_)));
    }

    #[test]
    fn literals_and_placeholders_keep_their_order_and_place() {
        let t: Template = "a-${qos}-b".parse().unwrap();
        assert!(
            matches!(&t.parts[..], [Part::Literal(a), Part::Value(Placeholder::Qos, span), Part::Literal(b)]
            if &**a == "a-" && &**b == "-b" && t.text(span) == "${qos}")
        );
        assert_eq!(
            "plain".parse::<Template>().unwrap().constant(),
            Some("plain")
        );
        assert_eq!("".parse::<Template>().unwrap().constant(), Some(""));
        assert_eq!(
            "$ {x} $x }".parse::<Template>().unwrap().constant(),
            Some("$ {x} $x }")
        );
    }

    #[test]
    fn every_refusal_names_its_column() {
        let cases: &[(&str, usize, &str)] = &[
            ("ab${nope}", 3, "unknown placeholder \"${nope}\""),
            ("${clientid", 1, "is not closed"),
            ("x${topic.}", 10, "\"\" is not a topic level"),
            ("${topic.-1}", 9, "\"-1\" is not a topic level"),
            ("${topic.a}", 9, "\"a\" is not a topic level"),
            ("${property.}", 12, "name is missing"),
            ("${payload.}", 11, "empty member name"),
            ("${payload..a}", 11, "empty member name"),
            ("${payload.a[}", 12, "'[' is not closed"),
            ("${payload.a[x]}", 13, "an array index is a number"),
            ("${payload[0]x}", 13, "expected '.' or '['"),
            ("${payload.a]}", 12, "']'"),
            ("ü${payloadx}", 2, "unknown placeholder"),
            ("${}", 1, "unknown placeholder \"${}\""),
        ];
        for (raw, column, problem) in cases {
            let (got_column, got_problem) = refused(raw);
            assert_eq!(got_column, *column, "{raw}: {got_problem}");
            assert!(got_problem.contains(problem), "{raw}: {got_problem}");
        }
    }

    #[test]
    fn topic_templates_follow_upstream_and_kafka() {
        let t: TopicTemplate = "a/b-${local.topic}".parse().unwrap();
        assert!(matches!(&t.0.parts[0], Part::Literal(s) if &**s == "a-b-"));
        assert_eq!(
            "x/y".parse::<TopicTemplate>().unwrap().constant(),
            Some("x-y")
        );
        let e = "site ${topic.1}".parse::<TopicTemplate>().unwrap_err();
        assert_eq!(e.column, 5, "{e}");
        assert!("".parse::<TopicTemplate>().is_err());
        assert!("..".parse::<TopicTemplate>().is_err());
        assert!("t-${property.site}".parse::<TopicTemplate>().is_ok());
        assert!("t-${clientid".parse::<TopicTemplate>().is_err());
    }
}
