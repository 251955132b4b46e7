//! The explicit form of docs/writing-transforms.md ("Lifetimes"): one named lifetime for
//! the message's data, the state and the records, also in a helper that builds a record.
use rmqtt_kafka_transform::prelude::*;

struct Settings {
    key: String,
    topics: Vec<String>,
}

fn parse(cfg: &Config) -> Result<Settings, Error> {
    Ok(Settings {
        key: cfg.get_or("key", "k").to_owned(),
        topics: cfg
            .get_or("topics", "a,b")
            .split(',')
            .map(str::to_owned)
            .collect(),
    })
}

/// A helper needs the lifetime spelled out: its records borrow from both arguments.
fn record<'a>(msg: &Message<'a>, s: &'a Settings, topic: &'a str) -> Record<'a> {
    Record::new(msg.payload()).key(s.key.as_str()).topic(topic)
}

#[transform(init = parse)]
fn fan_out<'a>(msg: &Message<'a>, s: &'a Settings) -> Outcome<'a> {
    s.topics.iter().map(|topic| record(msg, s, topic)).collect()
}

mod elided {
    use super::*;

    /// The same with the lifetimes left out; an error type's elided lifetime is
    /// `'static` (`&str` is `&'static str`), as an error outlives the call.
    #[transform(init = parse)]
    fn fan_out(msg: &Message, s: &Settings) -> Result<Outcome, &str> {
        if s.topics.is_empty() {
            return Err("no topics");
        }
        Ok(s.topics.iter().map(|topic| record(msg, s, topic)).collect())
    }
}

mod state_with_a_lifetime {
    use super::*;

    struct Names<'a> {
        key: &'a str,
    }

    fn names(_cfg: &Config) -> Result<Names<'static>, Error> {
        Ok(Names { key: "device" })
    }

    /// `'_` in the state type is whatever the init function returned: `'static`.
    #[transform(init = names)]
    fn keyed(msg: &Message, s: &Names<'_>) -> Outcome {
        Record::new(msg.payload()).key(s.key).into()
    }
}

fn main() {
    let cfg = Config::from_pairs([("key", "d1"), ("topics", "x,y")]);
    let s = parse(&cfg).unwrap();
    let t = rmqtt_kafka_transform::TestMessage::new("t", "5");
    let out = fan_out(&t.message(), &s);
    let topics: Vec<_> = out.records().iter().map(|r| r.get_topic()).collect();
    assert_eq!(topics, [Some("x"), Some("y")]);
    assert_eq!(out.records()[0].key_str(), Some("d1"));
}
