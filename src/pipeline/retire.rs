//! Taking parts of the pipeline down: what a reload replaced or dropped, and at a stop,
//! everything. One path for both: the pumps of retired bridges stop first, every retired
//! set of producers drains at once (each up to its bridge's `shutdown_timeout`) and
//! purges what is left, so that every record ends counted or stays spooled; successors
//! waiting for a drain may then send; retired bridges' spools close last, and the
//! publishes still waiting on them are refused.

use std::sync::Arc;
use std::time::Duration;

use super::build::Shared;
use super::{Entry, Pipeline};
use crate::delivery::{Handover, Ledger};
use crate::kafka::Producers;
use crate::observe::Outcome;

/// What a reload (or a stop) took out of the running pipeline, to drain once no publish
/// uses the old pipeline any more.
#[derive(Default)]
pub struct Retired {
    entries: Vec<RetiredEntry>,
    /// Bridges no longer running: their pumps stop before the drain, their spools close
    /// after it.
    bridges: Vec<Shared>,
    /// What the log lines say happened.
    reason: &'static str,
}

struct RetiredEntry {
    ledger: Arc<Ledger>,
    producers: Arc<Producers>,
    shutdown_timeout: Duration,
    /// The entry that succeeds this one, waiting for the drain.
    successor: Option<Arc<Handover>>,
}

impl Retired {
    pub(super) fn for_reload() -> Retired {
        Retired {
            reason: "producers replaced, drained",
            ..Retired::default()
        }
    }

    /// Retires `e`'s producers; `successor` waits until they drained.
    pub(super) fn entry(
        &mut self,
        e: &Entry,
        shutdown_timeout: Duration,
        successor: Option<Arc<Handover>>,
    ) {
        self.entries.push(RetiredEntry {
            ledger: e.ledger.clone(),
            producers: e.producers().clone(),
            shutdown_timeout,
            successor,
        });
    }

    /// Retires a whole bridge's shared parts (its entries are retired one by one).
    pub(super) fn bridge(&mut self, shared: &Shared) {
        self.bridges.push(shared.clone());
    }

    /// Drains everything retired; blocks, so run it off the async threads (but within
    /// the runtime).
    pub fn drain(self) {
        let rt = tokio::runtime::Handle::current();
        for b in &self.bridges {
            if let Some(pump) = &b.pump {
                rt.block_on(pump.stop());
            }
        }
        // Entries of a bridge with shared producers retire the same producers.
        let mut groups: Vec<Vec<&RetiredEntry>> = Vec::new();
        for r in &self.entries {
            match groups
                .iter_mut()
                .find(|g| Arc::ptr_eq(&g[0].producers, &r.producers))
            {
                Some(g) => g.push(r),
                None => groups.push(vec![r]),
            }
        }
        std::thread::scope(|s| {
            for group in &groups {
                s.spawn(|| drain_group(group, self.reason));
            }
        });
        for b in &self.bridges {
            if let Some(disk) = &b.parts.disk {
                disk.spool.close();
            }
            b.parts.acks.fail_all("the bridge stopped");
        }
    }
}

/// Drains one set of producers, then logs the counts of each entry that used them and
/// lets its successor send.
fn drain_group(group: &[&RetiredEntry], reason: &str) {
    let timeout = group
        .iter()
        .map(|r| r.shutdown_timeout)
        .max()
        .unwrap_or_default();
    group[0].producers.shut_down(timeout);
    for r in group {
        let s = r.ledger.stats().snapshot();
        let outcomes: Vec<String> = Outcome::ALL
            .iter()
            .map(|o| format!("{} {}", o.as_str(), s.get(*o)))
            .collect();
        log::info!(
            "{}: {reason}; {}, in flight {}",
            r.ledger.label(),
            outcomes.join(", "),
            s.in_flight()
        );
        if let Some(successor) = &r.successor {
            successor.drained();
        }
    }
}

impl Pipeline {
    /// Stops the pipeline: retires every bridge and drains it. Blocks; run it off the
    /// async threads (but within the runtime).
    pub fn shut_down(&self) {
        let mut retired = Retired {
            reason: "stopped",
            ..Retired::default()
        };
        for b in &self.bridges {
            retired.bridge(&b.shared);
            for e in &self.entries[b.entries.clone()] {
                retired.entry(e, b.config.shutdown_timeout, None);
            }
        }
        retired.drain();
    }
}
