//! The running bridges: every enabled bridge's entries with their producers, ledgers and
//! transform pools, and the topic tree that routes each publish to its entries.

mod dead_letter;
mod entry;
pub(crate) mod handover;
mod modules;
mod publish;
mod reload;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use smallvec::SmallVec;

pub use entry::Entry;
pub use modules::Modules;
pub use publish::PublishInfo;
pub use reload::Retired;

use crate::ack::{AckFailure, AckWait};
use crate::config::{BridgeConfig, BufferMode, ConfigError, PluginConfig, ProducerPool};
use crate::kafka::producers::too_many_producers;
use crate::kafka::{client_stats, Inflight, Ledger, Producers, Summary};
use crate::observe::{EntryStats, Histograms, LogLimiter, Outcome, Snapshot};
use crate::route::Routes;
use crate::spool::Spool;
use crate::transform::TransformPool;
pub(crate) use handover::Handover;
use modules::{entry_label, metrics_label};

/// Every enabled bridge of a started plugin.
pub struct Pipeline {
    bridges: Vec<Bridge>,
    entries: Vec<Entry>,
    routes: Routes,
}

struct Bridge {
    index: usize,
    config: BridgeConfig,
    shared: Shared,
    /// Its entries in `Pipeline::entries`.
    entries: Range<usize>,
}

/// What the entries of a bridge share: the in-flight bound and, in disk mode, the spool.
#[derive(Clone)]
struct Shared {
    inflight: Arc<Inflight>,
    spool: Option<Arc<Spool>>,
}

impl Shared {
    /// A new bound, and the bridge's spool opened when it is in disk mode.
    fn open((bi, b): (usize, &BridgeConfig)) -> Result<Shared, ConfigError> {
        let (max_messages, max_bytes) = limits(b);
        let spool = match b.buffer.mode {
            BufferMode::Memory => None,
            BufferMode::Disk => {
                let label = format!("bridge \"{}\"", b.name);
                if b.active_properties()
                    .any(|(k, _)| k == "message.timeout.ms")
                {
                    ::log::info!("{label}: properties.\"message.timeout.ms\" does not apply in disk mode: spooled records wait for Kafka without a timeout");
                }
                let spool = Spool::open(&b.name, label, &b.buffer)
                    .map_err(|e| ConfigError::at((bi, &b.name), None, e.field, e.problem))?;
                Some(spool)
            }
        };
        Ok(Shared {
            inflight: Arc::new(Inflight::new(max_messages, max_bytes)),
            spool,
        })
    }
}

/// One running bridge, borrowed for a scrape.
pub struct BridgeView<'a> {
    pub name: &'a str,
    pub inflight: &'a Inflight,
    pub spool: Option<&'a Spool>,
    pub entries: &'a [Entry],
    /// librdkafka's statistics interval, which is also the window `/health` calls
    /// "recent".
    pub stats_interval: Duration,
}

impl BridgeView<'_> {
    /// The latest librdkafka statistics of each of the bridge's producers (shared
    /// producers once).
    pub fn producer_statistics(&self) -> impl Iterator<Item = Summary> + '_ {
        distinct_producers(self.entries).flat_map(|p| p.statistics())
    }
}

/// The producers of `entries`, each once: an entry's own, or the ones all entries of a
/// bridge share (which are the same for consecutive entries).
fn distinct_producers(entries: &[Entry]) -> impl Iterator<Item = &Arc<Producers>> {
    entries
        .iter()
        .enumerate()
        .filter(|(i, e)| *i == 0 || !Arc::ptr_eq(&entries[i - 1].producers, &e.producers))
        .map(|(_, e)| &e.producers)
}

impl Pipeline {
    /// Creates producers and instance pools for every enabled bridge.
    pub async fn start(
        config: &PluginConfig,
        node_id: u64,
        modules: &Modules,
        histograms: &Histograms,
    ) -> Result<Pipeline, ConfigError> {
        if let Some(warning) = too_many_producers(config) {
            log::warn!("{}: {warning}", crate::PLUGIN_NAME);
        }
        let build = Build {
            node_id,
            modules,
            histograms,
        };
        let mut bridges = Vec::new();
        let mut entries = Vec::new();
        for (bi, b) in config.enabled_bridges() {
            let shared = Shared::open((bi, b))?;
            let first = entries.len();
            let stats = b.entries.iter().map(|_| Arc::default()).collect();
            entries.extend(build.bridge((bi, b), &shared, stats, None).await?);
            bridges.push(Bridge {
                index: bi,
                config: b.clone(),
                shared,
                entries: first..entries.len(),
            });
        }
        warm_up(entries.iter()).await;
        let pipeline = Pipeline::from_parts(bridges, entries)?;
        pipeline.aim_pumps();
        Ok(pipeline)
    }

    /// Points every spool's pump at its bridge's entries (starting it the first time).
    fn aim_pumps(&self) {
        for b in &self.bridges {
            if let Some(spool) = &b.shared.spool {
                let entries = &self.entries[b.entries.clone()];
                spool.aim(entries.iter().map(Entry::target).collect());
            }
        }
    }

