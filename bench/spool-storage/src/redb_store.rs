//! Candidate 2: redb, a copy-on-write B-tree in a single file.
//!
//! Each spool commit is one write transaction with `Durability::Immediate`
//! (redb's default, set explicitly here): when `commit()` returns the data
//! has been `fsync`ed (redb calls `File::sync_data`). Left at their defaults:
//! 1-phase commit with checksums (not 2-phase) and quick-repair off, so an
//! unclean shutdown makes the next open verify and rebuild the allocator
//! state by walking the whole file.

use std::io;
use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::workload::{Options, Spool};

/// seq → value; redb's u64 keys sort numerically, so iteration is FIFO order.
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    fn open_inner(dir: &Path, visit: &mut dyn FnMut(u64, &[u8])) -> Result<Self, redb::Error> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join("spool.redb"))?;
        // Make sure the table exists, so a fresh store reads as empty.
        let txn = db.begin_write()?;
        txn.open_table(RECORDS)?;
        txn.commit()?;

        let txn = db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        for entry in table.iter()? {
            let (seq, value) = entry?;
            visit(seq.value(), value.value());
        }
        Ok(RedbStore { db })
    }

    fn commit_inner(
        &mut self,
        first_seq: u64,
        values: &[Vec<u8>],
        acked: &[u64],
    ) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(RECORDS)?;
            for (i, value) in values.iter().enumerate() {
                table.insert(first_seq + i as u64, value.as_slice())?;
            }
            for seq in acked {
                table.remove(seq)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl Spool for RedbStore {
    const NAME: &'static str = "redb";

    fn open(dir: &Path, _opts: &Options, visit: &mut dyn FnMut(u64, &[u8])) -> io::Result<Self> {
        Self::open_inner(dir, visit).map_err(io::Error::other)
    }

    fn commit(&mut self, first_seq: u64, values: &[Vec<u8>], acked: &[u64]) -> io::Result<()> {
        self.commit_inner(first_seq, values, acked)
            .map_err(io::Error::other)
    }
}
