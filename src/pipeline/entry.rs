//! One entry of a bridge: for each publish its filter matched, it renders the Kafka
//! topic and key, runs the transform if it has one (applying `on_error` when that
//! fails), and hands each record to its ledger.

use std::sync::Arc;

use rdkafka::message::Header;
use serde_json::{json, Value};

use super::dead_letter;
use super::handover::Handover;
use super::modules::metrics_label;
use super::publish::PublishInfo;
use crate::ack::AckWait;
use crate::config::{EntryConfig, OnError};
use crate::kafka::partitions::TrackedTopic;
use crate::kafka::{Ledger, Outgoing, Producers};
use crate::log_limited;
use crate::observe::{CallTimer, EntryStats, LogLimiter, Outcome};
use crate::route::{check_kafka_topic, skip_levels, RenderBuf, Vars};
use crate::spool::Target;
use crate::transform::{Failure, TransformPool};

/// The entry's `remote.topic` for one publish, or why it is not a valid Kafka topic.
type DefaultTopic<'a> = Result<&'a str, String>;

/// One entry of a bridge, ready to forward.
pub struct Entry {
    pub(super) index: usize,
    pub(super) bridge_name: Arc<str>,
    pub(super) config: EntryConfig,
    pub(super) ledger: Arc<Ledger>,
    pub(super) producers: Arc<Producers>,
    /// Its constant topic, tracked by its producers (with more than one).
    pub(super) topic: Option<TrackedTopic>,
    pub(super) transform: Option<Arc<TransformPool>>,
    /// Set when a reload gave the entry new producers: its records wait for the old
    /// ones to drain.
    pub(super) handover: Option<Arc<Handover>>,
    /// Its transform calls' durations (with `transform`).
    pub(super) transform_duration: Option<CallTimer>,
    pub(super) transform_log: LogLimiter,
}

impl Entry {
    /// Counts a matched publish that the broker's ACL denied.
    pub fn acl_denied(&self) {
        self.ledger.stats().acl_denied();
    }

    /// The entry's series label: its index and topic filter, as `0:sensors/#`.
    pub fn metrics_label(&self) -> String {
        metrics_label(self.index, &self.config)
    }

    /// Its counters, read at scrape time.
    pub fn stats(&self) -> &EntryStats {
        self.ledger.stats()
    }

    /// Its transform's instance pool, if it has a transform.
    pub fn transform(&self) -> Option<&TransformPool> {
        self.transform.as_deref()
    }

    /// Whether the publishes of this entry wait for Kafka's acknowledgement.
    pub fn acks_after_delivery(&self) -> bool {
        self.config.remote.ack_after_delivery
    }

    /// Whether a QoS 1/2 publish waits for this entry's records: for Kafka in ack mode,
    /// else for the spool's disk in disk mode.
    pub fn holds_the_ack(&self) -> bool {
        self.acks_after_delivery() || self.ledger.spool().is_some()
    }

    /// Where the spool's pump sends this entry's records.
    pub(super) fn target(&self) -> Target {
        Target {
            ledger: self.ledger.clone(),
            producers: self.producers.clone(),
            handover: self.handover.clone(),
        }
    }

    /// Forwards one publish. `wait` is set for a QoS 1/2 publish that the entry holds
    /// (see [`Entry::holds_the_ack`]).
    pub async fn forward(&self, p: &PublishInfo<'_>, wait: Option<&mut AckWait>) {
        self.ledger.stats().matched();
        let remote = &self.config.remote;
        let local_topic = skip_levels(p.topic(), remote.skip_levels);
        let mut key_buf = RenderBuf::new();
        let key = remote.key.as_ref().map(|k| {
            let vars = Vars {
                local_topic,
                client_id: p.client_id(),
                username: p.from.username.as_deref().unwrap_or_default(),
            };
            k.render(&vars, &mut key_buf) as &[u8]
        });
        let mut topic_buf = RenderBuf::new();
        // A rendered topic may not be a valid Kafka name; that only matters for the
        // records that end up using it (a module may pick its own topic).
        let topic = match remote.topic.constant() {
            Some(t) => Ok(t),
            None => {
                let t = std::str::from_utf8(remote.topic.render(local_topic, &mut topic_buf))
                    .unwrap_or_default();
                check_kafka_topic(t).map(|()| t)
            }
        };
        match &self.transform {
            None => self.send_untransformed(p, topic, key, wait).await,
            Some(pool) => self.forward_transformed(pool, p, topic, key, wait).await,
        }
    }

    /// Sends the record an entry without a transform sends.
    async fn send_untransformed(
        &self,
        p: &PublishInfo<'_>,
        topic: DefaultTopic<'_>,
        key: Option<&[u8]>,
        mut wait: Option<&mut AckWait>,
    ) {
        let Some(topic) = self.resolve(topic, &mut wait) else {
            return;
        };
        let record = Outgoing {
            topic,
            key,
            payload: Some(&p.publish.payload),
            partition: self.config.remote.partition,
            timestamp: p.timestamp_ms,
            received_ms: p.timestamp_ms,
            headers: p.standard_headers(0),
            dead_letter: false,
        };
        self.send(record, wait).await;
    }

