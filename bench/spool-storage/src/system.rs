//! What the OS can tell about a run: CPU time, bytes written, disk usage,
//! and a way to make the next read of a store come from disk.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Cumulative counters, read before and after a run and subtracted.
#[derive(Clone, Copy)]
pub struct Counters {
    at: Instant,
    /// User + system CPU time of this process, background threads included.
    cpu: Duration,
    /// Bytes this process caused to be written to storage (`/proc/self/io`).
    own_written: u64,
    /// Bytes written to the scratch directory's disk by everyone.
    disk_written: u64,
}

/// Per-run figures derived from two [`Counters`].
pub struct Usage {
    pub cpu: Duration,
    pub own_written: u64,
    /// Disk writes not accounted to this process per second: other
    /// processes, plus the filesystem's own journal (partly ours).
    pub others_bytes_per_s: f64,
}

impl Counters {
    /// Reads the counters; `dir` selects the disk.
    pub fn now(dir: &Path) -> io::Result<Self> {
        Ok(Counters {
            at: Instant::now(),
            cpu: process_cpu()?,
            own_written: own_write_bytes()?,
            disk_written: disk_write_bytes(dir)?,
        })
    }

    pub fn since(&self, earlier: &Counters) -> Usage {
        let own = self.own_written.saturating_sub(earlier.own_written);
        let disk = self.disk_written.saturating_sub(earlier.disk_written);
        let secs = (self.at - earlier.at).as_secs_f64();
        Usage {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            own_written: own,
            others_bytes_per_s: disk.saturating_sub(own) as f64 / secs,
        }
    }
}

fn process_cpu() -> io::Result<Duration> {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(tv(usage.ru_utime) + tv(usage.ru_stime))
}

fn own_write_bytes() -> io::Result<u64> {
    let io_stats = fs::read_to_string("/proc/self/io")?;
    io_stats
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no write_bytes in /proc/self/io"))
}

/// Sectors written (field 10 of `/proc/diskstats`) of the device holding `dir`.
fn disk_write_bytes(dir: &Path) -> io::Result<u64> {
    let dev = fs::metadata(dir)?.dev();
    let (major, minor) = (libc::major(dev).to_string(), libc::minor(dev).to_string());
    let stats = fs::read_to_string("/proc/diskstats")?;
    for line in stats.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 9 && f[0] == major && f[1] == minor {
            return f[9]
                .parse::<u64>()
                .map(|s| s * 512)
                .map_err(io::Error::other);
        }
    }
    Err(io::Error::other(format!(
        "device {major}:{minor} not in /proc/diskstats"
    )))
}

/// Bytes allocated on disk (like `du`) under `dir`.
pub fn disk_usage(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for_each_file(dir, &mut |path| {
        total += fs::metadata(path)?.blocks() * 512;
        Ok(())
    })?;
    Ok(total)
}

/// Drops the store's files (only those) from the page cache, so the next
/// open reads from disk as after a reboot. Pages must be clean: fsync first.
pub fn evict_page_cache(dir: &Path) -> io::Result<()> {
    for_each_file(dir, &mut |path| {
        let file = File::open(path)?;
        file.sync_all()?;
        // SAFETY: a plain syscall on a descriptor we own for its duration.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    })
}

fn for_each_file(dir: &Path, f: &mut dyn FnMut(&Path) -> io::Result<()>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            for_each_file(&entry.path(), f)?;
        } else {
            f(&entry.path())?;
        }
    }
    Ok(())
}
