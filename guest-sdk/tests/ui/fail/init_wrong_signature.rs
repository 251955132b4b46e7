use rmqtt_kafka_transform::prelude::*;

fn check(cfg: &Config) -> bool {
    cfg.is_empty()
}

#[transform(init = check)]
fn t(_msg: &Message) -> Outcome {
    Outcome::Drop
}

fn main() {}
