//! A reload of the running pipeline. The new configuration is built next to the old
//! one, reusing every part it leaves unchanged, so that the switch is one swap of the
//! pipeline: a publish is handled wholly by the old one or wholly by the new one. What
//! the new pipeline no longer uses is retired, and drained after the swap so that every
//! record it holds ends counted.
//!
//! Bridges are matched by name and entries by topic filter. An entry keeps its ledger
//! (counters, ack slots) and producers while its bridge's client settings and its own
//! position are unchanged; otherwise it gets new producers, connected before the switch,
//! whose records wait for the old ones to drain (see [`Handover`]), and its counters
//! carry on.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::build::{limits, warm_up, Build, Shared};
use super::retire::Retired;
use super::{Bridge, Entry, Pipeline};
use crate::config::{BridgeConfig, BufferMode, ConfigError, PluginConfig, ProducerPool};
use crate::delivery::{Handover, Inflight};
use crate::kafka::producers::same_clients;
use crate::observe::Histograms;
use crate::schema::Schemas;
use crate::transform::Modules;

/// A new pipeline, built and not yet running.
pub struct Reloaded {
    pipeline: Pipeline,
    retired: Retired,
    changes: Changes,
    /// In-flight bounds shared with the old pipeline whose limits changed.
    limits: Vec<(Arc<Inflight>, (usize, usize))>,
}

/// What a reload changed: bridges by name, entries as `bridge/index:filter`.
#[derive(Debug, Default, Serialize)]
pub struct Changes {
    pub bridges_added: Vec<String>,
    pub bridges_removed: Vec<String>,
    /// Bridges whose producers were replaced: their client settings changed.
    pub bridges_reconnected: Vec<String>,
    pub entries_added: Vec<String>,
    pub entries_removed: Vec<String>,
    pub entries_changed: Vec<String>,
    pub entries_unchanged: usize,
}

impl Reloaded {
    /// Applies what the new pipeline shares with the old one (changed in-flight
    /// limits), and hands over the pipeline to swap in, what it retired, and what
    /// changed.
    pub fn commit(self) -> (Pipeline, Retired, Changes) {
        for (inflight, (max_messages, max_bytes)) in self.limits {
            inflight.set_limits(max_messages, max_bytes);
        }
        self.pipeline.aim_pumps();
        (self.pipeline, self.retired, self.changes)
    }
}

/// The new pipeline as it is being built.
struct Next {
    bridges: Vec<Bridge>,
    entries: Vec<Entry>,
    retired: Retired,
    changes: Changes,
    limits: Vec<(Arc<Inflight>, (usize, usize))>,
    /// Entries with new producers, or a new constant topic, by index: warmed up.
    fresh: Vec<usize>,
}

impl Pipeline {
    /// Builds the pipeline of `config` next to this one, reusing what is unchanged:
    /// new producers connect and new instances run their `init` now, so a failure
    /// refuses the reload with nothing changed.
    pub async fn reload(
        &self,
        config: &PluginConfig,
        node_id: u64,
        modules: &Modules,
        schemas: &Schemas,
        histograms: &Histograms,
    ) -> Result<Reloaded, ConfigError> {
        let build = Build {
            node_id,
            modules,
            schemas,
            histograms,
        };
        let mut next = Next {
            bridges: Vec::new(),
            entries: Vec::new(),
            retired: Retired::for_reload(),
            changes: Changes::default(),
            limits: Vec::new(),
            fresh: Vec::new(),
        };
        let mut carried = vec![false; self.entries.len()];
        for (bi, b) in config.enabled_bridges() {
            self.reload_bridge(&build, (bi, b), &mut next, &mut carried)
                .await?;
        }
        self.retire_removed(&carried, &mut next);
        warm_up(next.fresh.iter().map(|&i| &next.entries[i])).await;
        Ok(Reloaded {
            pipeline: Pipeline::from_parts(next.bridges, next.entries)?,
            retired: next.retired,
            changes: next.changes,
            limits: next.limits,
        })
    }

