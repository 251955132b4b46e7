//! The active segment's file, written through shared mappings of it, one window at a
//! time. Bytes copied into a shared mapping are in the kernel's page cache at once: a
//! process that dies right after keeps them, with no system call per record. Mapping a
//! window at a time keeps the pages the broker has mapped (its RSS) to a window or two;
//! finished windows are unmapped by the syncer, off the appenders' lock.

use std::fs::File;
use std::io;

use memmap2::{MmapMut, MmapOptions};

/// Bytes mapped at a time: a multiple of every base page size Linux uses (4 to 64 KiB),
/// and small, because the touched pages of mapped windows count in the broker's RSS.
const WINDOW: u64 = 1 << 20;

/// A segment file being appended to.
pub struct Mapped {
    file: File,
    /// The file's size, allocated when it was created.
    size: u64,
    /// Bytes written so far.
    len: u64,
    /// The window being written: its offset in the file, and its mapping.
    window: (u64, MmapMut),
    /// Finished windows, for the syncer to unmap.
    retired: Vec<MmapMut>,
}

impl Mapped {
    /// Maps the start of `file`, which is `size` bytes long and empty.
    pub fn new(file: File, size: u64) -> io::Result<Mapped> {
        let window = (0, map(&file, 0, WINDOW.min(size))?);
        Ok(Mapped {
            file,
            size,
            len: 0,
            window,
            retired: Vec::new(),
        })
    }

    /// Bytes that still fit.
    pub fn room(&self) -> u64 {
        self.size - self.len
    }

    /// Copies `bytes` in after what was written, mapping the next windows as needed.
    /// The caller made sure they fit ([`Mapped::room`]).
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        debug_assert!(bytes.len() as u64 <= self.room());
        while !bytes.is_empty() {
            let start = self.window.0;
            let end = start + self.window.1.len() as u64;
            if self.len == end {
                let next = map(&self.file, end, WINDOW.min(self.size - end))?;
                let done = std::mem::replace(&mut self.window, (end, next));
                self.retired.push(done.1);
                continue;
            }
            let at = (self.len - start) as usize;
            let mapping = &mut self.window.1;
            let n = bytes.len().min(mapping.len() - at);
            mapping[at..at + n].copy_from_slice(&bytes[..n]);
            self.len += n as u64;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Takes over the mappings of a segment that was sealed, for the syncer to unmap.
    pub fn retire(&mut self, sealed: Mapped) {
        self.retired.extend(sealed.retired);
        self.retired.push(sealed.window.1);
    }

    /// The finished windows, to unmap.
    pub fn take_retired(&mut self) -> Vec<MmapMut> {
        std::mem::take(&mut self.retired)
    }
}

/// A shared, writable mapping of `len` bytes of `file` at `offset` (page-aligned).
#[allow(unsafe_code)]
fn map(file: &File, offset: u64, len: u64) -> io::Result<MmapMut> {
    // SAFETY: the mapping is of a segment file in the spool's directory, which this
    // process holds locked (`LOCK`, see `Spool::open`), so no other process changes it;
    // this process never truncates a segment while it is mapped (a segment is deleted
    // only after its mapping was dropped), so no access through the mapping can fault.
    // The file's blocks are allocated when it is created, so writing a page needs no
    // disk space the file system may not have.
    unsafe {
        MmapOptions::new()
            .offset(offset)
            .len(len as usize)
            .map_mut(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_cross_windows_and_land_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let size = WINDOW * 2 + (64 << 10);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        file.set_len(size).unwrap();
        let mut m = Mapped::new(file, size).unwrap();
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1_000_003).collect();
        let mut written = Vec::new();
        while m.room() > 0 {
            let n = chunk.len().min(m.room() as usize);
            m.write(&chunk[..n]).unwrap();
            written.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(m.take_retired().len(), 2, "two windows finished");
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk, written, "every byte, across the windows' edges");
    }
}
