//! `--pin-broker`: the broker on CPUs of its own, everything else (tansu, the load, the
//! Kafka reader) on the rest, so that the broker's CPU per message is not moved by
//! where the scheduler happens to put its threads next to the others.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{bail, Result};

/// A set of CPUs, as `sched_setaffinity` takes it.
#[derive(Clone, Copy)]
pub struct CpuSet(libc::cpu_set_t);

impl CpuSet {
    /// `1` or `0,2` or `2-3`; every CPU must exist on this machine.
    pub fn parse(list: &str) -> Result<CpuSet> {
        let online = online_cpus();
        // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for part in list.split(',') {
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (lo.trim().parse::<usize>()?, hi.trim().parse::<usize>()?),
                None => {
                    let cpu = part.trim().parse::<usize>()?;
                    (cpu, cpu)
                }
            };
            for cpu in lo..=hi {
                if cpu >= online {
                    bail!("CPU {cpu} does not exist here ({online} CPUs)");
                }
                // SAFETY: cpu < online ≤ CPU_SETSIZE, within the set's bits.
                unsafe { libc::CPU_SET(cpu, &mut set) };
            }
        }
        Ok(CpuSet(set))
    }

    /// Every online CPU not in `self`; an error if none is left.
    pub fn complement(&self) -> Result<CpuSet> {
        // SAFETY: as in `parse`.
        let mut rest: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let mut any = false;
        for cpu in 0..online_cpus() {
            // SAFETY: cpu < online ≤ CPU_SETSIZE, within both sets' bits.
            unsafe {
                if !libc::CPU_ISSET(cpu, &self.0) {
                    libc::CPU_SET(cpu, &mut rest);
                    any = true;
                }
            }
        }
        if !any {
            bail!("--pin-broker leaves no CPU for tansu and the load");
        }
        Ok(CpuSet(rest))
    }

    /// Moves the calling thread to these CPUs; threads it starts afterwards, and
    /// processes it spawns, inherit them.
    pub fn pin_this_thread(&self) -> io::Result<()> {
        set_affinity(&self.0)
    }

    /// Makes `cmd`'s process start on these CPUs.
    pub fn pin_command(&self, cmd: &mut Command) {
        let set = self.0;
        // SAFETY: the closure runs in the forked child before exec and only makes one
        // system call, which is async-signal-safe; it touches no lock or allocation.
        unsafe {
            cmd.pre_exec(move || set_affinity(&set));
        }
    }
}

fn set_affinity(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size given.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    (n.max(1) as usize).min(libc::CPU_SETSIZE as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_and_its_complement() {
        let n = online_cpus();
        let all = CpuSet::parse(&format!("0-{}", n - 1)).unwrap();
        assert!(all.complement().is_err(), "nothing left for the rest");
        assert!(
            CpuSet::parse(&n.to_string()).is_err(),
            "CPU {n} does not exist"
        );
        if n >= 2 {
            let rest = CpuSet::parse("0").unwrap().complement().unwrap();
            // SAFETY: CPU indices below n, within the set's bits.
            unsafe {
                assert!(!libc::CPU_ISSET(0, &rest.0));
                assert!(libc::CPU_ISSET(1, &rest.0));
            }
        }
    }
}
