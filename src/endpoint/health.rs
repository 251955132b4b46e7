//! `/health`: per bridge `up`, `degraded` or `down`, with the reason. The verdict reads
//! the same atomics as `/metrics` and librdkafka's latest statistics. "Recent"
//! deliveries are those of the bridge's last statistics interval: a timer rotates one
//! sample per interval (see [`Health::sample`]), so the window is the same for every
//! prober, however many there are and however often they ask.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::observe::{Outcome, Snapshot};
use crate::pipeline::{BridgeView, Running};

/// How often [`Health::sample`] should run: finer than any sensible statistics
/// interval, and a few atomic loads per entry when it does.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// A bridge's records at one moment: settled so far (acknowledged, failed) and in
/// flight.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    acked: u64,
    failed: u64,
    in_flight: usize,
}

pub struct Health {
    running: Arc<Running>,
    windows: Mutex<HashMap<String, Window>>,
}

/// Two samples of a bridge, one statistics interval apart: the verdict compares now
/// with `older`, so "recent" covers between one and two intervals.
struct Window {
    older: Sample,
    newer: Sample,
    newer_at: Instant,
    interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Up,
    Degraded,
    Down,
}

impl Health {
    /// Bridges already running (an endpoint moved by a reload) start their windows
    /// now; bridges that start later, from zero.
    pub fn new(running: Arc<Running>) -> Health {
        let now = Instant::now();
        let windows = running
            .get()
            .iter()
            .flat_map(|p| {
                p.bridges()
                    .map(|b| (b.name.to_owned(), b.stats_interval, sample(&b)))
                    .collect::<Vec<_>>()
            })
            .map(|(name, interval, current)| {
                let w = Window {
                    older: current,
                    newer: current,
                    newer_at: now,
                    interval,
                };
                (name, w)
            })
            .collect();
        Health {
            running,
            windows: Mutex::new(windows),
        }
    }

    /// Takes a new sample of each bridge whose newest one is a statistics interval old.
    pub fn sample(&self) {
        let Some(pipeline) = self.running.get() else {
            return;
        };
        let now = Instant::now();
        let mut windows = self.windows.lock();
        for b in pipeline.bridges() {
            let current = sample(&b);
            // A bridge new to this endpoint started with its counters: its first window
            // reaches back to zero, so nothing settled before the first sample is missed.
            let w = windows.entry(b.name.to_owned()).or_insert(Window {
                older: Sample::default(),
                newer: current,
                newer_at: now,
                interval: b.stats_interval,
            });
            if now.duration_since(w.newer_at) >= b.stats_interval {
                w.older = std::mem::replace(&mut w.newer, current);
                w.newer_at = now;
            }
        }
    }

    /// Calls [`Health::sample`] every [`SAMPLE_PERIOD`], for as long as it runs.
    pub async fn sample_forever(self: Arc<Self>) {
        let mut timer = tokio::time::interval(SAMPLE_PERIOD);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            self.sample();
        }
    }

    /// The health document, and whether every bridge is up.
    pub fn check(&self) -> (Value, bool) {
        let Some(pipeline) = self.running.get() else {
            return (json!({"running": false, "bridges": []}), false);
        };
        let windows = self.windows.lock();
        let mut all_up = true;
        let bridges: Vec<Value> = pipeline
            .bridges()
            .map(|b| {
                let (older, interval) = windows
                    .get(b.name)
                    .map_or((Sample::default(), b.stats_interval), |w| {
                        (w.older, w.interval)
                    });
                let (state, reason) = verdict(&b, older, interval);
                all_up &= state == State::Up;
                json!({"name": b.name, "state": state_str(state), "reason": reason})
            })
            .collect();
        (json!({"running": true, "bridges": bridges}), all_up)
    }
}

fn sample(b: &BridgeView<'_>) -> Sample {
    let s = b
        .entries
        .iter()
        .map(|e| e.stats().snapshot())
        .fold(Snapshot::default(), |a, s| a + s);
    Sample {
        acked: s.get(Outcome::Delivered) + s.get(Outcome::DeadLettered),
        // A record that Kafka never confirmed is a failed delivery as far as health goes.
        failed: s.get(Outcome::DeliveryFailed) + s.get(Outcome::PossiblyDelivered),
        in_flight: b.inflight.messages(),
    }
}

/// Whether, per librdkafka's latest statistics, the bridge's producers that hold
/// records are connected to no Kafka broker. Idle producers say nothing either way:
/// librdkafka connects only when it has something to send, a broker it cannot reach
/// cycles back to `INIT` like one never needed, and an idle connection to a broker that
/// hangs still looks `UP`.
fn brokers_unreachable(b: &BridgeView<'_>) -> bool {
    let mut holding = b
        .producer_statistics()
        .filter(|s| s.queued_messages > 0)
        .peekable();
    holding.peek().is_some() && holding.all(|s| !s.any_broker_up())
}

/// The first entry schema that is not available (its registry did not answer), and why.
fn missing_schema(b: &BridgeView<'_>) -> Option<String> {
    b.entries.iter().find_map(|e| {
        let slot = e.schemas().slots().find(|s| s.encoder().is_none())?;
        let why = slot.error().unwrap_or_default();
        Some(format!(
            "entry {}: {} is not available, its records go to on_schema_error: {why}",
            e.metrics_label(),
            slot.field()
        ))
    })
}

/// Down when no Kafka broker is reachable, when Kafka settled none of the records that
/// were in flight a window ago (it hangs: connections stay up, nothing answers), or when
/// every recent delivery failed; degraded when some failed, when an entry's schema is
/// not available, or when the in-flight records or bytes are above half their bound
/// (Kafka is falling behind).
fn verdict(b: &BridgeView<'_>, older: Sample, interval: Duration) -> (State, String) {
    let now = sample(b);
    // The statistics may be an interval old: they count only while records of the
    // bridge are still unsettled now.
    if now.in_flight > 0 && brokers_unreachable(b) {
        return (
            State::Down,
            "no Kafka broker reachable (librdkafka statistics)".into(),
        );
    }
    let acked = now.acked.saturating_sub(older.acked);
    let failed = now.failed.saturating_sub(older.failed);
    if older.in_flight > 0 && acked + failed == 0 {
        // Nothing settled since, so the records in flight then still are.
        let waited = interval.as_secs_f64();
        let why = format!(
            "Kafka acknowledged none of the records in flight for over {waited} s ({} now)",
            now.in_flight
        );
        return (State::Down, why);
    }
    if failed > 0 && acked == 0 {
        return (
            State::Down,
            format!("all {failed} recent deliveries failed"),
        );
    }
    if failed > 0 {
        return (
            State::Degraded,
            format!("{failed} of {} recent deliveries failed", failed + acked),
        );
    }
    if let Some(why) = missing_schema(b) {
        return (State::Degraded, why);
    }
    let (max_messages, max_bytes) = b.inflight.limits();
    let bytes = b.inflight.bytes();
    if now.in_flight > max_messages / 2 || bytes > max_bytes / 2 {
        let why = format!(
            "in flight {} of {max_messages} records, {bytes} of {max_bytes} bytes",
            now.in_flight
        );
        return (State::Degraded, why);
    }
    (State::Up, String::new())
}

fn state_str(s: State) -> &'static str {
    match s {
        State::Up => "up",
        State::Degraded => "degraded",
        State::Down => "down",
    }
}
