//! `/metrics`: the bridge's Prometheus series. The counters and gauges already exist as
//! atomics (each entry's [`EntryStats`](crate::observe::EntryStats), each bridge's
//! in-flight bound, each transform pool's counters); a [`Collector`] reads them when
//! Prometheus scrapes, so the per-message path pays nothing for being exported.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use crate::kafka::Summary;
use crate::observe::{
    Outcome, ReloadResult, Reloads, SchemaFailure, Snapshot, ENTRY_LABELS, PREFIX,
};
use crate::pipeline::{BridgeView, Entry, Running};
use crate::shape::Reason;
use crate::spool::Spool;
use crate::transform::{Cause, StateStore, TransformPool};

/// Reads the running pipeline at scrape time; while the plugin is stopped it reports
/// nothing (the series vanish rather than freeze).
pub struct PipelineCollector {
    running: Arc<Running>,
    descs: Vec<Desc>,
}

impl PipelineCollector {
    pub fn new(running: Arc<Running>) -> PipelineCollector {
        PipelineCollector {
            running,
            descs: descs_of(&Series::new().parts()),
        }
    }
}

impl Collector for PipelineCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(pipeline) = self.running.get() else {
            return Vec::new();
        };
        let series = Series::new();
        for bridge in pipeline.bridges() {
            series.fill_bridge(&bridge);
        }
        series.parts().iter().flat_map(|c| c.collect()).collect()
    }
}

/// What a collector made of `parts` describes to the registry.
fn descs_of(parts: &[&dyn Collector]) -> Vec<Desc> {
    parts.iter().flat_map(|c| c.desc()).cloned().collect()
}

/// The plugin's reloads: counted by result, and the last one's time and result (named as
/// Prometheus names its own: `..._last_reload_successful`, `..._timestamp_seconds`).
pub struct ReloadCollector {
    reloads: Arc<Reloads>,
    descs: Vec<Desc>,
}

impl ReloadCollector {
    pub fn new(reloads: Arc<Reloads>) -> ReloadCollector {
        ReloadCollector {
            reloads,
            descs: descs_of(&ReloadSeries::new().parts()),
        }
    }
}

impl Collector for ReloadCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let series = ReloadSeries::new();
        for result in ReloadResult::ALL {
            series
                .total
                .with_label_values(&[result.as_str()])
                .inc_by(self.reloads.count(result));
        }
        // Before any reload: the configuration in use loaded, at no reload time.
        let last = self.reloads.last();
        let applied = last
            .as_ref()
            .is_none_or(|l| l.result() == ReloadResult::Applied);
        series.successful.set(i64::from(applied));
        #[allow(clippy::cast_precision_loss)] // milliseconds since 1970 fit in 2^53
        series.at.set(last.map_or(0.0, |l| l.at_ms as f64 / 1000.0));
        series.parts().iter().flat_map(|c| c.collect()).collect()
    }
}

struct ReloadSeries {
    total: IntCounterVec,
    successful: IntGauge,
    at: Gauge,
}

impl ReloadSeries {
    fn new() -> ReloadSeries {
        let valid = "the series' names are constant and valid";
        ReloadSeries {
            total: counter(
                "reloads_total",
                "Configuration reloads, by result: applied, or refused (the old configuration kept running)",
                &["result"],
            ),
            successful: IntGauge::new(
                format!("{PREFIX}last_reload_successful"),
                "1 if the last reload was applied (or none happened yet), 0 if it was refused",
            )
            .expect(valid),
            at: Gauge::new(
                format!("{PREFIX}last_reload_timestamp_seconds"),
                "Unix time of the last reload, applied or refused; 0 before any",
            )
            .expect(valid),
        }
    }

    fn parts(&self) -> [&dyn Collector; 3] {
        [&self.total, &self.successful, &self.at]
    }
}

