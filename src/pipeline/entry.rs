//! One entry of a bridge: for each publish its filter matched, it renders the entry's
//! templates, runs the transform if it has one (applying `on_error` when that fails),
//! encodes each record against its schemas if it has any, and submits it to its ledger
//! (applying `on_template_error` to a record whose templates failed, and
//! `on_schema_error` to one that could not be encoded).

use std::sync::Arc;

use serde_json::{json, Value};

use super::dead_letter::{self, Cause};
use super::encoded::{encoded, NotEncoded};
use super::publish::PublishInfo;
use super::shaped::{build, Built};
use crate::config::{EntryConfig, OnError};
use crate::delivery::{AckWait, Ledger, Outlet, Policy, Target};
use crate::kafka::partitions::TrackedTopic;
use crate::kafka::Producers;
use crate::log_limited;
use crate::observe::{CallTimer, EntryStats, LogLimiter, Outcome};
use crate::record::Record;
use crate::route::KafkaTopic;
use crate::schema::{EntrySchemas, SchemaSlot};
use crate::shape::{Shaped, Templates};
use crate::transform::{Failure, TransformPool};

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
    /// Its `remote.value_schema` and `remote.key_schema`.
    pub(super) schemas: EntrySchemas,
    pub(super) transform_log: LogLimiter,
    pub(super) template_log: LogLimiter,
    pub(super) schema_log: LogLimiter,
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

    /// Its schema settings, for `/metrics` and `/health`.
    pub fn schemas(&self) -> &EntrySchemas {
        &self.schemas
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
        let mut shaped = Shaped::new(self.templates(), p.message());
        match &self.transform {
            None => self.send_untransformed(p, &mut shaped, wait).await,
            Some(pool) => self.forward_transformed(pool, p, &mut shaped, wait).await,
        }
    }

    fn templates(&self) -> Templates<'_> {
        let r = &self.config.remote;
        Templates {
            topic: &r.topic,
            key: r.key.as_ref(),
            headers: &r.headers,
            timestamp: r.timestamp.as_ref(),
            payload: r.payload.as_ref(),
            skip_levels: r.skip_levels,
        }
    }

    /// Whether any part of its records comes from a template that may fail.
    pub fn renders_templates(&self) -> bool {
        let r = &self.config.remote;
        r.topic.constant().is_none()
            || r.key.is_some()
            || !r.headers.is_empty()
            || r.timestamp.is_some()
            || r.payload.is_some()
    }

    /// Sends the record an entry without a transform sends.
    async fn send_untransformed(
        &self,
        p: &PublishInfo<'_>,
        shaped: &mut Shaped<'_>,
        wait: Option<&mut AckWait>,
    ) {
        shaped.render_payload();
        let built = build(p, shaped, None, self.config.remote.partition);
        self.send_shaped(p, shaped, built, wait).await;
    }

    async fn forward_transformed(
        &self,
        pool: &TransformPool,
        p: &PublishInfo<'_>,
        shaped: &mut Shaped<'_>,
        mut wait: Option<&mut AckWait>,
    ) {
        let input = p.input_fields();
        let result = match &self.transform_duration {
            Some(timer) => timer.time(pool.run(&input)).await,
            None => pool.run(&input).await,
        };
        let output = match result {
            Ok(output) => output,
            Err(failure) => return self.transform_failed(p, shaped, failure, wait).await,
        };
        if output.is_empty() {
            return self.ledger.count(Outcome::Filtered);
        }
        for r in output.records() {
            let built = build(p, shaped, Some(&r), self.config.remote.partition);
            self.send_shaped(p, shaped, built, wait.as_deref_mut())
                .await;
        }
    }

    /// Sends a built record, or applies `remote.on_template_error` to one whose
    /// templates failed.
    async fn send_shaped(
        &self,
        p: &PublishInfo<'_>,
        shaped: &Shaped<'_>,
        built: Built<'_>,
        wait: Option<&mut AckWait>,
    ) {
        let failure = match &built {
            Ok((record, None)) => return self.send(p, shaped, record, wait).await,
            Ok((_, Some(failure))) | Err(failure) => *failure,
        };
        let on_error = self.config.remote.on_template_error;
        self.ledger.stats().template_failed(failure.reason);
        log_limited!(
            self.template_log,
            log::Level::Warn,
            "{}: on topic {}, {failure}; on_template_error = {}",
            self.ledger.label(),
            p.topic(),
            on_error.as_str()
        );
        match (on_error, &built) {
            (OnError::Forward, Ok((record, _))) => self.send(p, shaped, record, wait).await,
            (OnError::Drop | OnError::Forward, _) => self.ledger.count(Outcome::TemplateError),
            (OnError::DeadLetter, _) => {
                let field = failure.field.to_string();
                let cause = Cause {
                    name: failure.reason.as_str(),
                    message: failure.to_string(),
                    field: Some(&field),
                    template: Some(failure.template),
                };
                let topic = self.config.remote.dead_letter_topic.as_ref();
                self.dead_letter(p, shaped, topic, &cause, wait).await;
            }
        }
    }

    /// Submits a record, its value and key encoded when the entry has schemas, or
    /// applies `remote.on_schema_error` to one that could not be encoded.
    async fn send(
        &self,
        p: &PublishInfo<'_>,
        shaped: &Shaped<'_>,
        record: &Record<'_>,
        wait: Option<&mut AckWait>,
    ) {
        if self.schemas.is_empty() {
            return self.submit(record, wait).await;
        }
        let (mut value, mut key) = (Vec::new(), Vec::new());
        match encoded(&self.schemas, record, &mut value, &mut key) {
            Ok(record) => self.submit(&record, wait).await,
            Err(not) => self.not_encoded(p, shaped, not, wait).await,
        };
    }

    async fn not_encoded(
        &self,
        p: &PublishInfo<'_>,
        shaped: &Shaped<'_>,
        not: NotEncoded,
        wait: Option<&mut AckWait>,
    ) {
        let on_error = self.config.remote.on_schema_error;
        self.ledger.stats().schema_failed(not.failure);
        log_limited!(
            self.schema_log,
            log::Level::Warn,
            "{}: on topic {}, {}: {}; on_schema_error = {}",
            self.ledger.label(),
            p.topic(),
            not.field,
            not.message,
            on_error.as_str()
        );
        match on_error {
            OnError::DeadLetter => {
                let cause = Cause {
                    name: not.failure.as_str(),
                    message: not.message,
                    field: Some(not.field),
                    template: None,
                };
                let topic = self.config.remote.dead_letter_topic.as_ref();
                self.dead_letter(p, shaped, topic, &cause, wait).await;
            }
            // "forward" is refused at load: a governed topic never gets an unencoded record.
            OnError::Drop | OnError::Forward => self.ledger.count(Outcome::SchemaError),
        }
    }

    /// Applies `transform.on_error` to a message whose transform failed.
    async fn transform_failed(
        &self,
        p: &PublishInfo<'_>,
        shaped: &mut Shaped<'_>,
        failure: Failure,
        wait: Option<&mut AckWait>,
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
            OnError::Forward => self.send_untransformed(p, shaped, wait).await,
            OnError::DeadLetter => {
                let cause = Cause {
                    name: failure.cause.as_str(),
                    message: failure.message,
                    field: None,
                    template: None,
                };
                let topic = settings.and_then(|t| t.dead_letter_topic.as_ref());
                self.dead_letter(p, shaped, topic, &cause, wait).await;
            }
        }
    }

    /// Sends the original message to a dead-letter topic (checked at load to be set
    /// with its policy), keyed as the entry keys it when the key rendered.
    async fn dead_letter(
        &self,
        p: &PublishInfo<'_>,
        shaped: &Shaped<'_>,
        topic: Option<&KafkaTopic>,
        cause: &Cause<'_>,
        mut wait: Option<&mut AckWait>,
    ) {
        let Some(topic) = topic else {
            let why = format_args!("cannot dead-letter ({}): no dead-letter topic", cause.name);
            return self
                .ledger
                .lose(Outcome::DeliveryFailed, wait.as_deref_mut(), why);
        };
        let key = shaped.key().and_then(Result::ok);
        let index = itoa::Buffer::new().format(self.index).to_owned();
        let mut record = Record {
            dead_letter: true,
            ..p.record(topic.as_str(), key)
        };
        dead_letter::add_headers(&mut record.headers, &self.bridge_name, &index, cause);
        self.submit(&record, wait).await;
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
            "remote_headers": r.headers.iter().map(|(n, t)| (n.clone(), t.as_str().into())).collect::<serde_json::Map<_, _>>(),
            "remote_timestamp": r.timestamp.as_ref().map(|t| t.as_str()),
            "remote_payload": r.payload.as_ref().map(|t| t.as_str()),
            "on_template_error": r.on_template_error.as_str(),
            "value_schema": self.schemas.value.as_deref().map(SchemaSlot::to_json),
            "key_schema": self.schemas.key.as_deref().map(SchemaSlot::to_json),
            "on_schema_error": (!self.schemas.is_empty()).then_some(r.on_schema_error.as_str()),
            "ack": self.policy.level.as_str(),
            "client_ids": self.outlet.producers.client_ids(),
            "partitions": self.outlet.topic.as_ref().map(TrackedTopic::to_json),
            "stats": self.ledger.stats().snapshot().to_json(),
            "transform": self.transform.as_deref().map(TransformPool::to_json),
        })
    }
}
