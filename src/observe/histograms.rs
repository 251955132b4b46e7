//! The two histograms of the message path, and the timer of transform calls. Each entry
//! resolves its label handles once at start, so that an observation costs no lookup,
//! lock or allocation; the endpoint registers the families for `/metrics`.

use std::future::Future;

use prometheus::Registry;

use super::clock;
use super::histogram::{HistogramFamily, ShardedHistogram};
use super::{ENTRY_LABELS, PREFIX};

/// Delivery latency buckets: a healthy local Kafka acks in milliseconds; seconds mean
/// retries or a slow cluster.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Transform call buckets: a typical call takes microseconds; `transform.timeout`
/// defaults to 100 ms.
const TRANSFORM_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.1, 1.0,
];

/// The two histograms updated on the message path. Each entry resolves its label
/// handles once at start ([`Histograms::for_entry`]), so an observation is two atomic
/// adds on its thread's shard: no lookup, lock or allocation per message.
#[derive(Clone)]
pub struct Histograms {
    delivery_latency: HistogramFamily,
    transform_duration: HistogramFamily,
}

/// One entry's histogram handles.
pub struct EntryHistograms {
    /// From the broker receiving the publish to Kafka's ack, of delivered records.
    pub delivery_latency: ShardedHistogram,
    /// One `TransformPool::run`, waiting for an instance included.
    pub transform_duration: CallTimer,
}

/// Observes how long calls take, timed with the CPU's time-stamp counter
/// ([`super::clock::tsc`]): two system-clock reads per call cost as much as the
/// passthrough module.
pub struct CallTimer(ShardedHistogram);

impl CallTimer {
    /// Runs `call` and observes how long it took.
    pub async fn time<T>(&self, call: impl Future<Output = T>) -> T {
        let clock = clock::tsc();
        let start = clock.raw();
        let out = call.await;
        let took = clock.delta(start, clock.raw());
        self.0.observe(took.as_secs_f64());
        out
    }
}

fn histogram(name: &str, help: &str, buckets: &'static [f64]) -> HistogramFamily {
    HistogramFamily::new(format!("{PREFIX}{name}"), help, ENTRY_LABELS, buckets)
}

impl Default for Histograms {
    fn default() -> Histograms {
        Histograms {
            delivery_latency: histogram(
                "delivery_latency_seconds",
                "From the broker receiving the publish to Kafka acknowledging the record",
                LATENCY_BUCKETS,
            ),
            transform_duration: histogram(
                "transform_duration_seconds",
                "Duration of one transform call, waiting for an instance included",
                TRANSFORM_BUCKETS,
            ),
        }
    }
}

impl Histograms {
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.delivery_latency.clone()))?;
        registry.register(Box::new(self.transform_duration.clone()))
    }

    pub fn for_entry(&self, bridge: &str, entry: &str) -> EntryHistograms {
        EntryHistograms {
            delivery_latency: self.delivery_latency.with_labels(&[bridge, entry]),
            transform_duration: CallTimer(self.transform_duration.with_labels(&[bridge, entry])),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// One observation per call, in seconds, and the call's output passed through. The
    /// bounds check the unit (ticks or nanoseconds would be millions), and leave room for
    /// a calibration made on a busy machine.
    #[tokio::test]
    async fn a_timed_call_is_observed_once_in_seconds() {
        let timer = Histograms::default()
            .for_entry("b", "0:t/#")
            .transform_duration;
        // The sleep starts inside the timed call, so at least 20 ms pass between its reads.
        let slept = timer.time(async { std::thread::sleep(Duration::from_millis(20)) });
        assert_eq!(slept.await, ());
        assert_eq!(timer.time(async { 7 }).await, 7);
        assert_eq!(timer.0.sample_count(), 2);
        let sum = timer.0.sample_sum();
        assert!((0.015..5.0).contains(&sum), "observed {sum} s");
    }
}
