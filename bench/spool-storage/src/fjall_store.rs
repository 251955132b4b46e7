//! Candidate 3: fjall, an LSM-tree with a write-ahead journal.
//!
//! Each spool commit is one atomic `WriteBatch` committed with
//! `durability(Some(PersistMode::SyncData))`: the batch is appended to the
//! journal and the journal file is `fdatasync`ed before `commit()` returns.
//! Removals are tombstones; space is reclaimed by background compaction
//! (default leveled strategy, default 64 MiB memtables, default workers).

use std::io;
use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::workload::{Options, Spool};

pub struct FjallStore {
    db: Database,
    records: Keyspace,
}

/// Big-endian, so the LSM's byte order is sequence order.
fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

impl FjallStore {
    fn open_inner(dir: &Path, visit: &mut dyn FnMut(u64, &[u8])) -> fjall::Result<Self> {
        let db = Database::builder(dir).open()?;
        let records = db.keyspace("records", KeyspaceCreateOptions::default)?;
        for guard in records.iter() {
            let (k, v) = guard.into_inner()?;
            let seq = u64::from_be_bytes(k.as_ref().try_into().expect("8-byte keys"));
            visit(seq, &v);
        }
        Ok(FjallStore { db, records })
    }

    fn commit_inner(
        &mut self,
        first_seq: u64,
        values: &[Vec<u8>],
        acked: &[u64],
    ) -> fjall::Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        for (i, value) in values.iter().enumerate() {
            batch.insert(&self.records, key(first_seq + i as u64), value);
        }
        for &seq in acked {
            batch.remove(&self.records, key(seq));
        }
        batch.commit()
    }
}

impl Spool for FjallStore {
    const NAME: &'static str = "fjall";

    fn open(dir: &Path, _opts: &Options, visit: &mut dyn FnMut(u64, &[u8])) -> io::Result<Self> {
        Self::open_inner(dir, visit).map_err(io::Error::other)
    }

    fn commit(&mut self, first_seq: u64, values: &[Vec<u8>], acked: &[u64]) -> io::Result<()> {
        self.commit_inner(first_seq, values, acked)
            .map_err(io::Error::other)
    }
}
