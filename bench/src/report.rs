//! Results: per-run metrics, the tables, and the JSON file.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::kafka::Received;
use crate::load::{Load, Published};
use crate::process::CpuUse;

/// The metrics of one configuration under one load.
#[derive(Serialize, Deserialize)]
pub struct RunResult {
    pub config: Config,
    pub load: String,
    /// Set when the run could not be completed; the other fields are then empty.
    pub error: Option<String>,
    pub metrics: Option<Metrics>,
}

#[derive(Serialize, Deserialize, Default)]
pub struct Metrics {
    /// Publishes acknowledged (QoS 1) or written (QoS 0) per second, in the window.
    pub ingest_per_s: f64,
    /// Records that arrived in Kafka per second, in the window (None without a bridge).
    pub kafka_per_s: Option<f64>,
    /// Publish-to-Kafka latency of the records published in the window, milliseconds.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// p99 of the records published within half a second of a reload (`--reload-at`);
    /// the other latencies then leave that second out.
    pub p99_reload_ms: Option<f64>,
    /// CPU use in the window, in cores: the broker, tansu, this benchmark (publishers and
    /// Kafka reader), and everything else on the machine.
    pub cpu_broker: f64,
    pub cpu_tansu: f64,
    pub cpu_bench: f64,
    pub cpu_other: f64,
    /// CPU the hypervisor gave to other guests (steal), in cores.
    pub cpu_steal: f64,
    /// CPU per delivered message, µs: cores ÷ the rate that reached Kafka (the ingest rate
    /// without a bridge), for the broker, tansu and this benchmark (load and reader).
    pub broker_us_per_msg: f64,
    pub tansu_us_per_msg: f64,
    pub bench_us_per_msg: f64,
    /// The broker's CPU per delivered message by kind of thread (tokio workers,
    /// librdkafka's threads, the delivery-report thread…), largest first.
    #[serde(default)]
    pub broker_threads_us_per_msg: Vec<(String, f64)>,
    /// The broker's CPU per delivered message by whose code spent it (`--profile`).
    #[serde(default)]
    pub broker_owners_us_per_msg: Vec<(String, f64)>,
    /// The cores' speed in the window: the median time of a fixed piece of work, µs
    /// (see `canary.rs`).
    pub canary_us: Option<f64>,
    /// Peak resident set size of the broker process (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Resident set size at the end of the load and after the drain, MiB.
    pub rss_end_of_load_mib: f64,
    pub rss_after_drain_mib: f64,
    /// Publishes acknowledged (QoS 1) or written (QoS 0) over the whole run.
    pub published: u64,
    /// Publishes handed to a client that were never acknowledged or written.
    pub unconfirmed: u64,
    /// MQTT connections the broker closed during the run.
    pub disconnects: u64,
    /// Distinct benchmark records found in Kafka after the drain.
    pub delivered: u64,
    /// Published messages not found in Kafka after the drain.
    pub lost: u64,
    /// Per publisher with losses, where they lie: the first and the last lost
    /// sequence number, as fractions of the publisher's run (0 = its first message).
    /// Empty without a bridge (then `delivered` and `lost` say nothing either).
    pub lost_span: Vec<(f64, f64)>,
    pub duplicates: u64,
    /// Records whose Kafka key is their payload's device_id.
    pub keyed: u64,
    /// Keyed records behind a later record of their key in its partition, and keys in
    /// more than one partition: both must be 0.
    pub keys_out_of_order: u64,
    pub keys_split: u64,
    /// Seconds from the end of the load to the last record's arrival.
    pub drain_s: Option<f64>,
    pub publisher_error: Option<String>,
    pub reader_errors: u64,
    pub reader_first_error: Option<String>,
    pub foreign_records: u64,
    /// Offsets the live Kafka read skipped (read again after the drain), those never
    /// read, and records read at an offset already passed.
    pub offsets_skipped: u64,
    pub offsets_unread: u64,
    pub offset_rewinds: u64,
    /// The plugin's own `attrs()` when the broker was stopped.
    pub plugin_attrs: Value,
    /// `(seconds since the broker was up, VmRSS MiB)`, every 100 ms.
    pub rss_samples: Vec<(f64, f64)>,
}