    async fn reload_bridge(
        &self,
        build: &Build<'_>,
        (bi, b): (usize, &BridgeConfig),
        next: &mut Next,
        carried: &mut [bool],
    ) -> Result<(), ConfigError> {
        let old = self.bridges.iter().find(|o| o.config.name == b.name);
        let shared = match old {
            Some(o) => {
                same_buffer(&o.config, (bi, b))?;
                next.limits
                    .push((o.shared.parts.inflight.clone(), limits(b)));
                o.shared.clone()
            }
            None => {
                next.changes.bridges_added.push(b.name.clone());
                Shared::open((bi, b))?
            }
        };
        let keep_clients = old.is_some_and(|o| same_clients(&o.config, b));
        if old.is_some() && !keep_clients {
            next.changes.bridges_reconnected.push(b.name.clone());
        }
        // Each new entry's predecessor: the old bridge's entry with the same filter.
        let prevs: Vec<Option<usize>> = b
            .entries
            .iter()
            .map(|e| {
                let same =
                    |&i: &usize| self.entries[i].config.local.topic_filter == e.local.topic_filter;
                old.and_then(|o| o.entries.clone().find(same))
            })
            .collect();
        let first = next.entries.len();
        let same_entries = old.is_some_and(|o| o.entries.len() == b.entries.len())
            && prevs
                .iter()
                .enumerate()
                .all(|(ei, p)| p.is_some_and(|i| self.entries[i].index == ei));
        let timeout = old.map_or(b.shutdown_timeout, |o| o.config.shutdown_timeout);
        if b.producer_pool == ProducerPool::Bridge && !(keep_clients && same_entries) {
            self.rebuild_shared(build, (bi, b), &prevs, &shared, timeout, next, carried)
                .await?;
        } else {
            for (ei, prev) in prevs.iter().enumerate() {
                let keep = keep_clients;
                let e = self
                    .reload_entry(
                        build,
                        (bi, b),
                        ei,
                        *prev,
                        keep,
                        &shared,
                        timeout,
                        next,
                        carried,
                    )
                    .await?;
                next.entries.push(e);
            }
        }
        next.bridges.push(Bridge {
            index: bi,
            config: b.clone(),
            shared,
            entries: first..next.entries.len(),
        });
        Ok(())
    }

    /// Entry `ei` of `b` (in the new pipeline), whose predecessor is `prev`.
    #[allow(clippy::too_many_arguments)]
    async fn reload_entry(
        &self,
        build: &Build<'_>,
        (bi, b): (usize, &BridgeConfig),
        ei: usize,
        prev: Option<usize>,
        keep_clients: bool,
        shared: &Shared,
        timeout: Duration,
        next: &mut Next,
        carried: &mut [bool],
    ) -> Result<Entry, ConfigError> {
        let label = format!("{}/{}", b.name, b.entries[ei].metrics_label(ei));
        let Some(i) = prev else {
            next.changes.entries_added.push(label);
            next.fresh.push(next.entries.len());
            return build.entry((bi, b), ei, shared, Arc::default(), None).await;
        };
        carried[i] = true;
        let prev = &self.entries[i];
        if keep_clients && prev.index == ei {
            let e = reuse(build, prev, (bi, b), ei).await?;
            if e.config.remote.topic != prev.config.remote.topic {
                // Its producers learn the new topic's partitions before its first record.
                next.fresh.push(next.entries.len());
            }
            match e.config == prev.config && same_pool(&e, prev) && same_schemas(&e, prev) {
                true => next.changes.entries_unchanged += 1,
                false => next.changes.entries_changed.push(label),
            }
            return Ok(e);
        }
        next.changes.entries_changed.push(label);
        next.fresh.push(next.entries.len());
        let handover = Arc::new(Handover::after(1));
        let stats = prev.ledger.stats().clone();
        let e = build
            .entry((bi, b), ei, shared, stats, Some(handover.clone()))
            .await?;
        next.retired.entry(prev, timeout, Some(handover));
        Ok(e)
    }