/// One scrape's series, built fresh each time from the atomics: a counter is set to
/// the atomic's value with `inc_by` on a new vector.
struct Series {
    outcomes: Vec<IntCounterVec>,
    matched: IntCounterVec,
    acl_denied: IntCounterVec,
    inflight: IntGaugeVec,
    inflight_bytes: IntGaugeVec,
    inflight_limit: IntGaugeVec,
    inflight_bytes_limit: IntGaugeVec,
    transform_failures: IntCounterVec,
    template_failures: IntCounterVec,
    schema_failures: IntCounterVec,
    schema_ready: IntGaugeVec,
    schema_id: IntGaugeVec,
    transform_instances: IntGaugeVec,
    transform_replaced: IntCounterVec,
    state: StateSeries,
    producer: ProducerSeries,
    spool: SpoolSeries,
}

/// Per entry with a transform, from its state store.
struct StateSeries {
    keys: IntGaugeVec,
    bytes: IntGaugeVec,
    max_keys: IntGaugeVec,
    max_bytes: IntGaugeVec,
    refused: IntCounterVec,
}

impl StateSeries {
    fn new() -> StateSeries {
        StateSeries {
            keys: gauge(
                "transform_state_keys",
                "Keys in the entry's state store (expired ones not yet swept included)",
                ENTRY_LABELS,
            ),
            bytes: gauge(
                "transform_state_bytes",
                "Bytes of keys and values in the entry's state store",
                ENTRY_LABELS,
            ),
            max_keys: gauge(
                "transform_state_max_keys",
                "transform.state_max_keys",
                ENTRY_LABELS,
            ),
            max_bytes: gauge(
                "transform_state_max_bytes",
                "transform.state_max_bytes",
                ENTRY_LABELS,
            ),
            refused: counter(
                "transform_state_puts_refused_total",
                "State puts the store refused, by reason",
                &["bridge", "entry", "reason"],
            ),
        }
    }

    fn parts(&self) -> [&dyn Collector; 5] {
        [
            &self.keys,
            &self.bytes,
            &self.max_keys,
            &self.max_bytes,
            &self.refused,
        ]
    }

    fn fill(&self, labels: &[&str; 2], store: &StateStore) {
        let (max_keys, max_bytes) = store.limits();
        self.keys
            .with_label_values(labels)
            .set(to_i64(store.keys()));
        self.bytes
            .with_label_values(labels)
            .set(to_i64(store.bytes()));
        self.max_keys
            .with_label_values(labels)
            .set(to_i64(max_keys));
        self.max_bytes
            .with_label_values(labels)
            .set(to_i64(max_bytes));
        for (reason, n) in store.refusals() {
            let l = &[labels[0], labels[1], reason.as_str()];
            self.refused.with_label_values(l).inc_by(n);
        }
    }
}

/// Per bridge in disk mode, from its spool.
struct SpoolSeries {
    bytes: IntGaugeVec,
    bytes_limit: IntGaugeVec,
    records: IntGaugeVec,
    oldest_age: GaugeVec,
    replayed: IntCounterVec,
    redelivered: IntCounterVec,
    kept: IntCounterVec,
    requeued: IntCounterVec,
    syncs: IntCounterVec,
    torn_bytes: IntCounterVec,
    corrupt_segments: IntCounterVec,
}

