use rmqtt_kafka_transform::prelude::*;

fn check(cfg: &Config) -> Result<(), Error> {
    cfg.require::<f64>("threshold")?;
    Ok(())
}

#[transform(init = check)]
fn filter(msg: &Message, cfg: &Config) -> Result<Outcome, Error> {
    let threshold: f64 = cfg.require("threshold")?;
    let value: f64 = msg.payload_str()?.parse()?;
    Ok(if value < threshold { Outcome::Drop } else { Record::new(msg.payload()).into() })
}

fn main() {
    assert!(check(&Config::new()).is_err());
}