pub struct Measured {
    pub window_s: f64,
    pub ingest_in_window: u64,
    pub cpu: CpuUse,
    pub published: Published,
    pub received: Received,
    pub load_end_us: u64,
    pub has_bridge: bool,
    pub peak_rss_kb: u64,
    pub rss_end_of_load_kb: u64,
    pub rss_samples: Vec<(f64, u64)>,
    pub plugin_attrs: Value,
    pub canary_us: Option<f64>,
    /// The owners' CPU in cores, from `--profile`.
    pub owner_cores: Vec<(String, f64)>,
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Metrics {
    pub fn compute(m: Measured) -> Metrics {
        let Measured {
            window_s,
            ingest_in_window,
            cpu,
            published,
            mut received,
            load_end_us,
            has_bridge,
            peak_rss_kb,
            rss_end_of_load_kb,
            rss_samples,
            plugin_attrs,
            canary_us,
            owner_cores,
        } = m;
        received.latencies_us.sort_unstable();
        received.reload_latencies_us.sort_unstable();
        let key_order = received.key_order();
        let p99_reload_ms =
            percentile(&received.reload_latencies_us, 99.0).map(|us| us as f64 / 1000.0);
        let lat = |p| {
            has_bridge
                .then(|| percentile(&received.latencies_us, p))
                .flatten()
                .map(|us| us as f64 / 1000.0)
        };
        let total: u64 = published.per_publisher.iter().sum();
        let found: u64 = published
            .per_publisher
            .iter()
            .enumerate()
            .map(|(i, &n)| received.distinct_below(i, n))
            .sum();
        let ingest_per_s = ingest_in_window as f64 / window_s;
        let kafka_per_s = has_bridge.then(|| received.arrived_in_window as f64 / window_s);
        let per_msg = |cores: f64| cores * 1e6 / kafka_per_s.unwrap_or(ingest_per_s);
        Metrics {
            ingest_per_s,
            kafka_per_s,
            broker_us_per_msg: per_msg(cpu.procs[0]),
            tansu_us_per_msg: per_msg(cpu.procs[1]),
            bench_us_per_msg: per_msg(cpu.procs[2]),
            broker_threads_us_per_msg: cpu
                .first_threads
                .iter()
                .map(|(kind, cores)| (kind.clone(), per_msg(*cores)))
                .collect(),
            broker_owners_us_per_msg: owner_cores
                .into_iter()
                .map(|(owner, cores)| (owner, per_msg(cores)))
                .collect(),
            cpu_broker: cpu.procs[0],
            cpu_tansu: cpu.procs[1],
            cpu_bench: cpu.procs[2],
            cpu_other: cpu.other,
            cpu_steal: cpu.steal,
            canary_us,
            p50_ms: lat(50.0),
            p99_ms: lat(99.0),
            p999_ms: lat(99.9),
            max_ms: lat(100.0),
            p99_reload_ms,
            peak_rss_mib: mib(peak_rss_kb),
            rss_end_of_load_mib: mib(rss_end_of_load_kb),
            rss_after_drain_mib: rss_samples.last().map_or(0.0, |&(_, kb)| mib(kb)),
            published: total,
            unconfirmed: published.unconfirmed,
            disconnects: published.disconnects,
            delivered: received.distinct(),
            lost: total - found,
            lost_span: published
                .per_publisher
                .iter()
                .enumerate()
                .filter(|_| has_bridge)
                .filter_map(|(i, &n)| {
                    let (first, last) = received.missing_span(i, n)?;
                    let at = |s: u64| (s as f64 / n as f64 * 1000.0).round() / 1000.0;
                    Some((at(first), at(last)))
                })
                .collect(),
            duplicates: received.duplicates,
            keyed: received.keyed,
            keys_out_of_order: key_order.out_of_order,
            keys_split: key_order.keys_split,
            drain_s: received
                .last_arrival_us
                .map(|t| t.saturating_sub(load_end_us) as f64 / 1e6),
            publisher_error: published.error,
            reader_errors: received.errors,
            reader_first_error: received.first_error,
            foreign_records: received.foreign,
            offsets_skipped: received.offsets_skipped,
            offsets_unread: received.offsets_unread,
            offset_rewinds: received.offset_rewinds,
            plugin_attrs,
            rss_samples: rss_samples
                .into_iter()
                .map(|(t, kb)| ((t * 10.0).round() / 10.0, (mib(kb) * 10.0).round() / 10.0))
                .collect(),
        }
    }
}

impl Metrics {
    /// One line for the progress output.
    pub fn summary(&self) -> String {
        let mut s = format!("ingest {}/s", int(self.ingest_per_s));
        if let Some(k) = self.kafka_per_s {
            s += &format!(
                ", Kafka {}/s, p99 {:.1} ms, lost {}",
                int(k),
                self.p99_ms.unwrap_or(f64::NAN),
                int(self.lost as f64)
            );
        }
        s += &format!(", peak RSS {:.0} MiB", self.peak_rss_mib);
        if let Some(us) = self.canary_us {
            s += &format!(", canary {us:.0} µs");
        }
        s
    }
}

/// Thousands separators: 229014 → "229,014".
fn int(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

fn ratio(num: Option<f64>, den: Option<f64>) -> String {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => format!("{:.2}", n / d),
        _ => "-".into(),
    }
}

/// The table of one load: a row per configuration, with ratios to (b) and to (a) taken
/// from the same run.
pub fn table(load: Load, results: &[&RunResult], header: &str) -> String {
    let find = |c: Config| {
        results
            .iter()
            .find(|r| r.config == c)
            .and_then(|r| r.metrics.as_ref())
    };
    let b_kafka = find(Config::B).and_then(|m| m.kafka_per_s);
    let a_ingest = find(Config::A).map(|m| m.ingest_per_s);
    let mut out = String::new();
    let _ = writeln!(out, "{load} — {header}");
    let head = [
        "configuration",
        "ingest/s",
        "Kafka/s",
        "Kafka÷b",
        "Kafka÷a.in",
        "ingest÷a",
        "p50 ms",
        "p99 ms",
        "peak RSS MiB",
        "CPU broker/tansu/bench",
        "published",
        "in Kafka",
        "lost",
        "dup",
    ];
    let mut rows = vec![head.map(String::from).to_vec()];
    let mut notes = Vec::new();
    for r in results {
        let Some(m) = &r.metrics else {
            let mut row = vec![r.config.label().to_string()];
            row.push(format!(
                "failed: {}",
                r.error.as_deref().unwrap_or("unknown")
            ));
            rows.push(row);
            continue;
        };
        let bridge = m.kafka_per_s.is_some();
        let dash = |s: String| if bridge { s } else { "-".into() };
        rows.push(vec![
            r.config.label().to_string(),
            int(m.ingest_per_s),
            opt(m.kafka_per_s, int),
            ratio(m.kafka_per_s, b_kafka),
            ratio(m.kafka_per_s, a_ingest),
            ratio(Some(m.ingest_per_s), a_ingest),
            opt(m.p50_ms, |v| format!("{v:.1}")),
            opt(m.p99_ms, |v| format!("{v:.1}")),
            format!("{:.0}", m.peak_rss_mib),
            format!("{:.2}/{:.2}/{:.2}", m.cpu_broker, m.cpu_tansu, m.cpu_bench),
            int(m.published as f64),
            dash(int(m.delivered as f64)),
            dash(int(m.lost as f64)),
            dash(int(m.duplicates as f64)),
        ]);
        if let Some(note) = notes_of(r.config, m) {
            notes.push(note);
        }
    }
    render(&mut out, &rows, head.len());
    for n in notes {
        let _ = writeln!(out, "  {n}");
    }
    out
}

/// Per configuration, in the order they first appear, its median run: by broker CPU per
/// message at equal load, by the rate that reached Kafka (or the ingest rate) at
/// saturation. A configuration whose every run failed is represented by a failed run.
pub fn median_runs<'r>(runs: &[&'r RunResult], equal_load: bool) -> Vec<&'r RunResult> {
    let key = |m: &Metrics| match equal_load {
        true => m.broker_us_per_msg,
        false => m.kafka_per_s.unwrap_or(m.ingest_per_s),
    };
    let mut configs: Vec<Config> = Vec::new();
    for r in runs {
        if !configs.contains(&r.config) {
            configs.push(r.config);
        }
    }
    configs
        .into_iter()
        .filter_map(|c| {
            let mut ok: Vec<&RunResult> = (runs.iter().copied())
                .filter(|r| r.config == c && r.metrics.is_some())
                .collect();
            ok.sort_by(|x, y| {
                let (x, y) = (x.metrics.as_ref(), y.metrics.as_ref());
                key(x.expect("ok")).total_cmp(&key(y.expect("ok")))
            });
            ok.get(ok.len() / 2)
                .copied()
                .or_else(|| runs.iter().copied().find(|r| r.config == c))
        })
        .collect()
}

