//! The spool workloads, written once against [`Spool`] so every candidate
//! runs exactly the same sequence of commits.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the spool needs from its storage: durable group commits that append
/// a run of sequence-numbered records and remove acknowledged ones, and an
/// in-order replay of what is still pending when it is reopened.
pub trait Spool: Sized {
    const NAME: &'static str;

    /// Opens or creates the store in `dir`, calling `visit` for each pending
    /// record in sequence order before returning.
    fn open(dir: &Path, opts: &Options, visit: &mut dyn FnMut(u64, &[u8])) -> io::Result<Self>;

    /// Durably appends `values` as records `first_seq..` and removes `acked`,
    /// as one commit: when this returns, both survive a power loss.
    fn commit(&mut self, first_seq: u64, values: &[Vec<u8>], acked: &[u64]) -> io::Result<()>;
}

/// Settings shared by every candidate.
pub struct Options {
    /// Segment size of the segment log (the others ignore it).
    pub segment_bytes: u64,
}

/// Throughput and commit latency of one timed run.
pub struct Throughput {
    pub records: u64,
    pub payload_bytes: u64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub mean_commit_ms: f64,
    pub p99_commit_ms: f64,
}

/// `count` pseudo-random values of `len` bytes: incompressible, so fjall's
/// LZ4 gains nothing the others do not.
pub fn make_values(count: usize, len: usize) -> Vec<Vec<u8>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    (0..count)
        .map(|_| (0..len).map(|_| next()).collect())
        .collect()
}

/// Opens `dir` expecting it to be empty (a fresh store).
fn open_empty<S: Spool>(dir: &Path, opts: &Options) -> io::Result<S> {
    S::open(dir, opts, &mut |seq, _| {
        panic!("fresh store replayed record {seq}")
    })
}

/// Group commit: appends `values.len()` records per durable commit, nothing
/// removed, for `duration`.
pub fn group_commit<S: Spool>(
    dir: &Path,
    opts: &Options,
    values: &[Vec<u8>],
    duration: Duration,
) -> io::Result<Throughput> {
    let mut store = open_empty::<S>(dir, opts)?;
    let mut latencies = Vec::new();
    let mut seq = 0;
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        store.commit(seq, values, &[])?;
        latencies.push(t.elapsed());
        seq += values.len() as u64;
    }
    Ok(throughput(
        seq,
        values[0].len(),
        start.elapsed(),
        &mut latencies,
    ))
}

/// Steady state: each commit appends a batch and removes the batch appended
/// `lag` commits earlier, for `duration`. Returns the still-open store, so
/// disk usage can be measured both before and after closing it.
pub fn removal<S: Spool>(
    dir: &Path,
    opts: &Options,
    values: &[Vec<u8>],
    lag: u64,
    duration: Duration,
) -> io::Result<(S, Throughput)> {
    let batch = values.len() as u64;
    let mut store = open_empty::<S>(dir, opts)?;
    // Fill the pipeline first so the timed part is all steady state.
    for c in 0..lag {
        store.commit(c * batch, values, &[])?;
    }
    let mut latencies = Vec::new();
    let mut commit = lag;
    let mut acked = Vec::with_capacity(values.len());
    let start = Instant::now();
    while start.elapsed() < duration {
        acked.clear();
        acked.extend((commit - lag) * batch..(commit - lag + 1) * batch);
        let t = Instant::now();
        store.commit(commit * batch, values, &acked)?;
        latencies.push(t.elapsed());
        commit += 1;
    }
    let appended = (commit - lag) * batch;
    let result = throughput(appended, values[0].len(), start.elapsed(), &mut latencies);
    Ok((store, result))
}

/// Recovery set-up: writes `records` records in commits of `values.len()`
/// (the last one may be short), then acks the first half in commits of the
/// same size. Returns the store and the seconds spent writing and acking, so
/// the caller decides how the store is closed.
pub fn fill<S: Spool>(
    dir: &Path,
    opts: &Options,
    values: &[Vec<u8>],
    records: u64,
) -> io::Result<(S, f64, f64)> {
    let batch = values.len() as u64;
    let mut store = open_empty::<S>(dir, opts)?;
    let start = Instant::now();
    for first in (0..records).step_by(values.len()) {
        let n = batch.min(records - first) as usize;
        store.commit(first, &values[..n], &[])?;
    }
    let write_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let acked: Vec<u64> = (0..records / 2).collect();
    for chunk in acked.chunks(values.len()) {
        store.commit(records, &[], chunk)?;
    }
    Ok((store, write_secs, start.elapsed().as_secs_f64()))
}

/// Times reopening a filled store and replaying its pending records,
/// checking they are exactly the second half, in order.
pub fn recover<S: Spool>(
    dir: &Path,
    opts: &Options,
    records: u64,
    value_len: usize,
) -> io::Result<f64> {
    let mut expected = records / 2;
    let mut bad = None;
    let start = Instant::now();
    let store = S::open(dir, opts, &mut |seq, value| {
        if bad.is_none() && (seq != expected || value.len() != value_len) {
            bad = Some(seq);
        }
        expected += 1;
    })?;
    let secs = start.elapsed().as_secs_f64();
    drop(store);
    if let Some(seq) = bad {
        return Err(io::Error::other(format!(
            "{}: replay out of order at seq {seq}",
            S::NAME
        )));
    }
    if expected != records {
        let n = expected - records / 2;
        return Err(io::Error::other(format!(
            "{}: replayed {n} records, want {}",
            S::NAME,
            records / 2
        )));
    }
    Ok(secs)
}

fn throughput(
    records: u64,
    value_len: usize,
    elapsed: Duration,
    latencies: &mut [Duration],
) -> Throughput {
    let secs = elapsed.as_secs_f64();
    latencies.sort_unstable();
    let mean = latencies.iter().sum::<Duration>().as_secs_f64() / latencies.len().max(1) as f64;
    let p99 = latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    Throughput {
        records,
        payload_bytes: records * value_len as u64,
        records_per_s: records as f64 / secs,
        mb_per_s: (records * value_len as u64) as f64 / secs / 1e6,
        mean_commit_ms: mean * 1e3,
        p99_commit_ms: p99.as_secs_f64() * 1e3,
    }
}
