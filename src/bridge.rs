//! The running bridges. For each publish, every entry whose filter matches builds its
//! records, directly or through its transform, and hands them to Kafka without waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use serde_json::{json, Value};
use smallvec::SmallVec;

use crate::ack::{AckFailure, AckWait, Acks};
use crate::config::{BridgeConfig, EntryConfig, OnError, PluginConfig};
use crate::inflight::Inflight;
use crate::log_limited;
use crate::producer::{EntryShared, Producers, Record, Tag};
use crate::publish::PublishInfo;
use crate::stats::{EntryStats, LogLimiter, Outcome, Snapshot};
use crate::topic::{check_kafka_topic, skip_levels, RenderBuf, Vars};
use crate::transform::{Cause, Failure, TransformEngine, TransformModule, TransformPool};

/// Compiled modules by `(bridge index, entry index)`, and the engine that runs them.
#[derive(Default, Clone)]
pub struct Modules {
    pub engine: Option<Arc<TransformEngine>>,
    pub by_entry: HashMap<(usize, usize), Arc<TransformModule>>,
}

/// All enabled bridges of a started plugin.
pub struct Bridges {
    bridges: Vec<Bridge>,
    acks: Arc<Acks>,
    /// Keeps the epoch ticker running as long as instances may run.
    _engine: Option<Arc<TransformEngine>>,
}

struct Bridge {
    index: usize,
    config: BridgeConfig,
    inflight: Arc<Inflight>,
    entries: Vec<Entry>,
}

/// One entry of a bridge, ready to forward.
pub struct Entry {
    index: usize,
    bridge_name: String,
    config: EntryConfig,
    shared: Arc<EntryShared>,
    producers: Producers,
    transform: Option<TransformPool>,
    transform_log: LogLimiter,
}

/// The entry's `remote.topic` for one publish, or why it is not a valid Kafka topic.
type DefaultTopic<'a> = Result<&'a str, &'a str>;

/// A record ready to be handed to librdkafka.
struct Outgoing<'a> {
    topic: DefaultTopic<'a>,
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    partition: Option<i32>,
    timestamp: i64,
    headers: OwnedHeaders,
    dead_letter: bool,
}

impl Bridges {
    /// Creates producers and instance pools for every enabled bridge.
    pub async fn start(
        config: &PluginConfig,
        node_id: u64,
        modules: &Modules,
        acks: Arc<Acks>,
    ) -> Result<Bridges, String> {
        let mut bridges = Vec::new();
        for (bi, b) in config.enabled_bridges() {
            let inflight = Arc::new(Inflight::new(
                b.max_inflight_messages,
                usize::try_from(b.max_inflight_bytes).unwrap_or(usize::MAX),
            ));
            let mut entries = Vec::with_capacity(b.entries.len());
            for (ei, e) in b.entries.iter().enumerate() {
                let label = format!("bridge \"{}\" entry {ei}", b.name);
                let shared = Arc::new(EntryShared {
                    label: label.clone(),
                    stats: EntryStats::default(),
                    inflight: inflight.clone(),
                    acks: acks.clone(),
                    delivery_log: LogLimiter::default(),
                    client_log: LogLimiter::default(),
                });
                let producers = Producers::create(b, node_id, ei, &shared)
                    .map_err(|m| format!("{label}: {m}"))?;
                let transform = match (&e.transform, modules.by_entry.get(&(bi, ei))) {
                    (Some(t), Some(module)) => Some(
                        TransformPool::new(module.clone(), t.instances)
                            .await
                            .map_err(|f| {
                                format!(
                                    "{label}: module {} could not be instantiated: {f}",
                                    module.path().display()
                                )
                            })?,
                    ),
                    _ => None,
                };
                entries.push(Entry {
                    index: ei,
                    bridge_name: b.name.clone(),
                    config: e.clone(),
                    shared,
                    producers,
                    transform,
                    transform_log: LogLimiter::default(),
                });
            }
            bridges.push(Bridge {
                index: bi,
                config: b.clone(),
                inflight,
                entries,
            });
        }
        Ok(Bridges {
            bridges,
            acks,
            _engine: modules.engine.clone(),
        })
    }

