use rmqtt_kafka_transform::prelude::*;

struct Settings<'a> {
    key: &'a str,
}

fn parse(cfg: &Config) -> Result<Settings<'_>, Error> {
    Ok(Settings {
        key: cfg.get_or("key", "id"),
    })
}

#[transform(init = parse)]
fn keyed<'a>(msg: &Message<'a>, s: &'a Settings<'a>) -> Outcome<'a> {
    Record::new(msg.payload()).key(s.key).into()
}

fn main() {}
