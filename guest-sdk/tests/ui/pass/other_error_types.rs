use rmqtt_kafka_transform::prelude::*;

mod a {
    use super::*;
    // Any std error.
    #[transform]
    fn parse(msg: &Message) -> Result<Outcome, std::str::Utf8Error> {
        std::str::from_utf8(msg.payload())?;
        Ok(Outcome::Drop)
    }
}

mod b {
    use super::*;
    // Any Display type, with fully qualified paths and explicit `'_`.
    #[transform]
    fn text(msg: &Message<'_>, _cfg: &Config) -> std::result::Result<rmqtt_kafka_transform::Outcome<'_>, String> {
        if msg.payload().is_empty() {
            return Err("empty".to_owned());
        }
        Ok(Outcome::Drop)
    }
}

mod c {
    use super::*;
    // Explicit lifetimes are left alone.
    #[transform]
    fn explicit<'a>(msg: &Message<'a>, _cfg: &Config) -> Outcome<'a> {
        Record::new(msg.topic()).into()
    }
}

fn main() {}
