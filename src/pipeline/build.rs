//! Building the pipeline's parts: a bridge's shared parts (in-flight bound, pending
//! acknowledgements, spool and pump), each entry's ledger, producers and transform pool.
//! Used at start and, for what a reload changes, by `reload.rs`.

use std::sync::Arc;
use std::time::Duration;

use super::{Bridge, Entry, Pipeline};
use crate::config::{
    entry_label, BridgeConfig, BufferMode, ConfigError, PluginConfig, ProducerPool,
};
use crate::delivery::{
    self, Acks, Disk, Handover, Inflight, Ledger, Ledgers, Outlet, Policy, Pump,
};
use crate::kafka::producers::too_many_producers;
use crate::kafka::Producers;
use crate::observe::{EntryStats, Histograms, LogLimiter};
use crate::schema::Schemas;
use crate::spool::Spool;
use crate::transform::{Modules, StateStore, TransformPool};

/// What the entries of a bridge share; a reload keeps it for a bridge it keeps.
#[derive(Clone)]
pub(super) struct Shared {
    pub parts: delivery::Bridge,
    /// The spool's pump, in disk mode.
    pub pump: Option<Arc<Pump>>,
}

impl Shared {
    /// A new bound and registry, and the bridge's spool and pump when it is in disk mode.
    pub fn open((bi, b): (usize, &BridgeConfig)) -> Result<Shared, ConfigError> {
        let (max_messages, max_bytes) = limits(b);
        let (disk, pump) = match b.buffer.mode {
            BufferMode::Memory => (None, None),
            BufferMode::Disk => {
                let label = format!("bridge \"{}\"", b.name);
                if b.active_properties()
                    .any(|(k, _)| k == "message.timeout.ms")
                {
                    log::info!("{label}: properties.\"message.timeout.ms\" does not apply in disk mode: spooled records wait for Kafka without a timeout");
                }
                let spool = Spool::open(&b.name, label, &b.buffer)
                    .map_err(|e| ConfigError::at((bi, &b.name), None, e.field, e.problem))?;
                let (pump, requeue) = Pump::new(spool.clone());
                (Some(Disk { spool, requeue }), Some(pump))
            }
        };
        let parts = delivery::Bridge {
            inflight: Arc::new(Inflight::new(max_messages, max_bytes)),
            acks: Arc::new(Acks::default()),
            disk,
        };
        Ok(Shared { parts, pump })
    }
}

/// A bridge's in-flight bound: `max_inflight_messages` and `max_inflight_bytes`.
pub(super) fn limits(b: &BridgeConfig) -> (usize, usize) {
    let max_bytes = usize::try_from(b.max_inflight_bytes).unwrap_or(usize::MAX);
    (b.max_inflight_messages, max_bytes)
}