    /// The pipeline over built bridges and entries, with its topic tree.
    fn from_parts(bridges: Vec<Bridge>, entries: Vec<Entry>) -> Result<Pipeline, ConfigError> {
        let filters = entries
            .iter()
            .enumerate()
            .map(|(id, e)| (id, e.config.local.topic_filter.as_str()));
        let routes = Routes::new(filters).map_err(ConfigError::file)?;
        Ok(Pipeline {
            bridges,
            entries,
            routes,
        })
    }

    /// Whether a publish may be refused: some entry holds the ack (ack mode, or the
    /// spool in disk mode), so a failed record can turn into a refused PUBACK.
    pub fn may_refuse(&self) -> bool {
        self.entries.iter().any(Entry::holds_the_ack)
    }

    /// The entries whose topic filter matches, in configuration order.
    #[inline]
    pub fn route(&self, topic: &str) -> SmallVec<[&Entry; 8]> {
        let mut ids = SmallVec::<[usize; 8]>::new();
        self.routes.matches(topic, &mut ids);
        ids.into_iter().map(|id| &self.entries[id]).collect()
    }

    /// Forwards one publish through the entries it matched. `ack` is set for a QoS 1/2
    /// publish; its ack-mode entries' records are then waited for.
    pub async fn forward(
        &self,
        entries: &[&Entry],
        p: &PublishInfo<'_>,
        ack: bool,
    ) -> Result<(), AckFailure> {
        let mut wait = AckWait::default();
        for e in entries {
            let wait = (ack && e.holds_the_ack()).then_some(&mut wait);
            e.forward(p, wait).await;
        }
        wait.wait().await
    }

    /// Flushes every producer (up to each bridge's `shutdown_timeout`) and purges what
    /// is left, so that every record ends counted, or stays spooled in disk mode.
    /// Blocks; run it off the async threads (but within the runtime).
    pub fn shut_down(&self) {
        for b in &self.bridges {
            if let Some(spool) = &b.shared.spool {
                tokio::runtime::Handle::current().block_on(spool.stop_pump());
            }
            let entries = &self.entries[b.entries.clone()];
            for p in distinct_producers(entries) {
                p.shut_down(b.config.shutdown_timeout);
            }
            if let Some(spool) = &b.shared.spool {
                spool.close();
            }
            for e in entries {
                e.ledger.fail_waiting_acks();
                let s = e.ledger.stats().snapshot();
                let outcomes: Vec<String> = Outcome::ALL
                    .iter()
                    .map(|o| format!("{} {}", o.as_str(), s.get(*o)))
                    .collect();
                log::info!(
                    "{}: stopped; {}, in flight {}",
                    e.ledger.label(),
                    outcomes.join(", "),
                    s.in_flight()
                );
            }
        }
    }

    /// The bridges as `/metrics` and `/health` read them, at scrape time.
    pub fn bridges(&self) -> impl Iterator<Item = BridgeView<'_>> {
        self.bridges.iter().map(|b| BridgeView {
            name: &b.config.name,
            inflight: &b.shared.inflight,
            spool: b.shared.spool.as_deref(),
            entries: &self.entries[b.entries.clone()],
            stats_interval: client_stats::interval(&b.config),
        })
    }

    pub fn to_json(&self) -> Value {
        Value::Array(self.bridges.iter().map(|b| self.bridge_json(b)).collect())
    }

    fn bridge_json(&self, b: &Bridge) -> Value {
        let entries = &self.entries[b.entries.clone()];
        let totals = entries
            .iter()
            .map(|e| e.ledger.stats().snapshot())
            .fold(Snapshot::default(), |a, s| a + s);
        json!({
            "name": b.config.name,
            "index": b.index,
            "servers": b.config.servers(),
            "inflight": b.shared.inflight.to_json(),
            "spool": b.shared.spool.as_ref().map(|s| s.to_json()),
            "stats": totals.to_json(),
            "entries": entries.iter().map(Entry::to_json).collect::<Vec<_>>(),
        })
    }
}

