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
    let text = crate::read_input_file(path, crate::KEY_FILE_BYTES_MAX)
        .map_err(|error| format!("cannot read key file {}: {error}", path.display()))?;
    // As ssh does for its keys: a secret others may read is refused, not used. `tessera
    // keygen` and `tessera genesis` write keys with mode 0600; a copy can lose it.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(path)
            .map_err(|error| format!("cannot read key file {}: {error}", path.display()))?
            .permissions(),
    );
    if mode & 0o077 != 0 {
        return Err(format!(
            "key file {} may be read or written by others (mode {:o}): `chmod 600 {}`",
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