impl SpoolSeries {
    fn new() -> SpoolSeries {
        let b = &["bridge"];
        let age = Opts::new(
            format!("{PREFIX}spool_oldest_record_age_seconds"),
            "Age of the first record of the oldest spool segment still holding unsettled records",
        );
        SpoolSeries {
            bytes: gauge("spool_bytes", "Bytes of the spool's segment files on disk (allocated a segment at a time)", b),
            bytes_limit: gauge("spool_bytes_limit", "buffer.max_bytes", b),
            records: gauge("spool_records", "Spooled records Kafka has not settled", b),
            oldest_age: GaugeVec::new(age, b)
                .expect("the series' names and labels are constant and valid"),
            replayed: counter(
                "spool_replayed_total",
                "Records the previous run left in the spool, sent again at start",
                b,
            ),
            redelivered: counter(
                "spool_redelivered_total",
                "Replayed records that may already have been in Kafka (possible duplicates)",
                b,
            ),
            kept: counter(
                "spool_kept_total",
                "Records left in the spool for the next start: purged unsent at stop, or possibly delivered",
                b,
            ),
            requeued: counter(
                "spool_requeued_total",
                "Records a reload purged from the producers it replaced, sent again in the same run",
                b,
            ),
            syncs: counter(
                "spool_syncs_total",
                "fdatasync calls of the spool: on demand for remote.ack = \"synced\", else at least every buffer.flush_interval",
                b,
            ),
            torn_bytes: counter("spool_torn_bytes_total", "Bytes of a torn tail cut off at start", b),
            corrupt_segments: counter(
                "spool_corrupt_segments_total",
                "Segments moved aside as corrupt at start",
                b,
            ),
        }
    }

    fn parts(&self) -> [&dyn Collector; 11] {
        [
            &self.bytes,
            &self.bytes_limit,
            &self.records,
            &self.oldest_age,
            &self.replayed,
            &self.redelivered,
            &self.kept,
            &self.requeued,
            &self.syncs,
            &self.torn_bytes,
            &self.corrupt_segments,
        ]
    }

    fn fill(&self, bridge: &str, spool: &Spool) {
        let l = &[bridge];
        let (bytes, records, age) = spool.usage();
        self.bytes.with_label_values(l).set(to_i64_u64(bytes));
        self.bytes_limit
            .with_label_values(l)
            .set(to_i64_u64(spool.config().max_bytes));
        self.records.with_label_values(l).set(to_i64_u64(records));
        self.oldest_age
            .with_label_values(l)
            .set(age.map_or(0.0, |a| a.as_secs_f64()));
        let s = spool.stats();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        self.replayed.with_label_values(l).inc_by(load(&s.replayed));
        self.redelivered
            .with_label_values(l)
            .inc_by(load(&s.redelivered));
        self.kept.with_label_values(l).inc_by(load(&s.kept));
        self.requeued.with_label_values(l).inc_by(load(&s.requeued));
        self.syncs.with_label_values(l).inc_by(spool.syncs());
        self.torn_bytes
            .with_label_values(l)
            .inc_by(load(&s.torn_bytes));
        self.corrupt_segments
            .with_label_values(l)
            .inc_by(load(&s.corrupt_segments));
    }
}

/// Per producer (`client_id`), from librdkafka's latest statistics report.
struct ProducerSeries {
    queued_messages: IntGaugeVec,
    queued_bytes: IntGaugeVec,
    broker_up: IntGaugeVec,
    broker_rtt: GaugeVec,
    broker_retries: IntCounterVec,
    broker_errors: IntCounterVec,
}

const PRODUCER_LABELS: &[&str] = &["bridge", "client_id"];
const BROKER_LABELS: &[&str] = &["bridge", "client_id", "broker"];

impl ProducerSeries {
    fn new() -> ProducerSeries {
        let rtt = Opts::new(
            format!("{PREFIX}producer_broker_rtt_seconds"),
            "Average request round-trip time over librdkafka's last window",
        );
        ProducerSeries {
            queued_messages: gauge(
                "producer_queued_messages",
                "Messages in librdkafka's queues",
                PRODUCER_LABELS,
            ),
            queued_bytes: gauge(
                "producer_queued_bytes",
                "Bytes of the messages in librdkafka's queues",
                PRODUCER_LABELS,
            ),
            broker_up: gauge(
                "producer_broker_up",
                "1 when the producer's connection to the Kafka broker is up",
                BROKER_LABELS,
            ),
            broker_rtt: GaugeVec::new(rtt, BROKER_LABELS)
                .expect("the series' names and labels are constant and valid"),
            broker_retries: counter(
                "producer_broker_retries_total",
                "Requests retried to the Kafka broker",
                BROKER_LABELS,
            ),
            broker_errors: counter(
                "producer_broker_errors_total",
                "Transmit and receive errors and request timeouts with the Kafka broker",
                BROKER_LABELS,
            ),
        }
    }