/// How long new producers may take to connect before the pipeline goes live anyway: a
/// Kafka that is down must not keep the broker from starting.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects the entries' producers (each once), all at once, before any publish
/// reaches them. Otherwise the first burst fills the in-flight bound while they
/// connect, and the seed's `queue_timeout = "0m"` drops what does not fit. The
/// metadata they fetch gives the partition counts that let keyed records of the
/// entries' constant topics be routed by partition (`kafka/partitions.rs`).
async fn warm_up<'a>(entries: impl Iterator<Item = &'a Entry>) {
    let mut seen: Vec<&Arc<Producers>> = Vec::new();
    let mut tasks = Vec::new();
    for e in entries {
        if seen.iter().any(|p| Arc::ptr_eq(p, &e.producers)) {
            continue;
        }
        seen.push(&e.producers);
        let producers = e.producers.clone();
        let label = e.ledger.label().to_owned();
        tasks.push(tokio::task::spawn_blocking(move || {
            if let Err(err) = producers.warm_up(WARM_UP_TIMEOUT) {
                log::warn!("{label}: Kafka did not answer within {WARM_UP_TIMEOUT:?} ({err}); records wait for it in librdkafka");
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// A bridge's in-flight bound: `max_inflight_messages` and `max_inflight_bytes`.
fn limits(b: &BridgeConfig) -> (usize, usize) {
    let max_bytes = usize::try_from(b.max_inflight_bytes).unwrap_or(usize::MAX);
    (b.max_inflight_messages, max_bytes)
}

/// What entries are built from, at start and at a reload.
struct Build<'a> {
    node_id: u64,
    modules: &'a Modules,
    histograms: &'a Histograms,
}

impl Build<'_> {
    /// New entries for every entry of `b`, with new producers: each entry its own, or
    /// the bridge's shared ones (`producer_pool`). `stats` are fresh, or predecessors'
    /// whose counts carry on; `handover` holds their records back until the producers
    /// they replace drained.
    async fn bridge(
        &self,
        (bi, b): (usize, &BridgeConfig),
        shared: &Shared,
        stats: Vec<Arc<EntryStats>>,
        handover: Option<Arc<Handover>>,
    ) -> Result<Vec<Entry>, ConfigError> {
        let mut entries = Vec::with_capacity(b.entries.len());
        if b.producer_pool == ProducerPool::Entry {
            for (ei, stats) in stats.into_iter().enumerate() {
                let h = handover.clone();
                entries.push(self.entry((bi, b), ei, shared, stats, h).await?);
            }
            return Ok(entries);
        }
        let ledgers: Vec<Arc<Ledger>> = stats
            .into_iter()
            .enumerate()
            .map(|(ei, stats)| self.ledger(b, ei, ei, shared, stats))
            .collect();
        let producers = Producers::create(b, self.node_id, None, ledgers.clone())
            .map_err(|e| ConfigError::at((bi, &b.name), None, "properties", e))?;
        let producers = Arc::new(producers);
        for (ei, ledger) in ledgers.into_iter().enumerate() {
            let transform = self.pool((bi, b), ei).await?;
            let p = producers.clone();
            entries.push(self.assemble(b, ei, ledger, p, transform, handover.clone()));
        }
        Ok(entries)
    }

    /// A new entry with its own ledger and producers and, when it has a transform, its
    /// pool.
    async fn entry(
        &self,
        (bi, b): (usize, &BridgeConfig),
        ei: usize,
        shared: &Shared,
        stats: Arc<EntryStats>,
        handover: Option<Arc<Handover>>,
    ) -> Result<Entry, ConfigError> {
        let ledger = self.ledger(b, ei, 0, shared, stats);
        let producers = Producers::create(b, self.node_id, Some(ei), vec![ledger.clone()])
            .map_err(|e| ConfigError::at((bi, &b.name), Some(ei), "properties", e))?;
        let transform = self.pool((bi, b), ei).await?;
        Ok(self.assemble(b, ei, ledger, Arc::new(producers), transform, handover))
    }

    /// The ledger of entry `ei`, at `position` among its producers' ledgers.
    fn ledger(
        &self,
        b: &BridgeConfig,
        ei: usize,
        position: usize,
        shared: &Shared,
        stats: Arc<EntryStats>,
    ) -> Arc<Ledger> {
        let h = self
            .histograms
            .for_entry(&b.name, &metrics_label(ei, &b.entries[ei]));
        Arc::new(Ledger::new(
            entry_label(&b.name, ei),
            position,
            stats,
            shared.inflight.clone(),
            h.delivery_latency,
            shared.spool.clone(),
        ))
    }

    /// The entry's instance pool, its instances created (and `init` run) now.
    async fn pool(
        &self,
        (bi, b): (usize, &BridgeConfig),
        ei: usize,
    ) -> Result<Option<Arc<TransformPool>>, ConfigError> {
        let Some(module) = self.modules.by_entry.get(&(bi, ei)) else {
            return Ok(None);
        };
        let pool = TransformPool::new(module.clone()).await.map_err(|f| {
            let problem = format!(
                "module {} could not be instantiated: {f}",
                module.path().display()
            );
            ConfigError::at((bi, &b.name), Some(ei), "transform.module", problem)
        })?;
        Ok(Some(Arc::new(pool)))
    }

    /// An entry of configuration `b.entries[ei]` over existing parts.
    fn assemble(
        &self,
        b: &BridgeConfig,
        ei: usize,
        ledger: Arc<Ledger>,
        producers: Arc<Producers>,
        transform: Option<Arc<TransformPool>>,
        handover: Option<Arc<Handover>>,
    ) -> Entry {
        let config = b.entries[ei].clone();
        let h = self
            .histograms
            .for_entry(&b.name, &metrics_label(ei, &config));
        let topic = config
            .remote
            .topic
            .constant()
            .and_then(|t| producers.track(t));
        Entry {
            transform_duration: transform.is_some().then_some(h.transform_duration),
            index: ei,
            bridge_name: b.name.as_str().into(),
            config,
            ledger,
            producers,
            topic,
            transform,
            handover,
            transform_log: LogLimiter::default(),
        }
    }
}