impl Pipeline {
    /// Creates producers and instance pools for every enabled bridge.
    pub async fn start(
        config: &PluginConfig,
        node_id: u64,
        modules: &Modules,
        schemas: &Schemas,
        histograms: &Histograms,
    ) -> Result<Pipeline, ConfigError> {
        if let Some(warning) = too_many_producers(config) {
            log::warn!("{}: {warning}", crate::PLUGIN_NAME);
        }
        let build = Build {
            node_id,
            modules,
            schemas,
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
}

/// How long new producers may take to connect before the pipeline goes live anyway: a
/// Kafka that is down must not keep the broker from starting.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects the entries' producers (each once), all at once, before any publish
/// reaches them. Otherwise the first burst fills the in-flight bound while they
/// connect, and the seed's `queue_timeout = "0m"` drops what does not fit. The
/// metadata they fetch gives the partition counts that let keyed records of the
/// entries' constant topics be routed by partition (`kafka/partitions.rs`).
pub(super) async fn warm_up<'a>(entries: impl Iterator<Item = &'a Entry>) {
    let mut seen: Vec<&Arc<Producers>> = Vec::new();
    let mut tasks = Vec::new();
    for e in entries {
        if seen.iter().any(|p| Arc::ptr_eq(p, e.producers())) {
            continue;
        }
        seen.push(e.producers());
        let producers = e.producers().clone();
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

/// What entries are built from, at start and at a reload.
pub(super) struct Build<'a> {
    pub node_id: u64,
    pub modules: &'a Modules,
    pub schemas: &'a Schemas,
    pub histograms: &'a Histograms,
}

impl Build<'_> {
    /// New entries for every entry of `b`, with new producers: each entry its own, or
    /// the bridge's shared ones (`producer_pool`). `stats` are fresh, or predecessors'
    /// whose counts carry on; `handover` holds their records back until the producers
    /// they replace drained.
    pub async fn bridge(
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
        let reports = Arc::new(Ledgers(ledgers.clone()));
        let producers = Producers::create(b, self.node_id, None, reports)
            .map_err(|e| ConfigError::at((bi, &b.name), None, "properties", e))?;
        let producers = Arc::new(producers);
        for (ei, ledger) in ledgers.into_iter().enumerate() {
            let transform = self.pool((bi, b), ei, None).await?;
            let p = producers.clone();
            entries.push(self.assemble((bi, b), ei, ledger, p, transform, handover.clone()));
        }
        Ok(entries)
    }

    /// A new entry with its own ledger and producers and, when it has a transform, its
    /// pool.
    pub async fn entry(
        &self,
        (bi, b): (usize, &BridgeConfig),
        ei: usize,
        shared: &Shared,
        stats: Arc<EntryStats>,
        handover: Option<Arc<Handover>>,
    ) -> Result<Entry, ConfigError> {
        let ledger = self.ledger(b, ei, 0, shared, stats);
        let reports = Arc::new(Ledgers(vec![ledger.clone()]));
        let producers = Producers::create(b, self.node_id, Some(ei), reports)
            .map_err(|e| ConfigError::at((bi, &b.name), Some(ei), "properties", e))?;
        let transform = self.pool((bi, b), ei, None).await?;
        Ok(self.assemble(
            (bi, b),
            ei,
            ledger,
            Arc::new(producers),
            transform,
            handover,
        ))
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
        let label = b.entries[ei].metrics_label(ei);
        let h = self.histograms.for_entry(&b.name, &label);
        let label = entry_label(&b.name, ei);
        let ledger = Ledger::new(label, position, stats, &shared.parts, h.delivery_latency);
        Arc::new(ledger)
    }

    /// The entry's instance pool, its instances created (and `init` run) now, over
    /// `store` (a reload's carried-over state) or a new state store.
    pub async fn pool(
        &self,
        (bi, b): (usize, &BridgeConfig),
        ei: usize,
        store: Option<Arc<StateStore>>,
    ) -> Result<Option<Arc<TransformPool>>, ConfigError> {
        let Some(module) = self.modules.get(bi, ei) else {
            return Ok(None);
        };
        let pool = match store {
            Some(store) => TransformPool::carrying(module.clone(), store).await,
            None => TransformPool::new(module.clone()).await,
        };
        let pool = pool.map_err(|f| {
            let code = module.code();
            let problem = format!(
                "{} {} could not start: {f}",
                code.kind(),
                code.path().display()
            );
            ConfigError::at((bi, &b.name), Some(ei), code.field(), problem)
        })?;
        Ok(Some(Arc::new(pool)))
    }

    /// An entry of configuration `b.entries[ei]` over existing parts.
    pub fn assemble(
        &self,
        (bi, b): (usize, &BridgeConfig),
        ei: usize,
        ledger: Arc<Ledger>,
        producers: Arc<Producers>,
        transform: Option<Arc<TransformPool>>,
        handover: Option<Arc<Handover>>,
    ) -> Entry {
        let config = b.entries[ei].clone();
        let h = self
            .histograms
            .for_entry(&b.name, &config.metrics_label(ei));
        let topic = config
            .remote
            .topic
            .constant()
            .and_then(|t| producers.track(t));
        let policy = Policy {
            level: config.remote.ack_level(b.buffer.mode),
            queue_timeout: config.remote.queue_timeout,
        };
        Entry {
            transform_duration: transform.is_some().then_some(h.transform_duration),
            index: ei,
            bridge_name: b.name.as_str().into(),
            config,
            ledger,
            outlet: Outlet {
                producers,
                topic,
                handover,
            },
            policy,
            transform,
            schemas: self.schemas.get(bi, ei),
            transform_log: LogLimiter::default(),
            template_log: LogLimiter::default(),
            schema_log: LogLimiter::default(),
        }
    }
}