    fn parts(&self) -> [&dyn Collector; 6] {
        [
            &self.queued_messages,
            &self.queued_bytes,
            &self.broker_up,
            &self.broker_rtt,
            &self.broker_retries,
            &self.broker_errors,
        ]
    }

    fn fill(&self, bridge: &str, s: &Summary) {
        let labels = &[bridge, s.client_id.as_str()];
        self.queued_messages
            .with_label_values(labels)
            .set(to_i64_u64(s.queued_messages));
        self.queued_bytes
            .with_label_values(labels)
            .set(to_i64_u64(s.queued_bytes));
        for b in &s.brokers {
            let l = &[bridge, s.client_id.as_str(), b.name.as_str()];
            self.broker_up.with_label_values(l).set(i64::from(b.up));
            self.broker_rtt.with_label_values(l).set(b.rtt_seconds);
            self.broker_retries.with_label_values(l).inc_by(b.retries);
            self.broker_errors.with_label_values(l).inc_by(b.errors);
        }
    }
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(format!("{PREFIX}{name}"), help), labels)
        .expect("the series' names and labels are constant and valid")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(format!("{PREFIX}{name}"), help), labels)
        .expect("the series' names and labels are constant and valid")
}

impl Series {
    fn new() -> Series {
        let outcomes = Outcome::ALL
            .iter()
            .map(|o| {
                let help = format!(
                    "Units that ended {}: see docs/operating.md, Accounting",
                    o.as_str()
                );
                counter(&format!("{}_total", o.as_str()), &help, ENTRY_LABELS)
            })
            .collect();
        let with_cause = &["bridge", "entry", "cause"];
        let with_state = &["bridge", "entry", "state"];
        Series {
            outcomes,
            matched: counter(
                "matched_total",
                "Publishes that matched the entry and passed the ACL",
                ENTRY_LABELS,
            ),
            acl_denied: counter(
                "acl_denied_total",
                "Publishes that matched but the broker's ACL denied",
                ENTRY_LABELS,
            ),
            inflight: gauge(
                "inflight_records",
                "Records awaiting Kafka's acknowledgement",
                &["bridge"],
            ),
            inflight_bytes: gauge(
                "inflight_bytes",
                "Key + payload bytes of the records in flight",
                &["bridge"],
            ),
            inflight_limit: gauge(
                "inflight_records_limit",
                "max_inflight_messages",
                &["bridge"],
            ),
            inflight_bytes_limit: gauge("inflight_bytes_limit", "max_inflight_bytes", &["bridge"]),
            transform_failures: counter(
                "transform_failures_total",
                "Failed transform calls by cause",
                with_cause,
            ),
            template_failures: counter(
                "template_failures_total",
                "Records with a template that had no value, by reason (whatever on_template_error made of them)",
                &["bridge", "entry", "reason"],
            ),
            schema_failures: counter(
                "schema_failures_total",
                "Records not encoded against their schema, by reason (whatever on_schema_error made of them)",
                &["bridge", "entry", "reason"],
            ),
            schema_ready: gauge(
                "schema_ready",
                "1 when the schema setting (remote.value_schema, remote.key_schema) is compiled, 0 while it is not available",
                &["bridge", "entry", "field"],
            ),
            schema_id: gauge(
                "schema_id",
                "The registry id the entry's records carry",
                &["bridge", "entry", "field"],
            ),
            transform_instances: gauge(
                "transform_instances",
                "Transform instances by state (idle, busy)",
                with_state,
            ),
            transform_replaced: counter(
                "transform_instances_replaced_total",
                "Instances discarded after a failure and created anew",
                ENTRY_LABELS,
            ),
            state: StateSeries::new(),
            producer: ProducerSeries::new(),
            spool: SpoolSeries::new(),
        }
    }

