//! Key files: an Ed25519 secret seed and its public key, as `tessera keygen` writes them and
//! a validator reads its identity from.

use std::path::Path;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

/// A key file: the 32-byte Ed25519 secret seed and its public key, both lowercase hex.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyFile {
    /// Public key (the account address / validator identity).
    pub public_key: String,
    /// Secret seed. Anyone holding it can sign as this key.
    pub secret_key: String,
}

impl KeyFile {
    /// The key file for `key`.
    pub fn new(key: &SigningKey) -> KeyFile {
        KeyFile {
            public_key: hex::encode(key.verifying_key().to_bytes()),
            secret_key: hex::encode(key.to_bytes()),
        }
    }
}

/// Loads a key file.
///
/// # Errors
/// Unreadable, not JSON, or not a 32-byte hex secret matching its public key.
pub fn load_key(path: &Path) -> Result<SigningKey, String> {
    let (text, metadata) = crate::read_input_file_with(path, crate::KEY_FILE_BYTES_MAX)
        .map_err(|error| format!("cannot read key file {}: {error}", path.display()))?;
    // A secret anyone may read, or that its group may replace, is refused rather than used.
    // `tessera keygen` and `tessera genesis` write keys with mode 0600, and a copy can lose
    // it. Reading by the group is allowed: the systemd layout (`tools/systemd`) gives the key
    // to root with mode 0640, group `tessera`, which the node runs as.
    let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions());
    if mode & 0o027 != 0 {
        return Err(format!(
            "key file {} may be read or written by others, or written by its group (mode {:o}): \
             `chmod 600 {}` (or 640 for a group the node runs in)",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    let file: KeyFile = serde_json::from_str(&text)
        .map_err(|error| format!("key file {} is not valid: {error}", path.display()))?;
    let secret: [u8; 32] = hex::decode(&file.secret_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("key file {}: secret_key must be 64 hex digits", path.display()))?;
    let key = SigningKey::from_bytes(&secret);
    if hex::encode(key.verifying_key().to_bytes()) != file.public_key {
        return Err(format!("key file {}: public_key does not match secret_key", path.display()));
    }
    Ok(key)
}
