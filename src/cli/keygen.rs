//! `tessera keygen`: make an Ed25519 key file.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use ed25519_dalek::SigningKey;

use crate::node::key::KeyFile;

/// Arguments of `tessera keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the key file here (created with mode 0600; an existing file is never
    /// overwritten). Without it, the key file is printed to standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Errors of `tessera keygen`.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    /// The OS random source failed.
    #[error("operating system randomness unavailable: {0}")]
    Entropy(getrandom::Error),
    /// The key file could not be written.
    #[error("cannot write key file {path}: {source}")]
    Write {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Generates a key from the OS random source and writes or prints its key file.
///
/// # Errors
/// No randomness, or the file exists or cannot be created.
pub fn run(args: &KeygenArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(KeygenError::Entropy)?;
    let key = SigningKey::from_bytes(&seed);
    let text = serde_json::to_string_pretty(&KeyFile::new(&key))? + "\n";
    match &args.out {
        None => print!("{text}"),
        Some(path) => {
            write_secret_file(path, text.as_bytes())
                .map_err(|source| KeygenError::Write { path: path.clone(), source })?;
            println!("public_key {}", hex::encode(key.verifying_key().to_bytes()));
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// Creates `path` (failing if it exists), readable by the owner only, and writes `bytes`.
fn write_secret_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
