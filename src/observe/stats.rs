//! Accounting: every matched publish ends in exactly one counted outcome per unit (a
//! record, or the message itself when no record is produced). Counters are lock-free and
//! reported through the plugin's `attrs()`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};

use crate::shape::Reason;

/// The fate of one unit. A filtered or failed message is one unit; a message that
/// produced records is one unit per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Kafka acknowledged the record.
    Delivered,
    /// The transform returned no records.
    Filtered,
    /// The transform failed and `on_error = "drop"`.
    TransformError,
    /// A template had no value and `remote.on_template_error = "drop"`, or the topic
    /// itself had none.
    TemplateError,
    /// The record's value or key did not fit its schema, or its schema was not
    /// available, and `remote.on_schema_error = "drop"`.
    SchemaError,
    /// Kafka acknowledged the record in the dead-letter topic.
    DeadLettered,
    /// No room in the in-flight buffer within `remote.queue_timeout`.
    DroppedBufferFull,
    /// Kafka or librdkafka gave up on a record that never reached Kafka (a refusal, an
    /// invalid topic, or a timeout or purge before it was sent).
    DeliveryFailed,
    /// librdkafka gave up waiting for Kafka's answer to a record it had sent (a timeout
    /// or a purge at stop): the record may or may not be in Kafka.
    PossiblyDelivered,
}

/// Why a record was not encoded against its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaFailure {
    /// The value or key does not fit the schema.
    Mismatch,
    /// The schema has not been fetched from its registry.
    Unavailable,
}

impl SchemaFailure {
    pub const ALL: [SchemaFailure; 2] = [SchemaFailure::Mismatch, SchemaFailure::Unavailable];

    pub fn as_str(self) -> &'static str {
        match self {
            SchemaFailure::Mismatch => "schema_mismatch",
            SchemaFailure::Unavailable => "schema_unavailable",
        }
    }
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Delivered,
        Outcome::Filtered,
        Outcome::TransformError,
        Outcome::TemplateError,
        Outcome::SchemaError,
        Outcome::DeadLettered,
        Outcome::DroppedBufferFull,
        Outcome::DeliveryFailed,
        Outcome::PossiblyDelivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Filtered => "filtered",
            Outcome::TransformError => "transform_error",
            Outcome::TemplateError => "template_error",
            Outcome::SchemaError => "schema_error",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::DroppedBufferFull => "dropped_buffer_full",
            Outcome::DeliveryFailed => "delivery_failed",
            Outcome::PossiblyDelivered => "possibly_delivered",
        }
    }
}

/// Counters of one entry.
#[derive(Default)]
pub struct EntryStats {
    /// Publishes that matched the entry's topic filter and passed the ACL.
    matched: AtomicU64,
    /// Publishes that matched but were denied by the broker's ACL, so never forwarded.
    acl_denied: AtomicU64,
    /// Records handed to librdkafka (they end delivered, dead_lettered, delivery_failed
    /// or possibly_delivered).
    produced: AtomicU64,
    outcomes: [AtomicU64; Outcome::ALL.len()],
    /// Records with a template that had no value, by reason, whatever became of them.
    template_failures: [AtomicU64; Reason::ALL.len()],
    /// Records not encoded against their schema, by why, whatever became of them.
    schema_failures: [AtomicU64; SchemaFailure::ALL.len()],
}

