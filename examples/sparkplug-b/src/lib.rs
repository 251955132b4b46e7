//! Decodes Eclipse Sparkplug B messages into one JSON record per metric.
//!
//! Topics `spBv1.0/<group>/<type>/<edge>[/<device>]`; the payload is the spec's
//! protobuf `Payload`. Each metric of an NBIRTH, DBIRTH, NDATA, DDATA, NDEATH or DDEATH
//! becomes a record keyed `<group>/<edge>/<device>` (`<group>/<edge>/` for the node
//! itself) whose payload is
//!
//! ```json
//! {"group":"plant1","edge":"edge1","device":null,"type":"NDATA","seq":2,
//!  "metric":"Types/Int32","alias":12,"datatype":"Int32","value":-1,
//!  "timestamp":1700000000999,"is_historical":false,"is_transient":false}
//! ```
//!
//! plus `metadata` and `properties` when the metric has them. `timestamp` is the
//! metric's, else the payload's. DATA messages carry aliases only (the spec says so);
//! their names and datatypes come from the last BIRTH, kept in the entry's state store
//! ([`aliases`]). An alias no current BIRTH named gives a record with `metric` null,
//! counted in a warning: the data still reaches Kafka, and the warning says the BIRTH
//! was missed. A DEATH without metrics (a DDEATH usually has none) gives one record
//! with `metric` and `value` null, so the death itself reaches Kafka.
//!
//! Commands (NCMD, DCMD) and host state (`spBv1.0/STATE/...`) are dropped. A topic
//! outside the namespace, a payload that is not a Sparkplug B protobuf, an unknown
//! datatype or a value that does not fit its datatype is an error, handled by the
//! entry's `transform.on_error`. The module takes no config; any key refuses the start.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message as _;
use rmqtt_kafka_transform::prelude::*;
use rmqtt_kafka_transform::{bail, log};
use serde::Serialize;

pub mod aliases;
mod arrays;
mod proto;
mod template;
pub mod topic;
mod value;

use proto::{Metric, MetricValue, Payload};
use topic::{Kind, Parsed, Topic};
use value::{DataType, Val};

/// There is nothing to configure; a key is most likely meant for another module.
fn check_config(cfg: &Config) -> Result<(), Error> {
    cfg.reject_unknown(&[])
}

#[transform(init = check_config)]
fn sparkplug_b(msg: &Message, _cfg: &Config) -> Result<Outcome, Error> {
    let topic = match topic::parse(msg.topic()).map_err(Error::msg)? {
        Parsed::Decode(topic) => topic,
        Parsed::Skip => return Ok(Outcome::Drop),
    };
    let payload = decode(msg.payload())?;
    let records = match topic.kind {
        Kind::NBirth | Kind::DBirth => births(msg, &topic, payload)?,
        Kind::NData | Kind::DData => data(&topic, payload)?,
        Kind::NDeath | Kind::DDeath => deaths(&topic, payload)?,
    };
    if records.is_empty() {
        return Ok(Outcome::Drop);
    }
    Ok(Outcome::Records(records))
}

/// The payload, or an error. Protobuf accepts much that is not Sparkplug (no bytes at
/// all decode as an empty message), so a payload with none of timestamp, seq and metrics
/// is refused too: every Sparkplug B payload has a timestamp or a metric.
fn decode(bytes: &[u8]) -> Result<Payload, Error> {
    if bytes.is_empty() {
        bail!("empty payload: not a Sparkplug B payload");
    }
    let payload = Payload::decode(bytes)
        .map_err(|e| Error::msg(format!("not a Sparkplug B payload: {e}")))?;
    if payload.timestamp.is_none() && payload.seq.is_none() && payload.metrics.is_empty() {
        bail!("not a Sparkplug B payload: no timestamp, seq or metrics");
    }
    Ok(payload)
}

