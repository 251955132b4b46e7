//! The running bridges: every enabled bridge's entries with their ledgers, producers and
//! transform pools, and the topic tree that routes each publish to its entries. Built in
//! `build.rs`, changed in place by `reload.rs`, taken down by `retire.rs`.

mod build;
mod dead_letter;
mod encoded;
mod entry;
mod publish;
mod reload;
mod retire;
mod running;
mod shaped;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use smallvec::SmallVec;

pub use entry::Entry;
pub use publish::PublishInfo;
pub use retire::Retired;
pub use running::Running;

use crate::config::BridgeConfig;
use crate::delivery::{AckFailure, AckWait, Inflight};
use crate::kafka::{client_stats, Producers, Summary};
use crate::observe::Snapshot;
use crate::route::Routes;
use crate::spool::Spool;
use build::Shared;

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
        .filter(|(i, e)| *i == 0 || !Arc::ptr_eq(entries[i - 1].producers(), e.producers()))
        .map(|(_, e)| e.producers())
}

impl Pipeline {
    /// The pipeline over built bridges and entries, with its topic tree.
    fn from_parts(
        bridges: Vec<Bridge>,
        entries: Vec<Entry>,
    ) -> Result<Pipeline, crate::config::ConfigError> {
        let filters = entries
            .iter()
            .enumerate()
            .map(|(id, e)| (id, e.config.local.topic_filter.as_str()));
        let routes = Routes::new(filters).map_err(crate::config::ConfigError::file)?;
        Ok(Pipeline {
            bridges,
            entries,
            routes,
        })
    }

    /// Points every spool's pump at its bridge's entries (starting it the first time).
    fn aim_pumps(&self) {
        for b in &self.bridges {
            if let Some(pump) = &b.shared.pump {
                let entries = &self.entries[b.entries.clone()];
                pump.aim(entries.iter().map(Entry::target).collect());
            }
        }
    }

    /// Whether a publish may be refused: some entry holds the acknowledgement (its
    /// `remote.ack` is above `"received"`), so a record that did not get where its level
    /// needs it turns into a refused PUBACK.
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
    /// publish; what its entries' levels wait for is then waited for.
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

    /// The bridges as `/metrics` and `/health` read them, at scrape time.
    pub fn bridges(&self) -> impl Iterator<Item = BridgeView<'_>> {
        self.bridges.iter().map(|b| BridgeView {
            name: &b.config.name,
            inflight: &b.shared.parts.inflight,
            spool: b.shared.parts.disk.as_ref().map(|d| &*d.spool),
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
            .map(|e| e.stats().snapshot())
            .fold(Snapshot::default(), |a, s| a + s);
        let spool = b.shared.parts.disk.as_ref().map(|d| d.spool.to_json());
        json!({
            "name": b.config.name,
            "index": b.index,
            "servers": b.config.servers(),
            "buffer": b.config.buffer.mode.as_str(),
            "inflight": b.shared.parts.inflight.to_json(),
            "spool": spool,
            "stats": totals.to_json(),
            "entries": entries.iter().map(Entry::to_json).collect::<Vec<_>>(),
        })
    }
}