impl EntryStats {
    #[inline]
    pub fn matched(&self) {
        self.matched.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn acl_denied(&self) {
        self.acl_denied.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn produced(&self) {
        self.produced.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn outcome(&self, o: Outcome) {
        self.outcomes[o as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, o: Outcome) -> u64 {
        self.outcomes[o as usize].load(Ordering::Relaxed)
    }

    pub fn template_failed(&self, r: Reason) {
        self.template_failures[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn schema_failed(&self, f: SchemaFailure) {
        self.schema_failures[f as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters at this moment.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            matched: self.matched.load(Ordering::Relaxed),
            acl_denied: self.acl_denied.load(Ordering::Relaxed),
            produced: self.produced.load(Ordering::Relaxed),
            outcomes: Outcome::ALL.map(|o| self.get(o)),
            template_failures: Reason::ALL
                .map(|r| self.template_failures[r as usize].load(Ordering::Relaxed)),
            schema_failures: SchemaFailure::ALL
                .map(|f| self.schema_failures[f as usize].load(Ordering::Relaxed)),
        }
    }
}

/// A copy of [`EntryStats`]; snapshots of several entries add up to a bridge's totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub matched: u64,
    pub acl_denied: u64,
    pub produced: u64,
    pub outcomes: [u64; Outcome::ALL.len()],
    pub template_failures: [u64; Reason::ALL.len()],
    pub schema_failures: [u64; SchemaFailure::ALL.len()],
}

impl Snapshot {
    pub fn get(&self, o: Outcome) -> u64 {
        self.outcomes[o as usize]
    }

    pub fn template_failures(&self, r: Reason) -> u64 {
        self.template_failures[r as usize]
    }

    pub fn schema_failures(&self, f: SchemaFailure) -> u64 {
        self.schema_failures[f as usize]
    }

    /// Records produced but not yet settled by a delivery report.
    pub fn in_flight(&self) -> u64 {
        let settled = self.get(Outcome::Delivered)
            + self.get(Outcome::DeadLettered)
            + self.get(Outcome::DeliveryFailed)
            + self.get(Outcome::PossiblyDelivered);
        self.produced.saturating_sub(settled)
    }

    pub fn to_json(self) -> Value {
        let outcomes: Map<String, Value> = Outcome::ALL
            .iter()
            .map(|o| (o.as_str().to_owned(), self.get(*o).into()))
            .collect();
        let template_failures: Map<String, Value> = Reason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), self.template_failures(*r).into()))
            .collect();
        let schema_failures: Map<String, Value> = SchemaFailure::ALL
            .iter()
            .map(|f| (f.as_str().to_owned(), self.schema_failures(*f).into()))
            .collect();
        json!({
            "matched": self.matched,
            "acl_denied": self.acl_denied,
            "produced": self.produced,
            "in_flight": self.in_flight(),
            "outcomes": outcomes,
            "template_failures": template_failures,
            "schema_failures": schema_failures,
        })
    }
}

impl std::ops::Add for Snapshot {
    type Output = Snapshot;

    fn add(mut self, other: Snapshot) -> Snapshot {
        self.matched += other.matched;
        self.acl_denied += other.acl_denied;
        self.produced += other.produced;
        for (a, b) in self.outcomes.iter_mut().zip(other.outcomes) {
            *a += b;
        }
        for (a, b) in self
            .template_failures
            .iter_mut()
            .zip(other.template_failures)
        {
            *a += b;
        }
        for (a, b) in self.schema_failures.iter_mut().zip(other.schema_failures) {
            *a += b;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_produced_minus_settled() {
        let s = EntryStats::default();
        for _ in 0..5 {
            s.produced();
        }
        s.outcome(Outcome::Delivered);
        s.outcome(Outcome::DeliveryFailed);
        s.outcome(Outcome::DeadLettered);
        s.outcome(Outcome::PossiblyDelivered);
        s.outcome(Outcome::Filtered);
        assert_eq!(s.snapshot().in_flight(), 1);
        let j = s.snapshot().to_json();
        assert_eq!(j["outcomes"]["filtered"], 1);
        assert_eq!(j["in_flight"], 1);
    }

    #[test]
    fn snapshots_add_up() {
        let (a, b) = (EntryStats::default(), EntryStats::default());
        a.matched();
        b.matched();
        b.outcome(Outcome::Filtered);
        let total = a.snapshot() + b.snapshot();
        assert_eq!((total.matched, total.get(Outcome::Filtered)), (2, 1));
    }
}