/// What every record of one message shares.
struct Context<'a> {
    topic: &'a Topic<'a>,
    seq: Option<u64>,
    timestamp: Option<u64>,
    /// `<group>/<edge>/<device>`, shared by the records instead of copied.
    key: Rc<str>,
}

impl<'a> Context<'a> {
    fn new(topic: &'a Topic<'a>, payload: &Payload) -> Context<'a> {
        let device = topic.device.unwrap_or("");
        Context {
            topic,
            seq: payload.seq,
            timestamp: payload.timestamp,
            key: format!("{}/{}/{device}", topic.group, topic.edge).into(),
        }
    }
}

/// A record's payload, in this order.
#[derive(Serialize)]
struct Out<'a> {
    group: &'a str,
    edge: &'a str,
    device: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    seq: Option<u64>,
    metric: Option<&'a str>,
    alias: Option<u64>,
    datatype: Option<&'static str>,
    value: Val,
    timestamp: Option<u64>,
    is_historical: bool,
    is_transient: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Val>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<Val>,
}

/// The record of metric `m`, under `name` and read as `datatype` (both already
/// resolved from an alias where needed).
fn record(
    ctx: &Context,
    m: Metric,
    name: Option<&str>,
    datatype: Option<DataType>,
) -> Result<Record<'static>, Error> {
    let what = || match (name, m.alias) {
        (Some(name), _) => format!("metric {name:?}"),
        (None, Some(alias)) => format!("metric alias {alias}"),
        (None, None) => "metric without name or alias".to_owned(),
    };
    let is_null = m.is_null == Some(true);
    let value = value::metric_value(datatype, is_null, m.value)
        .map_err(|e| Error::msg(format!("{}: {e}", what())))?;
    let properties = m.properties.map(value::properties).transpose();
    let out = Out {
        group: ctx.topic.group,
        edge: ctx.topic.edge,
        device: ctx.topic.device,
        kind: ctx.topic.kind.name(),
        seq: ctx.seq,
        metric: name,
        alias: m.alias,
        datatype: datatype.map(DataType::name),
        value,
        timestamp: m.timestamp.or(ctx.timestamp),
        is_historical: m.is_historical == Some(true),
        is_transient: m.is_transient == Some(true),
        metadata: m.metadata.map(value::metadata),
        properties: properties.map_err(|e| Error::msg(format!("{}: {e}", what())))?,
    };
    Ok(Record::json(&out)?.key(ctx.key.clone()))
}

/// The datatype a metric carries; 0 (Unknown) counts as none, as in a DATA that
/// leaves it out.
fn wire_datatype(m: &Metric) -> Result<Option<DataType>, Error> {
    match m.datatype {
        None | Some(0) => Ok(None),
        Some(code) => DataType::from_code(code).map(Some).map_err(Error::msg),
    }
}

/// The value of the `bdSeq` metric, which ties an NBIRTH to its NDEATH.
fn bd_seq(metrics: &[Metric]) -> Option<u64> {
    let m = metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("bdSeq"))?;
    match m.value {
        Some(MetricValue::Long(n)) => Some(n),
        Some(MetricValue::Int(n)) => Some(n.into()),
        _ => None,
    }
}

