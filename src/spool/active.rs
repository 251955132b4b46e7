//! The active segment's file, appended to with positioned writes (`pwrite`). When a
//! write returns, its bytes are in the kernel's page cache: a process that dies right
//! after keeps them. A write is a system call, but no page of the file is mapped, so
//! the appender never takes a page fault on the first write to a page (1.2 µs per
//! message in the broker, on the async workers), the spool's pages are not in the
//! broker's RSS, and a sync need not write-protect mapped pages on every core
//! (docs/spool.md, "Why positioned writes").

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

/// A segment file being appended to.
pub struct Active {
    /// Shared with the segment's bookkeeping, which syncs it.
    file: Arc<File>,
    /// The file's size, allocated when it was created.
    size: u64,
    /// Bytes written so far.
    len: u64,
}

impl Active {
    /// The start of `file`, which is `size` bytes long and empty.
    pub fn new(file: Arc<File>, size: u64) -> Active {
        Active { file, size, len: 0 }
    }

    /// Bytes that still fit.
    pub fn room(&self) -> u64 {
        self.size - self.len
    }

    /// Writes `bytes` after what was written. The caller made sure they fit
    /// ([`Active::room`]), so the file's allocated blocks take them.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        debug_assert!(bytes.len() as u64 <= self.room());
        self.file.write_all_at(bytes, self.len)?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fill_the_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let size = (2 << 20) + (64 << 10);
        let file = File::create(&path).unwrap();
        file.set_len(size).unwrap();
        let mut active = Active::new(Arc::new(file), size);
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1_000_003).collect();
        let mut written = Vec::new();
        while active.room() > 0 {
            let n = chunk.len().min(active.room() as usize);
            active.write(&chunk[..n]).unwrap();
            written.extend_from_slice(&chunk[..n]);
        }
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(
            on_disk, written,
            "every byte, in order, up to the file's size"
        );
    }
}
