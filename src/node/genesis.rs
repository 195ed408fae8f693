//! The genesis file (TOML): chain id, the validator set, and the funded accounts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A validator entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// Ed25519 public key, lowercase hex.
    pub public_key: String,
}

/// A funded account.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// Account address (public key), lowercase hex.
    pub address: String,
    /// Balance at genesis.
    pub balance: u64,
}

/// The genesis file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain id every transaction and handshake must carry.
    pub chain_id: u32,
    /// Seed from which the funded load accounts' keys derive (`workload::signing_key(seed, i)`),
    /// so `tessera loadgen` can sign for them. Public by design: devnets only.
    #[serde(default)]
    pub load_seed: Option<u64>,
    /// Validators, in index order.
    pub validators: Vec<GenesisValidator>,
    /// Funded accounts, in slot order.
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
}

/// A genesis file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Unreadable file.
    #[error("cannot read genesis {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML for the schema.
    #[error("genesis {path} is not valid: {source}")]
    Parse {
        /// Path.
        path: PathBuf,
        /// Cause (names the key).
        source: toml::de::Error,
    },
    /// A semantic problem, naming the key.
    #[error("genesis {path}: {key}: {problem}")]
    Invalid {
        /// Path.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

impl Genesis {
    /// Reads and checks a genesis file.
    ///
    /// # Errors
    /// Unreadable, unparsable, or semantically invalid (naming the key).
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| GenesisError::Read { path: path.to_owned(), source })?;
        Genesis::from_toml(&text, path)
    }

    /// Parses and checks the text of the genesis file at `path` (named in errors).
    ///
    /// # Errors
    /// Unparsable, or semantically invalid (naming the key).
    pub fn from_toml(text: &str, path: &Path) -> Result<Genesis, GenesisError> {
        let genesis: Genesis =
            toml::from_str(text).map_err(|source| GenesisError::Parse { path: path.to_owned(), source })?;
        genesis.check().map_err(|(key, problem)| GenesisError::Invalid {
            path: path.to_owned(),
            key,
            problem,
        })?;
        Ok(genesis)
    }

    fn check(&self) -> Result<(), (String, String)> {
        if self.validators.is_empty() {
            return Err(("validators".into(), "at least one validator is required".into()));
        }
        for (i, validator) in self.validators.iter().enumerate() {
            let key = hex32(&validator.public_key)
                .ok_or_else(|| (format!("validators[{i}].public_key"), "must be 64 hex digits".into()))?;
            if ed25519_dalek::VerifyingKey::from_bytes(&key).is_err() {
                return Err((format!("validators[{i}].public_key"), "is not an Ed25519 public key".into()));
            }
        }
        for (i, account) in self.accounts.iter().enumerate() {
            hex32(&account.address)
                .ok_or_else(|| (format!("accounts[{i}].address"), "must be 64 hex digits".into()))?;
        }
        let balances = self.balances();
        let mut seen = std::collections::BTreeSet::new();
        for (i, (address, _)) in balances.iter().enumerate() {
            if !seen.insert(*address) {
                return Err((format!("accounts[{i}].address"), "appears twice".into()));
            }
        }
        Ok(())
    }

    /// Validator public keys in index order (checked by `load`).
    pub fn validator_keys(&self) -> Vec<[u8; 32]> {
        self.validators.iter().filter_map(|v| hex32(&v.public_key)).collect()
    }

    /// Genesis balances in slot order (checked by `load`).
    pub fn balances(&self) -> Vec<([u8; 32], u64)> {
        self.accounts.iter().filter_map(|a| Some((hex32(&a.address)?, a.balance))).collect()
    }
}