/// NBIRTH, DBIRTH: remembers the aliases, then makes the records. A store that refuses
/// the aliases (full, see `transform.state_max_keys`) is logged, not an error: the
/// BIRTH's own records name their metrics anyway, and losing them would be worse.
fn births(
    msg: &Message,
    topic: &Topic,
    mut payload: Payload,
) -> Result<Vec<Record<'static>>, Error> {
    let datatypes = payload
        .metrics
        .iter()
        .map(wire_datatype)
        .collect::<Result<Vec<_>, _>>()?;
    let bd_seq = (topic.kind == Kind::NBirth)
        .then(|| bd_seq(&payload.metrics))
        .flatten();
    // What the store needs: metrics with both an alias and a name (the spec's BIRTH).
    let named: Vec<(u64, &str, DataType)> = payload
        .metrics
        .iter()
        .zip(&datatypes)
        .filter_map(|(m, t)| Some((m.alias?, m.name.as_deref()?, *t)))
        .map(|(alias, name, t)| (alias, name, t.unwrap_or(DataType::UNKNOWN)))
        .collect();
    let id = aliases::birth_id(msg.timestamp_ms(), payload.timestamp, payload.seq, bd_seq);
    if let Err(e) = aliases::remember(topic, id, bd_seq, &named) {
        log::error!(
            "{}: aliases not remembered, later DATA will not resolve them: {e}",
            msg.topic()
        );
    }
    let ctx = Context::new(topic, &payload);
    let metrics = std::mem::take(&mut payload.metrics);
    let records = metrics.into_iter().zip(datatypes).map(|(mut m, t)| {
        let name = m.name.take();
        record(&ctx, m, name.as_deref(), t)
    });
    records.collect()
}

/// Metrics with an alias that no current BIRTH named, in this instance since it started.
static UNKNOWN_ALIASES: AtomicU64 = AtomicU64::new(0);

/// NDATA, DDATA: names and datatypes of aliased metrics from the store; the datatype
/// on the wire, if any, wins over the BIRTH's.
fn data(topic: &Topic, mut payload: Payload) -> Result<Vec<Record<'static>>, Error> {
    let ctx = Context::new(topic, &payload);
    let mut resolver = aliases::Resolver::new(topic);
    let mut unknown = Vec::new();
    let mut records = Vec::with_capacity(payload.metrics.len());
    for mut m in std::mem::take(&mut payload.metrics) {
        let on_wire = wire_datatype(&m)?;
        let (name, datatype) = match (m.name.take(), m.alias) {
            (Some(name), _) => (Some(name), on_wire),
            (None, Some(alias)) => match resolver.resolve(alias) {
                Some(named) => (Some(named.name), on_wire.or(Some(named.datatype))),
                None => {
                    unknown.push(alias);
                    (None, on_wire)
                }
            },
            (None, None) => (None, on_wire),
        };
        records.push(record(&ctx, m, name.as_deref(), datatype)?);
    }
    if !unknown.is_empty() {
        report_unknown(topic, &unknown);
    }
    Ok(records)
}

/// One warning per message, with a running count: a missed BIRTH shows up in the log
/// once per message, not once per metric.
#[cold]
fn report_unknown(topic: &Topic, aliases: &[u64]) {
    let n = aliases.len() as u64;
    let total = UNKNOWN_ALIASES.fetch_add(n, Ordering::Relaxed) + n;
    let device = topic
        .device
        .map(|d| format!(" device {d}"))
        .unwrap_or_default();
    log::warn!(
        "{} {}/{}{device}: {n} metric aliases not named by a current BIRTH (first {}), \
         forwarded with metric null; {total} since this instance started",
        topic.kind.name(),
        topic.group,
        topic.edge,
        aliases[0]
    );
}

/// NDEATH, DDEATH: forgets the birth, and forwards the metrics (an NDEATH's bdSeq) or,
/// for a death without metrics, one record for the death itself.
fn deaths(topic: &Topic, mut payload: Payload) -> Result<Vec<Record<'static>>, Error> {
    let bd_seq = (topic.kind == Kind::NDeath)
        .then(|| bd_seq(&payload.metrics))
        .flatten();
    aliases::forget(topic, bd_seq);
    let ctx = Context::new(topic, &payload);
    if payload.metrics.is_empty() {
        return Ok(vec![record(&ctx, Metric::default(), None, None)?]);
    }
    let metrics = std::mem::take(&mut payload.metrics);
    let records = metrics.into_iter().map(|mut m| {
        let name = m.name.take();
        let datatype = wire_datatype(&m)?;
        record(&ctx, m, name.as_deref(), datatype)
    });
    records.collect()
}

#[cfg(test)]
mod tests;
