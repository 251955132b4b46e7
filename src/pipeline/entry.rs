//! One entry of a bridge: for each publish its filter matched, it renders the Kafka
//! topic and key, runs the transform if it has one (applying `on_error` when that
//! fails), and submits each record to its ledger.

use std::sync::Arc;

use serde_json::{json, Value};

use super::dead_letter;
use super::publish::PublishInfo;
use crate::config::{EntryConfig, OnError};
use crate::delivery::{AckWait, Ledger, Outlet, Policy, Target};
use crate::kafka::partitions::TrackedTopic;
use crate::kafka::Producers;
use crate::log_limited;
use crate::observe::{CallTimer, EntryStats, LogLimiter, Outcome};
use crate::record::Record;
use crate::route::{check_kafka_topic, skip_levels, RenderBuf, Vars};
use crate::transform::{Failure, TransformPool};

/// The entry's `remote.topic` for one publish, or why it is not a valid Kafka topic.
type DefaultTopic<'a> = Result<&'a str, String>;

/// One entry of a bridge, ready to forward.
pub struct Entry {
    pub(super) index: usize,
    pub(super) bridge_name: Arc<str>,
    pub(super) config: EntryConfig,
    pub(super) ledger: Arc<Ledger>,
    pub(super) outlet: Outlet,
    /// Its `remote.ack` level and `remote.queue_timeout`.
    pub(super) policy: Policy,
    pub(super) transform: Option<Arc<TransformPool>>,
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
        self.config.metrics_label(self.index)
    }

    /// Its counters, read at scrape time.
    pub fn stats(&self) -> &EntryStats {
        self.ledger.stats()
    }

    /// Its transform's instance pool, if it has a transform.
    pub fn transform(&self) -> Option<&TransformPool> {
        self.transform.as_deref()
    }

    pub(super) fn producers(&self) -> &Arc<Producers> {
        &self.outlet.producers
    }

    /// Whether a QoS 1/2 publish waits for this entry's records: its level is above
    /// `"received"` (which acknowledges at once).
    pub fn holds_the_ack(&self) -> bool {
        self.policy.level > crate::config::AckLevel::Received
    }

    /// Where the spool's pump sends this entry's records.
    pub(super) fn target(&self) -> Target {
        Target {
            ledger: self.ledger.clone(),
            outlet: self.outlet.clone(),
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
        let record = Record {
            partition: self.config.remote.partition,
            ..p.record(topic, key)
        };
        self.submit(&record, wait).await;
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
            let mut record = Record {
                payload: r.payload,
                partition: r.partition.or(self.config.remote.partition),
                timestamp: r.timestamp.unwrap_or(p.timestamp_ms),
                ..p.record(topic, r.key.or(key))
            };
            let names = r.headers.iter().flatten();
            record.headers.extend(
                names.map(|(name, value)| (std::str::from_utf8(name).unwrap_or_default(), value)),
            );
            self.submit(&record, wait.as_deref_mut()).await;
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
                let index = itoa::Buffer::new().format(self.index).to_owned();
                let mut record = Record {
                    dead_letter: true,
                    ..p.record(topic, key)
                };
                dead_letter::add_headers(&mut record.headers, &self.bridge_name, &index, &failure);
                self.submit(&record, wait).await;
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

    async fn submit(&self, record: &Record<'_>, wait: Option<&mut AckWait>) {
        self.ledger
            .submit(&self.outlet, self.index, record, self.policy, wait)
            .await;
    }

    pub(super) fn to_json(&self) -> Value {
        let r = &self.config.remote;
        json!({
            "index": self.index,
            "topic_filter": self.config.local.topic_filter.as_str(),
            "remote_topic": r.topic.as_str(),
            "remote_key": r.key.as_ref().map(|k| k.as_str()),
            "ack": self.policy.level.as_str(),
            "client_ids": self.outlet.producers.client_ids(),
            "partitions": self.outlet.topic.as_ref().map(TrackedTopic::to_json),
            "stats": self.ledger.stats().snapshot().to_json(),
            "transform": self.transform.as_deref().map(TransformPool::to_json),
        })
    }
}
