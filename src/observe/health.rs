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

use crate::hooks::HookState;
use crate::observe::{Outcome, Snapshot};
use crate::pipeline::BridgeView;

/// How often [`Health::sample`] should run: finer than any sensible statistics
/// interval, and a few atomic loads per entry when it does.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// Settled records of a bridge: (acknowledged, failed).
type Settled = (u64, u64);

pub struct Health {
    hooks: Arc<HookState>,
    windows: Mutex<HashMap<String, Window>>,
}

/// Two samples of a bridge's settled counts, one statistics interval apart: the
/// verdict compares now with `older`, so it covers between one and two intervals.
struct Window {
    older: Settled,
    newer: Settled,
    newer_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Up,
    Degraded,
    Down,
}

impl Health {
    pub fn new(hooks: Arc<HookState>) -> Health {
        Health {
            hooks,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a new sample of each bridge whose newest one is a statistics interval old.
    pub fn sample(&self) {
        let Some(pipeline) = self.hooks.running.read().clone() else {
            return;
        };
        let now = Instant::now();
        let mut windows = self.windows.lock();
        for b in pipeline.bridges() {
            let current = settled(&b);
            let w = windows.entry(b.name.to_owned()).or_insert(Window {
                older: current,
                newer: current,
                newer_at: now,
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
        let Some(pipeline) = self.hooks.running.read().clone() else {
            return (json!({"running": false, "bridges": []}), false);
        };
        let windows = self.windows.lock();
        let mut all_up = true;
        let bridges: Vec<Value> = pipeline
            .bridges()
            .map(|b| {
                let now = settled(&b);
                let before = windows.get(b.name).map_or(now, |w| w.older);
                let (state, reason) = verdict(&b, before, now);
                all_up &= state == State::Up;
                json!({"name": b.name, "state": state_str(state), "reason": reason})
            })
            .collect();
        (json!({"running": true, "bridges": bridges}), all_up)
    }
}

fn settled(b: &BridgeView<'_>) -> Settled {
    let s = b
        .entries
        .iter()
        .map(|e| e.stats().snapshot())
        .fold(Snapshot::default(), |a, s| a + s);
    let acked = s.get(Outcome::Delivered) + s.get(Outcome::DeadLettered);
    (acked, s.get(Outcome::DeliveryFailed))
}

/// Whether, per librdkafka's latest statistics, no producer of the bridge is connected
/// to a Kafka broker while some producer holds records for one. Idle producers say
/// nothing either way (see [`Summary::stuck`](crate::kafka::Summary::stuck)).
fn brokers_unreachable(b: &BridgeView<'_>) -> bool {
    let mut failing = false;
    for s in b.entries.iter().flat_map(|e| e.producer_statistics()) {
        if s.any_broker_up() {
            return false;
        }
        failing |= s.stuck();
    }
    failing
}

/// Down when no Kafka broker is reachable or every recent delivery failed; degraded
/// when some failed, or when the in-flight records or bytes are above half their bound
/// (Kafka is falling behind).
fn verdict(b: &BridgeView<'_>, before: Settled, now: Settled) -> (State, String) {
    // The statistics may be an interval old: they count only while records of the
    // bridge are still unsettled now.
    if b.inflight.messages() > 0 && brokers_unreachable(b) {
        return (
            State::Down,
            "no Kafka broker reachable (librdkafka statistics)".into(),
        );
    }
    let acked = now.0.saturating_sub(before.0);
    let failed = now.1.saturating_sub(before.1);
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
    let (max_messages, max_bytes) = b.inflight.limits();
    let (messages, bytes) = (b.inflight.messages(), b.inflight.bytes());
    if messages > max_messages / 2 || bytes > max_bytes / 2 {
        let why =
            format!("in flight {messages} of {max_messages} records, {bytes} of {max_bytes} bytes");
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