    fn parts(&self) -> Vec<&dyn Collector> {
        let mut parts: Vec<&dyn Collector> =
            self.outcomes.iter().map(|c| c as &dyn Collector).collect();
        parts.extend([
            &self.matched as &dyn Collector,
            &self.acl_denied,
            &self.inflight,
            &self.inflight_bytes,
            &self.inflight_limit,
            &self.inflight_bytes_limit,
            &self.transform_failures,
            &self.template_failures,
            &self.schema_failures,
            &self.schema_ready,
            &self.schema_id,
            &self.transform_instances,
            &self.transform_replaced,
        ]);
        parts.extend(self.state.parts());
        parts.extend(self.producer.parts());
        parts.extend(self.spool.parts());
        parts
    }

    fn fill_bridge(&self, b: &BridgeView<'_>) {
        let labels = &[b.name];
        let (max_messages, max_bytes) = b.inflight.limits();
        self.inflight
            .with_label_values(labels)
            .set(to_i64(b.inflight.messages()));
        self.inflight_bytes
            .with_label_values(labels)
            .set(to_i64(b.inflight.bytes()));
        self.inflight_limit
            .with_label_values(labels)
            .set(to_i64(max_messages));
        self.inflight_bytes_limit
            .with_label_values(labels)
            .set(to_i64(max_bytes));
        for e in b.entries {
            self.fill_entry(b.name, e);
        }
        for s in b.producer_statistics() {
            self.producer.fill(b.name, &s);
        }
        if let Some(spool) = b.spool {
            self.spool.fill(b.name, spool);
        }
    }

    fn fill_entry(&self, bridge: &str, e: &Entry) {
        let label = e.metrics_label();
        let labels = &[bridge, label.as_str()];
        let s = e.stats().snapshot();
        for (o, c) in Outcome::ALL.iter().zip(&self.outcomes) {
            c.with_label_values(labels).inc_by(s.get(*o));
        }
        self.matched.with_label_values(labels).inc_by(s.matched);
        self.acl_denied
            .with_label_values(labels)
            .inc_by(s.acl_denied);
        if e.renders_templates() {
            for reason in Reason::ALL {
                let l = &[labels[0], labels[1], reason.as_str()];
                self.template_failures
                    .with_label_values(l)
                    .inc_by(s.template_failures(reason));
            }
        }
        if !e.schemas().is_empty() {
            self.fill_schemas(labels, e, &s);
        }
        if let Some(pool) = e.transform() {
            self.fill_transform(labels, pool);
        }
    }

    fn fill_schemas(&self, labels: &[&str; 2], e: &Entry, s: &Snapshot) {
        for f in SchemaFailure::ALL {
            let l = &[labels[0], labels[1], f.as_str()];
            self.schema_failures
                .with_label_values(l)
                .inc_by(s.schema_failures(f));
        }
        for slot in e.schemas().slots() {
            let l = &[labels[0], labels[1], slot.field()];
            let encoder = slot.encoder();
            self.schema_ready
                .with_label_values(l)
                .set(i64::from(encoder.is_some()));
            if let Some(encoder) = encoder {
                self.schema_id
                    .with_label_values(l)
                    .set(i64::from(encoder.id()));
            }
        }
    }

    fn fill_transform(&self, labels: &[&str; 2], pool: &TransformPool) {
        for cause in Cause::ALL {
            let l = &[labels[0], labels[1], cause.as_str()];
            self.transform_failures
                .with_label_values(l)
                .inc_by(pool.failures(cause));
        }
        let idle = pool.idle();
        let busy = pool.instances().saturating_sub(idle);
        for (state, n) in [("idle", idle), ("busy", busy)] {
            let l = &[labels[0], labels[1], state];
            self.transform_instances.with_label_values(l).set(to_i64(n));
        }
        self.transform_replaced
            .with_label_values(labels)
            .inc_by(pool.replaced());
        self.state.fill(labels, pool.store());
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_i64_u64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
