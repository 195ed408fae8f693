//! `tessera doctor`: is this machine, and this config, ready to run a node?

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use crate::node::config::NodeConfig;
use crate::node::genesis::Genesis;

/// Arguments of `tessera doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The node config to check (ports, data directory, genesis, key); without it only the
    /// machine is checked, with the disk test in the temp directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Pass,
    Warn,
    Fail,
}

struct Report {
    worst: Verdict,
}

impl Report {
    fn line(&mut self, verdict: Verdict, check: &str, detail: &str, fix: &str) {
        let word = match verdict {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        };
        if verdict == Verdict::Pass || fix.is_empty() {
            println!("{word}  {check:<16} {detail}");
        } else {
            println!("{word}  {check:<16} {detail} — fix: {fix}");
        }
        self.worst = self.worst.max(verdict);
    }
}

fn rlimit(resource: rlimit::Resource) -> Option<(u64, u64)> {
    resource.get().ok()
}

fn free_bytes(path: &Path) -> Option<u64> {
    let text = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe_zeroed_statvfs();
    // SAFETY: statvfs reads a NUL-terminated path and writes one statvfs through a valid,
    // exclusive pointer to a local.
    #[allow(unsafe_code)]
    let status = unsafe { libc::statvfs(text.as_ptr(), &mut stat) };
    (status == 0).then(|| stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn unsafe_zeroed_statvfs() -> libc::statvfs {
    // SAFETY: statvfs is a plain C struct of integers, for which all-zero bytes are valid.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::zeroed()
    }
}

fn fsync_latency(dir: &Path) -> std::io::Result<(Duration, Duration)> {
    let path = dir.join(".tessera-doctor-fsync");
    let mut file = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
    let block = [0x5au8; 4096];
    let mut samples = Vec::new();
    for _ in 0..32 {
        file.write_all(&block)?;
        let start = Instant::now();
        file.sync_data()?;
        samples.push(start.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    samples.sort();
    Ok((samples[samples.len() / 2], samples[samples.len() * 99 / 100]))
}

/// Runs every check; exits non-zero if any fails.
///
/// # Errors
/// Never for a failed check (those are printed); only for output failures.
pub fn run(args: &DoctorArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut report = Report { worst: Verdict::Pass };

    match glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound).spawn(|| async {}) {
        Ok(handle) => match handle.join() {
            Ok(()) => report.line(Verdict::Pass, "io_uring", "a glommio executor started and stopped", ""),
            Err(error) => report.line(
                Verdict::Fail,
                "io_uring",
                &format!("executor failed: {error}"),
                "use Linux ≥ 5.8 with io_uring enabled",
            ),
        },
        Err(error) => report.line(
            Verdict::Fail,
            "io_uring",
            &format!("cannot start a glommio executor: {error}"),
            "use Linux ≥ 5.8 with io_uring enabled, and raise `ulimit -l`",
        ),
    }

    match rlimit(rlimit::Resource::MEMLOCK) {
        Some((soft, _)) if soft == rlimit::INFINITY || soft >= 8 << 20 => {
            report.line(Verdict::Pass, "memlock", &format!("locked-memory limit {} KiB", soft / 1024), "")
        }
        Some((soft, _)) => report.line(
            Verdict::Warn,
            "memlock",
            &format!("locked-memory limit {} KiB", soft / 1024),
            "ulimit -l 8192 (or more) for io_uring buffers",
        ),
        None => report.line(Verdict::Warn, "memlock", "cannot read the limit", "check `ulimit -l`"),
    }

    // A node raises its soft limit to 65,536 within the hard limit, so the hard one decides.
    match rlimit(rlimit::Resource::NOFILE) {
        Some((soft, hard)) if hard >= 65_536 => report.line(
            Verdict::Pass,
            "open_files",
            &format!("limit {soft}, hard {hard} (a node raises its own to 65536)"),
            "",
        ),
        Some((soft, hard)) if hard >= 1024 => report.line(
            Verdict::Warn,
            "open_files",
            &format!("limit {soft}, hard {hard}"),
            "ulimit -Hn 65536 (LimitNOFILE=65536) for many clients and segments",
        ),
        Some((soft, hard)) => report.line(
            Verdict::Fail,
            "open_files",
            &format!("limit {soft}, hard {hard}"),
            "ulimit -Hn 65536 (LimitNOFILE=65536)",
        ),
        None => report.line(Verdict::Warn, "open_files", "cannot read the limit", "check `ulimit -n`"),
    }

    let backend = tessera_systems::kernels::sigverify::curve_backend();
    let verdict = if backend == "serial" { Verdict::Warn } else { Verdict::Pass };
    report.line(
        verdict,
        "cpu",
        &format!("curve backend {backend}"),
        "a CPU with AVX2 (or AVX-512 IFMA) verifies 2-4x faster",
    );

    let config = match &args.config {
        None => None,
        Some(path) => match NodeConfig::load(path) {
            Ok(config) => {
                report.line(Verdict::Pass, "config", &format!("{} parses and validates", path.display()), "");
                Some(config)
            }
            Err(error) => {
                report.line(Verdict::Fail, "config", &error.to_string(), "correct the key named");
                None
            }
        },
    };

    let disk_dir = match &config {
        Some(config) => {
            let dir = &config.data_dir;
            if let Err(error) = std::fs::create_dir_all(dir) {
                report.line(
                    Verdict::Fail,
                    "data_dir",
                    &format!("{}: {error}", dir.display()),
                    "create it, writable by this user",
                );
            }
            dir.clone()
        }
        None => std::env::temp_dir(),
    };
    match fsync_latency(&disk_dir) {
        Ok((median, p99)) => {
            let detail = format!("fdatasync 4 KiB in {}: median {median:?}, p99 {p99:?}", disk_dir.display());
            let verdict = if p99 > Duration::from_millis(100) {
                Verdict::Fail
            } else if p99 > Duration::from_millis(10) {
                Verdict::Warn
            } else {
                Verdict::Pass
            };
            report.line(
                verdict,
                "fsync",
                &detail,
                "put the data directory on an SSD/NVMe with a write cache that honours flushes",
            );
        }
        Err(error) => report.line(
            Verdict::Fail,
            "fsync",
            &format!("{}: {error}", disk_dir.display()),
            "make the data directory writable",
        ),
    }
    match free_bytes(&disk_dir) {
        Some(bytes) if bytes >= 10 << 30 => {
            report.line(Verdict::Pass, "disk_space", &format!("{} GiB free", bytes >> 30), "")
        }
        Some(bytes) if bytes >= 1 << 30 => report.line(
            Verdict::Warn,
            "disk_space",
            &format!("{} GiB free", bytes >> 30),
            "keep 10 GiB or more free",
        ),
        Some(bytes) => {
            report.line(Verdict::Fail, "disk_space", &format!("{} MiB free", bytes >> 20), "free disk space")
        }
        None => report.line(Verdict::Warn, "disk_space", "cannot read free space", ""),
    }

    if let Some(config) = &config {
        for (name, addr) in [
            ("network.listen", config.network.listen),
            ("ingress.listen", config.ingress.listen),
            ("rpc.listen", config.rpc.listen),
            ("metrics.listen", config.metrics.listen),
        ] {
            match std::net::TcpListener::bind(addr) {
                Ok(_) => report.line(Verdict::Pass, "port", &format!("{name} {addr} is free"), ""),
                Err(error) => report.line(
                    Verdict::Fail,
                    "port",
                    &format!("{name} {addr}: {error}"),
                    "stop what holds it or pick another port",
                ),
            }
        }
        match Genesis::load(&config.genesis_file) {
            Ok(genesis) => {
                let validators = genesis.validator_keys();
                if validators.len() != config.network.peers.len() {
                    report.line(
                        Verdict::Fail,
                        "consistency",
                        &format!(
                            "network.peers has {} entries, genesis {} validators",
                            config.network.peers.len(),
                            validators.len()
                        ),
                        "list one peer address per genesis validator",
                    );
                }
                // Validation guarantees both for a validator; a full node holds no key.
                let (Some(key_file), Some(index)) = (&config.key_file, config.validator_index) else {
                    report.line(
                        Verdict::Pass,
                        "consistency",
                        "full node: follows the genesis validators",
                        "",
                    );
                    return finish(report);
                };
                match crate::node::load_key(key_file) {
                    Ok(key) if validators.get(index as usize) == Some(&key.verifying_key().to_bytes()) => {
                        report.line(
                            Verdict::Pass,
                            "consistency",
                            "key file is this validator's genesis key",
                            "",
                        )
                    }
                    Ok(_) => report.line(
                        Verdict::Fail,
                        "consistency",
                        "key file is not the genesis key of validator_index",
                        "point key_file at this validator's key",
                    ),
                    Err(error) => report.line(
                        Verdict::Fail,
                        "consistency",
                        &error,
                        "point key_file at a key written by tessera genesis/keygen, readable by the node's user alone (or its group)",
                    ),
                }
            }
            Err(error) => report.line(
                Verdict::Fail,
                "consistency",
                &error.to_string(),
                "point genesis_file at the network's genesis",
            ),
        }
    }

    finish(report)
}

fn finish(report: Report) -> Result<(), Box<dyn std::error::Error>> {
    if report.worst == Verdict::Fail {
        return Err(crate::InputError("doctor found failing checks".into()).into());
    }
    Ok(())
}
