//! Histograms observed on the message path by several threads at once. An observation of
//! `prometheus::Histogram` is four atomic read-modify-writes on cache lines that every
//! observing thread writes, and the two CPUs of a busy broker pass those lines back and
//! forth: 0.1 µs per transformed message (docs/benchmark-history.md, "The transform pool's
//! checkout and the call histogram"). Here each thread adds to its own shard, two adds on
//! lines no other thread writes, and a scrape sums the shards. The exposition stays
//! `prometheus`'s: a family is a [`Collector`] that hands it ordinary histogram protos.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType};

/// Shards per histogram: more than the threads that observe one (the runtime's workers
/// and the producers' delivery-report threads), so that each usually has its own.
const SHARDS: usize = 8;

/// The most bucket bounds a histogram may have (plus the `+Inf` bucket).
const MAX_BOUNDS: usize = 15;

/// One histogram series per set of label values, created on first use and kept for the
/// life of the family (so a reload's new entry carries on its predecessor's series).
#[derive(Clone)]
pub struct HistogramFamily(Arc<Family>);

struct Family {
    desc: Desc,
    bounds: &'static [f64],
    series: Mutex<BTreeMap<Vec<String>, ShardedHistogram>>,
}

impl HistogramFamily {
    /// A family named `name` with one label per `labels`, bucketed by `bounds`
    /// (ascending, at most [`MAX_BOUNDS`] of them).
    pub fn new(name: String, help: &str, labels: &[&str], bounds: &'static [f64]) -> Self {
        assert!(bounds.len() <= MAX_BOUNDS, "{name}: too many buckets");
        let labels = labels.iter().map(|l| l.to_string()).collect();
        let desc = Desc::new(name, help.to_owned(), labels, Default::default())
            .expect("the series' names and labels are constant and valid");
        HistogramFamily(Arc::new(Family {
            desc,
            bounds,
            series: Mutex::default(),
        }))
    }

    /// The series of these label values, in the order the family's labels were given.
    pub fn with_labels(&self, values: &[&str]) -> ShardedHistogram {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let bounds = self.0.bounds;
        let mut series = self.0.series.lock();
        series
            .entry(key)
            .or_insert_with(|| ShardedHistogram::new(bounds))
            .clone()
    }
}

impl Collector for HistogramFamily {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let names = &self.0.desc.variable_labels;
        let series = self.0.series.lock();
        let metrics = series.iter().map(|(values, histogram)| {
            let labels = names.iter().zip(values).map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name(name.clone());
                pair.set_value(value.clone());
                pair
            });
            let mut metric = Metric::from_label(labels.collect());
            metric.set_histogram(histogram.proto());
            metric
        });
        let mut family = MetricFamily::default();
        family.set_name(self.0.desc.fq_name.clone());
        family.set_help(self.0.desc.help.clone());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(metrics.collect());
        vec![family]
    }
}

/// One histogram series. Observing costs two uncontended atomic adds.
#[derive(Clone)]
pub struct ShardedHistogram(Arc<Shards>);

struct Shards {
    bounds: &'static [f64],
    shards: [Shard; SHARDS],
}

/// One thread's counts, on cache lines of its own.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    /// Observations per bucket (not cumulative); the last is `+Inf`'s.
    counts: [AtomicU64; MAX_BOUNDS + 1],
    /// The sum of the observations, an `f64`'s bits.
    sum: AtomicU64,
}

impl ShardedHistogram {
    fn new(bounds: &'static [f64]) -> ShardedHistogram {
        ShardedHistogram(Arc::new(Shards {
            bounds,
            shards: Default::default(),
        }))
    }

    pub fn observe(&self, v: f64) {
        let shard = &self.0.shards[this_threads_shard()];
        let bucket = self.0.bounds.partition_point(|b| *b < v);
        shard.counts[bucket].fetch_add(1, Ordering::Relaxed);
        // Normally only this thread writes the shard, so the first try succeeds.
        let _ = shard
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Observations so far.
    #[cfg(test)]
    pub(super) fn sample_count(&self) -> u64 {
        self.bucket_counts().iter().sum()
    }

    /// The sum of the observations so far.
    pub(super) fn sample_sum(&self) -> f64 {
        let sums = self.0.shards.iter().map(|s| s.sum.load(Ordering::Relaxed));
        sums.map(f64::from_bits).sum()
    }

    /// Observations per bucket, over all shards.
    fn bucket_counts(&self) -> [u64; MAX_BOUNDS + 1] {
        let mut counts = [0; MAX_BOUNDS + 1];
        for shard in &self.0.shards {
            for (total, count) in counts.iter_mut().zip(&shard.counts) {
                *total += count.load(Ordering::Relaxed);
            }
        }
        counts
    }

    /// The series as Prometheus exposes it. The count is the buckets' total, so the
    /// buckets always add up; the sum is read a moment apart, and can lag or lead them
    /// by the observations made meanwhile.
    fn proto(&self) -> Histogram {
        let counts = self.bucket_counts();
        let mut cumulative = 0;
        let buckets = self.0.bounds.iter().zip(counts).map(|(bound, count)| {
            cumulative += count;
            let mut bucket = Bucket::default();
            bucket.set_upper_bound(*bound);
            bucket.set_cumulative_count(cumulative);
            bucket
        });
        let mut h = Histogram::default();
        h.set_bucket(buckets.collect());
        h.set_sample_count(counts.iter().sum());
        h.set_sample_sum(self.sample_sum());
        h
    }
}

/// The shard this thread observes into: threads take shards round-robin on first use.
fn this_threads_shard() -> usize {
    crate::thread_index::this_thread() % SHARDS
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, Registry, TextEncoder};

    use super::*;

    const BOUNDS: &[f64] = &[0.001, 0.01, 0.1];

    fn exposition(family: &HistogramFamily) -> String {
        let registry = Registry::new();
        registry.register(Box::new(family.clone())).unwrap();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn observations_from_many_threads_are_all_counted_in_their_buckets() {
        let family = HistogramFamily::new("t_seconds".into(), "help", &["bridge"], BOUNDS);
        let h = family.with_labels(&["b"]);
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for v in [0.0005, 0.001, 0.05, 7.0] {
                        for _ in 0..1000 {
                            h.observe(v);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(h.sample_count(), 48_000);
        let expected = 12_000.0 * (0.0005 + 0.001 + 0.05 + 7.0);
        assert!((h.sample_sum() - expected).abs() < 1e-6 * expected);
        let text = exposition(&family);
        // A bound is inclusive: 0.001 falls in the first bucket.
        for line in [
            r#"t_seconds_bucket{bridge="b",le="0.001"} 24000"#,
            r#"t_seconds_bucket{bridge="b",le="0.01"} 24000"#,
            r#"t_seconds_bucket{bridge="b",le="0.1"} 36000"#,
            r#"t_seconds_bucket{bridge="b",le="+Inf"} 48000"#,
            r#"t_seconds_count{bridge="b"} 48000"#,
            "# TYPE t_seconds histogram",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn the_same_labels_give_the_same_series() {
        let family = HistogramFamily::new("t_seconds".into(), "help", &["a", "b"], BOUNDS);
        family.with_labels(&["x", "y"]).observe(0.5);
        family.with_labels(&["x", "y"]).observe(0.5);
        family.with_labels(&["x", "z"]).observe(0.5);
        let text = exposition(&family);
        assert!(text.contains(r#"t_seconds_count{a="x",b="y"} 2"#), "{text}");
        assert!(text.contains(r#"t_seconds_count{a="x",b="z"} 1"#), "{text}");
    }
}