/// Right-aligned columns, the first left-aligned; a row of another length (a failed run)
/// is printed as it is.
fn render(out: &mut String, rows: &[Vec<String>], columns: usize) {
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter(|r| r.len() == columns)
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths
                .get(c)
                .copied()
                .unwrap_or(0)
                .saturating_sub(cell.chars().count());
            if c == 0 || row.len() != columns {
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(line, "{}{cell}  ", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// The configurations compared at equal load: what each adds to broker CPU per message.
const DIFFERENCES: [(Config, Config, &str); 12] = [
    (Config::C, Config::A, "what the bridge adds"),
    (Config::D, Config::C, "passthrough module"),
    (Config::E, Config::C, "key_headers module"),
    (Config::I, Config::C, "the same with templates"),
    (Config::J, Config::C, "a key and two headers"),
    (Config::I, Config::J, "the templates' lookups"),
    (Config::F, Config::C, "spool, written"),
    (Config::G, Config::C, "spool, synced"),
    (Config::H, Config::C, "acked on delivery"),
    (Config::K, Config::C, "key-headers.js script"),
    (Config::K, Config::E, "the script over the module"),
    (Config::L, Config::C, "Avro encoding"),
];

/// The equal-load table of one load (`--rate`): CPU per delivered message of each
/// process, latencies, and the differences between configurations.
pub fn equal_load_table(load: Load, rate: u32, results: &[&RunResult], header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{load} at {} msg/s offered — {header}",
        int(rate as f64)
    );
    let head = [
        "configuration",
        "ingest/s",
        "Kafka/s",
        "broker µs/msg",
        "tansu µs/msg",
        "load µs/msg",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "peak RSS MiB",
        "lost",
        "dup",
    ];
    let mut rows = vec![head.map(String::from).to_vec()];
    for r in results {
        let Some(m) = &r.metrics else {
            let error = r.error.as_deref().unwrap_or("unknown");
            rows.push(vec![r.config.label().into(), format!("failed: {error}")]);
            continue;
        };
        let ms = |v: Option<f64>| opt(v, |v| format!("{v:.1}"));
        let bridge = m.kafka_per_s.is_some();
        let dash = |v: u64| if bridge { int(v as f64) } else { "-".into() };
        rows.push(vec![
            r.config.label().into(),
            int(m.ingest_per_s),
            opt(m.kafka_per_s, int),
            format!("{:.2}", m.broker_us_per_msg),
            format!("{:.2}", m.tansu_us_per_msg),
            format!("{:.2}", m.bench_us_per_msg),
            ms(m.p50_ms),
            ms(m.p99_ms),
            ms(m.p999_ms),
            format!("{:.0}", m.peak_rss_mib),
            dash(m.lost),
            dash(m.duplicates),
        ]);
    }
    render(&mut out, &rows, head.len());
    let metrics = |c: Config| {
        results
            .iter()
            .find(|r| r.config == c)
            .and_then(|r| r.metrics.as_ref())
    };
    let mut diffs = vec![["difference", "", "broker µs/msg", "p99 ms"]
        .map(String::from)
        .to_vec()];
    for (x, y, what) in DIFFERENCES {
        if let (Some(mx), Some(my)) = (metrics(x), metrics(y)) {
            let p99 = mx.p99_ms.zip(my.p99_ms).map(|(a, b)| a - b);
            diffs.push(vec![
                format!("{} − {}", x.letter(), y.letter()),
                what.into(),
                format!("{:+.2}", mx.broker_us_per_msg - my.broker_us_per_msg),
                opt(p99, |v| format!("{v:+.1}")),
            ]);
        }
    }
    if diffs.len() > 1 {
        let _ = writeln!(out);
        render(&mut out, &diffs, 4);
    }
    threads_table(&mut out, results);
    owners_table(&mut out, results);
    out
}

/// The broker's µs per delivered message by owner (`--profile`), one column per
/// configuration.
fn owners_table(out: &mut String, results: &[&RunResult]) {
    let profiled: Vec<(&RunResult, &Metrics)> = results
        .iter()
        .filter_map(|r| Some((*r, r.metrics.as_ref()?)))
        .filter(|(_, m)| !m.broker_owners_us_per_msg.is_empty())
        .collect();
    let Some((_, first)) = profiled.first() else {
        return;
    };
    let mut head = vec!["broker µs/msg by owner (perf)".to_owned()];
    head.extend(profiled.iter().map(|(r, _)| r.config.letter().to_string()));
    let mut rows = vec![head];
    for (i, (owner, _)) in first.broker_owners_us_per_msg.iter().enumerate() {
        let mut row = vec![owner.clone()];
        row.extend(profiled.iter().map(|(_, m)| {
            let us = m.broker_owners_us_per_msg.get(i).map_or(0.0, |(_, us)| *us);
            format!("{us:.2}")
        }));
        rows.push(row);
    }
    let mut total = vec!["total of the profile".to_owned()];
    total.extend(profiled.iter().map(|(_, m)| {
        let all: f64 = m.broker_owners_us_per_msg.iter().map(|(_, us)| us).sum();
        format!("{all:.2}")
    }));
    rows.push(total);
    let _ = writeln!(out);
    let columns = rows[0].len();
    render(out, &rows, columns);
}

/// Threads whose share is below this in every configuration are summed as "other".
const THREAD_SHOWN_US: f64 = 0.05;

/// The broker's µs per delivered message by kind of thread, one row per configuration:
/// where the differences above go.
fn threads_table(out: &mut String, results: &[&RunResult]) {
    let measured: Vec<(&RunResult, &Metrics)> = results
        .iter()
        .filter_map(|r| Some((*r, r.metrics.as_ref()?)))
        .collect();
    let mut kinds: Vec<(&str, f64)> = Vec::new();
    for (_, m) in &measured {
        for (kind, us) in &m.broker_threads_us_per_msg {
            match kinds.iter_mut().find(|(k, _)| k == kind) {
                Some((_, most)) => *most = most.max(*us),
                None => kinds.push((kind, *us)),
            }
        }
    }
    kinds.retain(|(_, most)| *most >= THREAD_SHOWN_US);
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    if kinds.is_empty() {
        return;
    }
    let mut head = vec!["broker µs/msg by thread".to_owned()];
    head.extend(kinds.iter().map(|(k, _)| k.to_string()));
    head.push("other".into());
    let mut rows = vec![head];
    for (r, m) in measured {
        let share = |kind: &str| {
            let found = m.broker_threads_us_per_msg.iter().find(|(k, _)| k == kind);
            found.map_or(0.0, |(_, us)| *us)
        };
        let shown: Vec<f64> = kinds.iter().map(|(k, _)| share(k)).collect();
        let all: f64 = m.broker_threads_us_per_msg.iter().map(|(_, us)| us).sum();
        let mut row = vec![r.config.label().to_owned()];
        row.extend(shown.iter().map(|us| format!("{us:.2}")));
        row.push(format!("{:.2}", all - shown.iter().sum::<f64>()));
        rows.push(row);
    }
    let _ = writeln!(out);
    let columns = rows[0].len();
    render(out, &rows, columns);
}

/// What the bridge itself counted, and anything odd about the run.
fn notes_of(config: Config, m: &Metrics) -> Option<String> {
    let mut parts = Vec::new();
    let a = &m.plugin_attrs;
    let outcomes = &a["bridges"][0]["entries"][0]["stats"]["outcomes"];
    if let Some(o) = outcomes.as_object() {
        let counted: Vec<String> = o
            .iter()
            .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
            .map(|(k, v)| format!("{k} {}", int(v.as_u64().unwrap_or(0) as f64)))
            .collect();
        if !counted.is_empty() {
            parts.push(format!("plugin counted {}", counted.join(", ")));
        }
    }
    if let Some(q) = a.get("task_exec_queue") {
        parts.push(format!(
            "upstream task queue at stop: {} waiting, {} active",
            int(q["waiting_count"].as_u64().unwrap_or(0) as f64),
            q["active_count"].as_u64().unwrap_or(0)
        ));
    }
    if m.cpu_other > 0.1 || m.cpu_steal > 0.1 {
        parts.push(format!(
            "WARNING: other processes used {:.2} cores and the hypervisor stole {:.2} during the window",
            m.cpu_other, m.cpu_steal
        ));
    }
    if let Some(d) = m.drain_s {
        parts.push(format!("last record {d:.1} s after the load"));
    }
    if let Some(r) = m.p99_reload_ms {
        let rest = m.p99_ms.unwrap_or(f64::NAN);
        parts.push(format!(
            "p99 of the second around the reload {r:.1} ms (rest of the window {rest:.1} ms)"
        ));
    }
    if m.unconfirmed > 0 {
        parts.push(format!(
            "{} publishes never confirmed",
            int(m.unconfirmed as f64)
        ));
    }
    if !m.lost_span.is_empty() {
        let first = m.lost_span.iter().map(|s| s.0).fold(1.0, f64::min);
        let last = m.lost_span.iter().map(|s| s.1).fold(0.0, f64::max);
        parts.push(format!(
            "losses lie between {:.0}% and {:.0}% of the publishers' runs",
            first * 100.0,
            last * 100.0
        ));
    }
    if m.disconnects > 0 {
        parts.push(format!(
            "the broker closed publisher connections {} times (they reconnected and resent)",
            int(m.disconnects as f64)
        ));
    }
    if let Some(e) = &m.publisher_error {
        parts.push(format!("publisher error: {e}"));
    }
    if m.reader_errors > 0 {
        parts.push(format!(
            "{} Kafka reader errors ({})",
            m.reader_errors,
            m.reader_first_error.as_deref().unwrap_or("")
        ));
    }
    if m.offsets_skipped > 0 || m.offset_rewinds > 0 {
        parts.push(format!(
            "Kafka reader: {} offsets skipped by tansu's fetches and read again ({} never read), {} rewinds",
            m.offsets_skipped, m.offsets_unread, m.offset_rewinds
        ));
    }
    if m.foreign_records > 0 {
        parts.push(format!("{} unparseable records", m.foreign_records));
    }
    if m.keys_out_of_order > 0 || m.keys_split > 0 {
        parts.push(format!(
            "{} keyed records out of their key's order, {} keys in more than one partition",
            m.keys_out_of_order, m.keys_split
        ));
    }
    if matches!(config, Config::E | Config::I) && m.keyed != m.delivered {
        parts.push(format!(
            "only {} of {} records keyed by device_id",
            m.keyed, m.delivered
        ));
    }
    (!parts.is_empty()).then(|| format!("{}: {}", config.letter(), parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn the_median_run_of_each_configuration_is_reported() {
        let run = |config, us: Option<f64>| RunResult {
            config,
            load: "qos1-256".into(),
            error: us.is_none().then(|| "failed".into()),
            metrics: us.map(|us| Metrics {
                broker_us_per_msg: us,
                ingest_per_s: 100.0 - us,
                ..Metrics::default()
            }),
        };
        let runs = [
            run(Config::C, Some(7.5)),
            run(Config::A, Some(4.0)),
            run(Config::F, None),
            run(Config::C, Some(6.0)),
            run(Config::A, None),
            run(Config::C, Some(9.0)),
        ];
        let runs: Vec<&RunResult> = runs.iter().collect();
        let by_cpu: Vec<_> = median_runs(&runs, true)
            .iter()
            .map(|r| (r.config, r.metrics.as_ref().map(|m| m.broker_us_per_msg)))
            .collect();
        assert_eq!(
            by_cpu,
            [
                (Config::C, Some(7.5)),
                (Config::A, Some(4.0)),
                (Config::F, None)
            ]
        );
        // At saturation the median is taken by rate: the same run here, by construction.
        let by_rate = median_runs(&runs, false);
        assert_eq!(by_rate[0].metrics.as_ref().unwrap().ingest_per_s, 92.5);
    }

    #[test]
    fn the_owner_table_has_a_column_per_profiled_configuration() {
        let run = |config, owners: &[(&str, f64)]| RunResult {
            config,
            load: "qos1-256".into(),
            error: None,
            metrics: Some(Metrics {
                broker_owners_us_per_msg: owners
                    .iter()
                    .map(|(o, us)| (o.to_string(), *us))
                    .collect(),
                ..Metrics::default()
            }),
        };
        let runs = [
            run(Config::A, &[("broker", 3.5), ("librdkafka", 0.0)]),
            run(Config::B, &[]),
            run(Config::C, &[("broker", 3.6), ("librdkafka", 2.0)]),
        ];
        let mut out = String::new();
        owners_table(&mut out, &runs.iter().collect::<Vec<_>>());
        let lines: Vec<&str> = out.lines().skip(1).collect();
        let cells = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
        assert_eq!(
            cells(0)[cells(0).len() - 2..],
            ["a", "c"],
            "b was not profiled"
        );
        assert_eq!(cells(1), ["broker", "3.50", "3.60"]);
        assert_eq!(cells(2), ["librdkafka", "0.00", "2.00"]);
        assert_eq!(cells(3)[cells(3).len() - 2..], ["3.50", "5.60"]);
    }

    #[test]
    fn thousands() {
        assert_eq!(int(0.0), "0");
        assert_eq!(int(999.4), "999");
        assert_eq!(int(229_014.0), "229,014");
        assert_eq!(int(1_234_567.0), "1,234,567");
    }
}