    /// The entries whose topic filter matches, in configuration order.
    #[inline]
    pub fn matching(&self, topic: &str) -> SmallVec<[&Entry; 4]> {
        self.bridges
            .iter()
            .flat_map(|b| &b.entries)
            .filter(|e| e.config.local.topic_filter.matches(topic))
            .collect()
    }

    pub fn acks(&self) -> &Arc<Acks> {
        &self.acks
    }

    /// Flushes every producer (up to each bridge's `shutdown_timeout`) and purges what
    /// is left, so that every record ends counted. Blocks; run it off the async threads.
    pub fn shut_down(&self) {
        for b in &self.bridges {
            for e in &b.entries {
                e.producers.shut_down(b.config.shutdown_timeout);
                let s = &e.shared.stats;
                log::info!(
                    "{}: stopped; delivered {}, delivery_failed {}, dead_lettered {}, dropped_buffer_full {}, in flight {}",
                    e.shared.label,
                    s.get(Outcome::Delivered),
                    s.get(Outcome::DeliveryFailed),
                    s.get(Outcome::DeadLettered),
                    s.get(Outcome::DroppedBufferFull),
                    s.in_flight()
                );
            }
        }
        self.acks.fail_all("the bridge stopped");
    }

    pub fn to_json(&self) -> Value {
        Value::Array(self.bridges.iter().map(Bridge::to_json).collect())
    }
}

impl Bridge {
    fn to_json(&self) -> Value {
        json!({
            "name": self.config.name,
            "index": self.index,
            "servers": self.config.servers(),
            "inflight": self.inflight.to_json(),
            "stats": self.entries.iter().map(|e| e.shared.stats.snapshot()).fold(Snapshot::default(), |a, b| a + b).to_json(),
            "entries": self.entries.iter().map(Entry::to_json).collect::<Vec<_>>(),
        })
    }
}

impl Entry {
    pub fn stats(&self) -> &EntryStats {
        &self.shared.stats
    }

    fn to_json(&self) -> Value {
        let r = &self.config.remote;
        json!({
            "index": self.index,
            "topic_filter": self.config.local.topic_filter.as_str(),
            "remote_topic": r.topic.as_str(),
            "remote_key": r.key.as_ref().map(|k| k.as_str()),
            "ack_after_delivery": r.ack_after_delivery,
            "client_ids": self.producers.client_ids(),
            "stats": self.shared.stats.snapshot().to_json(),
            "transform": self.transform.as_ref().map(TransformPool::to_json),
        })
    }

    /// Forwards one publish. `ack` is set for QoS 1/2 publishes; records of ack-mode
    /// entries are then tracked in `wait`.
    pub async fn forward(&self, p: &PublishInfo<'_>, ack: bool, wait: &mut AckWait) {
        self.shared.stats.matched();
        let remote = &self.config.remote;
        let ack = ack && remote.ack_after_delivery;
        let local_topic = skip_levels(p.topic(), remote.skip_levels);
        let mut key_buf = RenderBuf::new();
        let key = remote.key.as_ref().map(|k| {
            let username = p.from.username.as_deref().unwrap_or_default();
            k.render(
                &Vars {
                    local_topic,
                    client_id: p.client_id(),
                    username,
                },
                &mut key_buf,
            ) as &[u8]
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
        let topic = topic.as_deref().map_err(String::as_str);
        match &self.transform {
            None => {
                self.produce(self.untransformed(p, topic, key), ack, wait)
                    .await
            }
            Some(pool) => {
                self.forward_transformed(pool, p, topic, key, ack, wait)
                    .await
            }
        }
    }

    /// The record an entry without a transform sends.
    fn untransformed<'a>(
        &self,
        p: &'a PublishInfo<'_>,
        topic: DefaultTopic<'a>,
        key: Option<&'a [u8]>,
    ) -> Outgoing<'a> {
        Outgoing {
            topic,
            key,
            payload: Some(&p.publish.payload),
            partition: self.config.remote.partition,
            timestamp: p.timestamp_ms,
            headers: p.standard_headers(0),
            dead_letter: false,
        }
    }