    async fn forward_transformed(
        &self,
        pool: &TransformPool,
        p: &PublishInfo<'_>,
        topic: DefaultTopic<'_>,
        key: Option<&[u8]>,
        mut wait: Option<&mut AckWait>,
    ) {
        let input = p.input_fields();
        let result = match &self.transform_duration {
            Some(timer) => timer.time(pool.run(&input)).await,
            None => pool.run(&input).await,
        };
        let output = match result {
            Ok(output) => output,
            Err(failure) => return self.transform_failed(p, topic, key, failure, wait).await,
        };
        if output.is_empty() {
            return self.ledger.count(Outcome::Filtered);
        }
        for r in output.records() {
            // The pool checked topics and header names to be valid UTF-8.
            let topic = r.topic.map_or(topic.clone(), |t| {
                Ok(std::str::from_utf8(t).unwrap_or_default())
            });
            let Some(topic) = self.resolve(topic, &mut wait) else {
                continue;
            };
            let headers = r.headers.iter().flatten().fold(
                p.standard_headers(r.headers.len()),
                |h, (name, value)| {
                    let key = std::str::from_utf8(name).unwrap_or_default();
                    h.insert(Header { key, value })
                },
            );
            let record = Outgoing {
                topic,
                key: r.key.or(key),
                payload: r.payload,
                partition: r.partition.or(self.config.remote.partition),
                timestamp: r.timestamp.unwrap_or(p.timestamp_ms),
                received_ms: p.timestamp_ms,
                headers,
                dead_letter: false,
            };
            self.send(record, wait.as_deref_mut()).await;
        }
    }

    /// Applies `transform.on_error` to a message whose transform failed.
    async fn transform_failed(
        &self,
        p: &PublishInfo<'_>,
        topic: DefaultTopic<'_>,
        key: Option<&[u8]>,
        failure: Failure,
        mut wait: Option<&mut AckWait>,
    ) {
        let settings = self.config.transform.as_ref();
        let on_error = settings.map_or(OnError::Drop, |t| t.on_error);
        log_limited!(
            self.transform_log,
            log::Level::Warn,
            "{}: transform failed on topic {} ({failure}); on_error = {}",
            self.ledger.label(),
            p.topic(),
            on_error.as_str()
        );
        match on_error {
            OnError::Drop => self.ledger.count(Outcome::TransformError),
            OnError::Forward => self.send_untransformed(p, topic, key, wait).await,
            OnError::DeadLetter => {
                let dlq = settings.and_then(|t| t.dead_letter_topic.as_ref());
                let Some(topic) = self.resolve(dlq.map_or(topic, |t| Ok(t.as_str())), &mut wait)
                else {
                    return;
                };
                let record = Outgoing {
                    topic,
                    key,
                    payload: Some(&p.publish.payload),
                    partition: None,
                    timestamp: p.timestamp_ms,
                    received_ms: p.timestamp_ms,
                    headers: dead_letter::headers(p, &self.bridge_name, self.index, &failure),
                    dead_letter: true,
                };
                self.send(record, wait).await;
            }
        }
    }

    /// The topic a record goes to; when the rendered default is not a valid Kafka
    /// name, the record is counted as lost instead.
    fn resolve<'t>(
        &self,
        topic: DefaultTopic<'t>,
        wait: &mut Option<&mut AckWait>,
    ) -> Option<&'t str> {
        match topic {
            Ok(t) => Some(t),
            Err(e) => {
                let why = format_args!("cannot forward: {e}");
                self.ledger
                    .lose(Outcome::DeliveryFailed, wait.as_deref_mut(), why);
                None
            }
        }
    }

    async fn send(&self, record: Outgoing<'_>, wait: Option<&mut AckWait>) {
        let timeout = self.config.remote.queue_timeout;
        if let Some(spool) = self.ledger.spool() {
            let ack_mode = self.acks_after_delivery();
            return self
                .ledger
                .spool_record(spool, self.index, record, timeout, wait, ack_mode)
                .await;
        }
        if let Some(handover) = &self.handover {
            handover.wait().await;
        }
        let producers = (&*self.producers, self.topic.as_ref());
        self.ledger.send(producers, record, timeout, wait).await;
    }

    pub(super) fn to_json(&self) -> Value {
        let r = &self.config.remote;
        json!({
            "index": self.index,
            "topic_filter": self.config.local.topic_filter.as_str(),
            "remote_topic": r.topic.as_str(),
            "remote_key": r.key.as_ref().map(|k| k.as_str()),
            "ack_after_delivery": r.ack_after_delivery,
            "client_ids": self.producers.client_ids(),
            "partitions": self.topic.as_ref().map(TrackedTopic::to_json),
            "stats": self.ledger.stats().snapshot().to_json(),
            "transform": self.transform.as_deref().map(TransformPool::to_json),
        })
    }
}
