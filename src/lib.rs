//! Tessera: a data-oriented ledger node you can run, simulate and attack.
//!
//! The `tessera` binary is a thin command line over this library: the node runtime
//! ([`node`]), its storage ([`storage`]), the simulator ([`sim`]), the load generator
//! ([`load`]), the benchmark suites ([`bench`]) and the command implementations ([`cli`]).
//! Fuzz targets and benchmarks link it too.

pub mod attack;
pub mod bench;
pub mod cli;
pub mod driver;
pub mod forward;
pub mod load;
pub mod node;
pub mod plot;
pub mod sim;
pub mod storage;

/// Most bytes of a key file (a few hundred in practice).
pub const KEY_FILE_BYTES_MAX: u64 = 64 << 10;
/// Most bytes of a node config, a scenario, a cost table, a hosts list or a swarm summary.
pub const SMALL_FILE_BYTES_MAX: u64 = 16 << 20;
/// Most bytes of a genesis file or a `sigverify` input: about two million listed accounts
/// (`tessera genesis --accounts N` derives its accounts from a seed, so its files stay small).
pub const LARGE_FILE_BYTES_MAX: u64 = 256 << 20;

/// Opens `path` for reading without waiting, and only if it is a regular file: opening a FIFO
/// for reading waits forever for a writer, and a device such as `/dev/zero` never ends. With
/// the metadata of what was opened (not of whatever the path names later).
///
/// # Errors
/// The open error, or `InvalidData` ("not a regular file").
pub fn open_regular(path: &std::path::Path) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
    }
    Ok((file, metadata))
}

/// Reads a file named on the command line or in a config, whole, as text: a regular file of at
/// most `max` bytes. Anything else is an error that names why: a FIFO (opened without waiting
/// for a writer, so the command never hangs on one), a device such as `/dev/zero` (which read
/// to its end would take all memory), a directory, or a file past `max`.
///
/// # Errors
/// The open or read error, or one of the refusals above.
pub fn read_input_file(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    read_input_file_with(path, max).map(|(text, _)| text)
}

/// [`read_input_file`], with the metadata of the file that was read (of the open descriptor,
/// so of that file, whatever the path names later).
///
/// # Errors
/// As [`read_input_file`].
pub fn read_input_file_with(
    path: &std::path::Path,
    max: u64,
) -> std::io::Result<(String, std::fs::Metadata)> {
    use std::io::Read;
    let (file, metadata) = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("larger than {max} bytes, the most this file may hold"),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
    Ok((text, metadata))
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The machine's available memory now (`MemAvailable`), if `/proc/meminfo` says.
pub fn memory_available() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo").ok().as_deref().and_then(mem_available)
}

/// Refuses `needed` bytes of memory when `available` is less, naming both after `what`.
///
/// # Errors
/// `"{what} needs about X GB in memory, and Y GB is available"`.
pub fn memory_fits(needed: u64, available: u64, what: &str) -> Result<(), String> {
    if needed > available {
        return Err(format!(
            "{what} needs about {:.1} GB in memory, and {:.1} GB is available",
            needed as f64 / 1e9,
            available as f64 / 1e9
        ));
    }
    Ok(())
}

/// [`memory_fits`] against the machine's available memory now; nothing is refused where
/// `/proc/meminfo` cannot be read. For a ledger about to be built, checked before it is: one
/// past the machine's memory was grown into until the kernel stopped the process.
///
/// # Errors
/// As [`memory_fits`].
pub fn check_memory(needed: u64, what: &str) -> Result<(), String> {
    memory_available().map_or(Ok(()), |available| memory_fits(needed, available, what))
}

/// Bad input from the user (a malformed file, say): reported with exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The exit status for a command that failed with `error`: 2 for bad input (usage, or a file
/// named on the command line or in a config that is missing, unreadable or malformed:
/// [`InputError`], [`node::config::ConfigError`], [`node::genesis::GenesisError`]), 1 for a run
/// that failed (a damaged data directory, a port in use, a network that did not agree). Clap's
/// usage errors exit 2 too, so every command keeps one code for input.
pub fn exit_code(error: &(dyn std::error::Error + 'static)) -> u8 {
    let input = error.is::<InputError>()
        || error.is::<node::config::ConfigError>()
        || error.is::<node::genesis::GenesisError>();
    if input { 2 } else { 1 }
}