    async fn forward_transformed(
        &self,
        pool: &TransformPool,
        p: &PublishInfo<'_>,
        topic: DefaultTopic<'_>,
        key: Option<&[u8]>,
        ack: bool,
        wait: &mut AckWait,
    ) {
        let mut instance = match pool.checkout().await {
            Ok(i) => i,
            Err(f) => return self.transform_failed(p, topic, key, f, ack, wait).await,
        };
        let records = match instance.transform(&p.input_fields()).await {
            Ok(r) => r,
            Err(f) => {
                drop(instance);
                pool.replenish().await;
                return self.transform_failed(p, topic, key, f, ack, wait).await;
            }
        };
        if records.is_empty() {
            self.shared.stats.outcome(Outcome::Filtered);
            return;
        }
        // Check every record before sending any, so that a bad output sends nothing.
        let mut checked: SmallVec<[abi::output::Record<'_>; 4]> =
            SmallVec::with_capacity(records.len());
        let mut bad = None;
        for r in records.iter() {
            match r
                .map_err(|e| e.to_string())
                .and_then(|r| check_record(&r).map(|()| r))
            {
                Ok(r) => checked.push(r),
                Err(msg) => {
                    bad = Some(Failure::new(Cause::BadOutput, msg));
                    break;
                }
            }
        }
        if let Some(f) = bad {
            drop(checked);
            instance.reject_output(&f);
            drop(instance);
            pool.replenish().await;
            return self.transform_failed(p, topic, key, f, ack, wait).await;
        }
        for r in checked {
            let mut headers = p.standard_headers(r.headers.len());
            for (name, value) in r.headers.iter().flatten() {
                // Names were checked to be UTF-8 by `check_record`.
                headers = headers.insert(Header {
                    key: std::str::from_utf8(name).unwrap_or_default(),
                    value,
                });
            }
            let out = Outgoing {
                // Record topics were checked by `check_record`.
                topic: r
                    .topic
                    .map_or(topic, |t| Ok(std::str::from_utf8(t).unwrap_or_default())),
                key: r.key.or(key),
                payload: r.payload,
                partition: r.partition.or(self.config.remote.partition),
                timestamp: r.timestamp.unwrap_or(p.timestamp_ms),
                headers,
                dead_letter: false,
            };
            self.produce(out, ack, wait).await;
        }
    }

    /// Applies `transform.on_error` to a message whose transform failed.
    async fn transform_failed(
        &self,
        p: &PublishInfo<'_>,
        topic: DefaultTopic<'_>,
        key: Option<&[u8]>,
        failure: Failure,
        ack: bool,
        wait: &mut AckWait,
    ) {
        let on_error = self
            .config
            .transform
            .as_ref()
            .map_or(OnError::Drop, |t| t.on_error);
        log_limited!(
            self.transform_log,
            log::Level::Warn,
            "{}: transform failed on topic {} ({failure}); on_error = {}",
            self.shared.label,
            p.topic(),
            on_error.as_str()
        );
        match on_error {
            OnError::Drop => self.shared.stats.outcome(Outcome::TransformError),
            OnError::Forward => {
                self.produce(self.untransformed(p, topic, key), ack, wait)
                    .await
            }
            OnError::DeadLetter => {
                let dlq = self
                    .config
                    .transform
                    .as_ref()
                    .and_then(|t| t.dead_letter_topic.as_ref());
                let mut index = itoa::Buffer::new();
                let message = truncate(&failure.message, 1024);
                let headers = p
                    .standard_headers(4)
                    .insert(Header {
                        key: "error_bridge",
                        value: Some(self.bridge_name.as_str()),
                    })
                    .insert(Header {
                        key: "error_entry",
                        value: Some(index.format(self.index)),
                    })
                    .insert(Header {
                        key: "error_cause",
                        value: Some(failure.cause.as_str()),
                    })
                    .insert(Header {
                        key: "error_message",
                        value: Some(message),
                    });
                let out = Outgoing {
                    topic: dlq.map_or(topic, |t| Ok(t.as_str())),
                    key,
                    payload: Some(&p.publish.payload),
                    partition: None,
                    timestamp: p.timestamp_ms,
                    headers,
                    dead_letter: true,
                };
                self.produce(out, ack, wait).await;
            }
        }
    }

    /// Takes room in the in-flight buffer and hands the record to librdkafka. Every
    /// path ends in a counted outcome (now, or in the delivery report).
    async fn produce(&self, out: Outgoing<'_>, ack: bool, wait: &mut AckWait) {
        let shared = &self.shared;
        let topic = match out.topic {
            Ok(t) => t,
            Err(e) => {
                shared.lost(Outcome::DeliveryFailed, format_args!("cannot forward: {e}"));
                if ack {
                    wait.fail(AckFailure::Delivery(e.to_owned()));
                }
                return;
            }
        };
        let bytes = out.payload.map_or(0, <[u8]>::len) + out.key.map_or(0, <[u8]>::len);
        let timeout = self.config.remote.queue_timeout;
        let has_room = shared.inflight.try_acquire(bytes)
            // Ack mode refuses the publish at once rather than holding the client.
            || (!ack && shared.inflight.acquire_within(bytes, timeout).await);
        if !has_room {
            let (messages, bytes) = (shared.inflight.messages(), shared.inflight.bytes());
            shared.lost(
                Outcome::DroppedBufferFull,
                format_args!("in-flight buffer full ({messages} records, {bytes} bytes), record for {topic} dropped"),
            );
            if ack {
                wait.fail(AckFailure::BufferFull);
            }
            return;
        }
        let ack_slot = ack.then(|| {
            let (slot, rx) = shared.acks.register();
            wait.track(rx);
            slot
        });
        let tag = Tag {
            dead_letter: out.dead_letter,
            ack_slot,
        }
        .encode();
        let mut record = Record::with_opaque_to(topic, tag)
            .timestamp(out.timestamp)
            .headers(out.headers);
        record.key = out.key;
        record.payload = out.payload;
        record.partition = out.partition;
        let mut deadline = None;
        loop {
            match self.producers.send(record) {
                Ok(()) => {
                    shared.stats.produced();
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // librdkafka's queue is sized above the bridge's bound; this only
                    // happens when [bridges.properties] made it smaller.
                    let until =
                        *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
                    if tokio::time::Instant::now() >= until {
                        shared.inflight.release(bytes);
                        shared.lost(
                            Outcome::DroppedBufferFull,
                            format_args!("librdkafka queue full, record for {topic} dropped"),
                        );
                        self.settle_failed_ack(ack_slot, "librdkafka queue full");
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    record = r;
                }
                Err((e, _)) => {
                    shared.inflight.release(bytes);
                    shared.lost(
                        Outcome::DeliveryFailed,
                        format_args!("cannot produce to {topic}: {e}"),
                    );
                    self.settle_failed_ack(ack_slot, &e.to_string());
                    return;
                }
            }
        }
    }

    fn settle_failed_ack(&self, slot: Option<usize>, reason: &str) {
        if let Some(slot) = slot {
            self.shared.acks.complete(slot, Err(reason.to_owned()));
        }
    }
}

/// Checks what the host relies on beyond the wire format: topic names, partitions and
/// header names.
fn check_record(r: &abi::output::Record<'_>) -> Result<(), String> {
    if let Some(t) = r.topic {
        let t = std::str::from_utf8(t).map_err(|_| "record topic is not UTF-8".to_owned())?;
        check_kafka_topic(t).map_err(|e| format!("record topic: {e}"))?;
    }
    if let Some(part) = r.partition {
        if part < 0 {
            return Err(format!("record partition {part} is negative"));
        }
    }
    for h in r.headers.iter() {
        let (name, _) = h.map_err(|e| e.to_string())?;
        std::str::from_utf8(name).map_err(|_| "a header name is not UTF-8".to_owned())?;
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