    /// Every entry of `b` on new shared producers, which send once all the producers
    /// they take records over from have drained (a key may come from any entry).
    #[allow(clippy::too_many_arguments)]
    async fn rebuild_shared(
        &self,
        build: &Build<'_>,
        (bi, b): (usize, &BridgeConfig),
        prevs: &[Option<usize>],
        shared: &Shared,
        timeout: Duration,
        next: &mut Next,
        carried: &mut [bool],
    ) -> Result<(), ConfigError> {
        let replaced = prevs.iter().flatten().count();
        let handover = (replaced > 0).then(|| Arc::new(Handover::after(replaced)));
        let stats = prevs
            .iter()
            .map(|p| p.map_or_else(Arc::default, |i| self.entries[i].ledger.stats().clone()))
            .collect();
        let entries = build
            .bridge((bi, b), shared, stats, handover.clone())
            .await?;
        for (ei, prev) in prevs.iter().enumerate() {
            let label = format!("{}/{}", b.name, b.entries[ei].metrics_label(ei));
            next.fresh.push(next.entries.len() + ei);
            match prev {
                None => next.changes.entries_added.push(label),
                Some(i) => {
                    carried[*i] = true;
                    next.changes.entries_changed.push(label);
                    let successor = handover.clone();
                    next.retired.entry(&self.entries[*i], timeout, successor);
                }
            }
        }
        next.entries.extend(entries);
        Ok(())
    }

    /// Retires the entries and bridges the new configuration no longer has.
    fn retire_removed(&self, carried: &[bool], next: &mut Next) {
        for b in &self.bridges {
            if !next.bridges.iter().any(|n| n.config.name == b.config.name) {
                next.changes.bridges_removed.push(b.config.name.clone());
                next.retired.bridge(&b.shared);
            }
            for i in b.entries.clone().filter(|&i| !carried[i]) {
                let e = &self.entries[i];
                let label = format!("{}/{}", b.config.name, e.metrics_label());
                next.changes.entries_removed.push(label);
                next.retired.entry(e, b.config.shutdown_timeout, None);
            }
        }
    }
}

/// The entry of `b.entries[ei]` over `prev`'s ledger and producers; its pool is
/// `prev`'s when the transform and its module's code are unchanged, else a new one,
/// which keeps `prev`'s state store when only the settings changed (same code).
async fn reuse(
    build: &Build<'_>,
    prev: &Entry,
    (bi, b): (usize, &BridgeConfig),
    ei: usize,
) -> Result<Entry, ConfigError> {
    let module = build.modules.get(bi, ei);
    let same_transform = prev.config.transform == b.entries[ei].transform;
    let transform = match (&prev.transform, module) {
        (Some(pool), Some(m)) if same_transform && pool.module().same_code(m) => Some(pool.clone()),
        (Some(pool), Some(m)) if pool.module().same_code(m) => {
            build.pool((bi, b), ei, Some(pool.store().clone())).await?
        }
        _ => build.pool((bi, b), ei, None).await?,
    };
    let (ledger, producers) = (prev.ledger.clone(), prev.producers().clone());
    let handover = prev.outlet.handover.clone();
    Ok(build.assemble((bi, b), ei, ledger, producers, transform, handover))
}

/// A running bridge keeps its buffer: its spool's directory stays locked and its
/// records keep their order only if a reload leaves `buffer` alone.
fn same_buffer(old: &BridgeConfig, (bi, b): (usize, &BridgeConfig)) -> Result<(), ConfigError> {
    let disk = old.buffer.mode == BufferMode::Disk || b.buffer.mode == BufferMode::Disk;
    if disk && old.buffer != b.buffer {
        let why = "changes take effect at a restart; the running bridge keeps its buffer";
        return Err(ConfigError::at((bi, &b.name), None, "buffer", why));
    }
    Ok(())
}

/// Whether `e` encodes with the schemas `prev` does: a reload that fetched a new
/// version, or a schema that was not available, changes the entry.
fn same_schemas(e: &Entry, prev: &Entry) -> bool {
    let ids = |e: &Entry| -> Vec<_> {
        e.schemas
            .slots()
            .map(|s| (s.encoder().map(|c| c.id()), s.version()))
            .collect()
    };
    ids(e) == ids(prev)
}

/// Whether `e` runs `prev`'s instance pool (or neither has one).
fn same_pool(e: &Entry, prev: &Entry) -> bool {
    match (&e.transform, &prev.transform) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}
