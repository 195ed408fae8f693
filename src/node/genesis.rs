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
    /// Load accounts derived from `load_seed`: account `i` (for `i` in `0..load_accounts`) is
    /// the public key of `workload::signing_key(load_seed, i)`, funded with `load_balance`, in
    /// the slots after `accounts`. `tessera loadgen` signs for them. Deriving a key costs a
    /// scalar multiplication, so at most [`LOAD_ACCOUNTS_MAX`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub load_accounts: u64,
    /// Balance of each load account.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub load_balance: u64,
    /// Receive-only accounts whose addresses derive from `load_seed` by a hash
    /// (`workload::filler_address(load_seed, i)`), funded with `filler_balance`, in the slots
    /// after the load accounts. Nobody holds their keys: they can receive, never send. They let
    /// a devnet hold millions of accounts (at most [`FILLER_ACCOUNTS_MAX`]) without a genesis
    /// file listing them or every node deriving millions of keys.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub filler_accounts: u64,
    /// Balance of each filler account.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub filler_balance: u64,
    /// Validators, in index order.
    pub validators: Vec<GenesisValidator>,
    /// Funded accounts, in slot order (before the derived ones).
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
}

/// Most `load_accounts` a genesis may derive (about ten seconds of key derivation on two cores).
pub const LOAD_ACCOUNTS_MAX: u64 = 1 << 20;

/// Load accounts kept from honest load for the attack tool's funded senders
/// ([`Genesis::attack_spenders`]).
pub const ATTACK_SPENDERS: u64 = 16;
/// Most `filler_accounts` a genesis may derive.
pub const FILLER_ACCOUNTS_MAX: u64 = 100_000_000;

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(value: &u64) -> bool {
    *value == 0
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

/// Bytes of memory a node's ledger takes per account: 174–189 measured at ten million accounts
/// (`docs/performance.md`, `bench state`'s resident memory per account), rounded up.
pub const LEDGER_BYTES_PER_ACCOUNT: u64 = 200;

impl Genesis {
    /// Reads and checks a genesis file.
    ///
    /// # Errors
    /// Unreadable, unparsable, or semantically invalid (naming the key).
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let text = crate::read_input_file(path, crate::LARGE_FILE_BYTES_MAX)
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
        // Keys as decoded bytes: hex spells one key in upper or lower case (or both), and a key
        // compared as text could sit in the set twice, its holder two votes of the quorum.
        let mut keys: std::collections::HashMap<[u8; 32], usize> = std::collections::HashMap::new();
        for (i, validator) in self.validators.iter().enumerate() {
            let key = hex32(&validator.public_key)
                .ok_or_else(|| (format!("validators[{i}].public_key"), "must be 64 hex digits".into()))?;
            let Ok(public) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
                return Err((format!("validators[{i}].public_key"), "is not an Ed25519 public key".into()));
            };
            // A small-order key verifies signatures anyone can make (the node's rule accepts
            // small-order points, as ZIP-215 does), so it would let anyone sign as it.
            if public.is_weak() {
                return Err((
                    format!("validators[{i}].public_key"),
                    "is a small-order point: anyone could sign for it".into(),
                ));
            }
            // A key with a torsion component is A + T for some key A: not small-order, another
            // byte string, and yet A's secret signs for it under the cofactored rule, so a set
            // holding A and A + T gives one secret two votes. No key a seed gives has one.
            if !tessera_systems::kernels::sigverify::is_torsion_free_key(&key) {
                return Err((
                    format!("validators[{i}].public_key"),
                    "has a small-order component (not a key any secret seed gives): its holder could sign \
                     as another validator too"
                        .into(),
                ));
            }
            if let Some(first) = keys.insert(key, i) {
                // One key twice gives its holder two votes of the quorum.
                return Err((
                    format!("validators[{i}].public_key"),
                    format!("is validators[{first}]'s key too: each validator needs its own"),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, account) in self.accounts.iter().enumerate() {
            let address = hex32(&account.address)
                .ok_or_else(|| (format!("accounts[{i}].address"), "must be 64 hex digits".into()))?;
            if !seen.insert(address) {
                return Err((format!("accounts[{i}].address"), "appears twice".into()));
            }
        }
        let derived = self.load_accounts > 0 || self.filler_accounts > 0;
        if derived && self.load_seed.is_none() {
            return Err((
                "load_seed".into(),
                "is required to derive load_accounts or filler_accounts".into(),
            ));
        }
        if self.load_accounts > LOAD_ACCOUNTS_MAX {
            return Err(("load_accounts".into(), format!("must be at most {LOAD_ACCOUNTS_MAX}")));
        }
        if self.filler_accounts > FILLER_ACCOUNTS_MAX {
            return Err(("filler_accounts".into(), format!("must be at most {FILLER_ACCOUNTS_MAX}")));
        }
        // Balances and burned fees are u64, so the supply must fit one (GenesisError::
        // SupplyTooLarge in the ledger): else fees could fill the burned counter, after which
        // every transfer fails.
        let supply = self.accounts.iter().map(|account| u128::from(account.balance)).sum::<u128>()
            + u128::from(self.load_accounts) * u128::from(self.load_balance)
            + u128::from(self.filler_accounts) * u128::from(self.filler_balance);
        if supply > u128::from(u64::MAX) {
            return Err((
                "accounts".into(),
                format!("balances (listed, load and filler) sum to {supply}, more than 2^64 - 1"),
            ));
        }
        // Derived addresses are distinct from each other (a collision would take breaking
        // BLAKE3 or finding two Ed25519 keys with one public key); one equal to a listed account
        // is refused when the ledger is built, as a duplicate account.
        Ok(())
    }

    /// Accounts the genesis funds: listed, then load, then filler.
    pub fn account_count(&self) -> u64 {
        self.accounts.len() as u64 + self.load_accounts + self.filler_accounts
    }

    /// Bytes of memory the ledger of this genesis takes, at about [`LEDGER_BYTES_PER_ACCOUNT`]
    /// an account: checked against what the machine has before the node builds it
    /// ([`crate::check_memory`]). A node given a hundred million filler accounts on a smaller
    /// machine grew until the kernel stopped it, deaf to SIGTERM while it built the ledger.
    pub fn ledger_bytes(&self) -> u64 {
        self.account_count().saturating_mul(LEDGER_BYTES_PER_ACCOUNT)
    }

    /// How many load accounts `tessera loadgen` can sign for: the derived ones, or, in a genesis
    /// that lists them instead (as earlier versions wrote), the listed ones.
    pub fn signing_accounts(&self) -> u64 {
        if self.load_accounts > 0 { self.load_accounts } else { self.accounts.len() as u64 }
    }

    /// The load accounts left out of honest load (`tessera loadgen`, a devnet's own load) for
    /// `tessera attack --kind nonce-variant-spam`, which needs funded keys whose nonces no honest
    /// client races for: the last [`ATTACK_SPENDERS`] derived load accounts, or none when the
    /// genesis derives no more than twice that many.
    pub fn attack_spenders(&self) -> std::ops::Range<u64> {
        if self.load_seed.is_some() && self.load_accounts > 2 * ATTACK_SPENDERS {
            self.load_accounts - ATTACK_SPENDERS..self.load_accounts
        } else {
            0..0
        }
    }

    /// How many load accounts honest load signs for: [`Genesis::signing_accounts`] without
    /// [`Genesis::attack_spenders`].
    pub fn load_signers(&self) -> u64 {
        let spenders = self.attack_spenders();
        self.signing_accounts() - (spenders.end - spenders.start)
    }

    /// Validator public keys in index order (checked by `load`).
    pub fn validator_keys(&self) -> Vec<[u8; 32]> {
        self.validators.iter().filter_map(|v| hex32(&v.public_key)).collect()
    }

    /// Genesis balances in slot order (checked by `load`): the listed accounts, then the load
    /// and filler accounts derived on every core.
    pub fn balances(&self) -> Vec<([u8; 32], u64)> {
        use rayon::prelude::*;
        use tessera_systems::workload::{filler_addresses, signing_key};
        let mut balances: Vec<([u8; 32], u64)> =
            Vec::with_capacity(usize::try_from(self.account_count()).unwrap_or(0));
        balances.extend(self.accounts.iter().filter_map(|a| Some((hex32(&a.address)?, a.balance))));
        let seed = self.load_seed.unwrap_or(0);
        // An indexed parallel extend keeps slot order.
        balances.par_extend(
            (0..self.load_accounts)
                .into_par_iter()
                .map(|i| (signing_key(seed, i).verifying_key().to_bytes(), self.load_balance)),
        );
        // A million addresses at a time: all of them at once would hold 32 bytes an account
        // beside `balances`' 40.
        const CHUNK: u64 = 1 << 20;
        for first in (0..self.filler_accounts).step_by(CHUNK as usize) {
            let addresses =
                filler_addresses(seed, first..self.filler_accounts.min(first.saturating_add(CHUNK)));
            balances.par_extend(addresses.into_par_iter().map(|address| (address, self.filler_balance)));
        }
        balances
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::Genesis;

    fn genesis_of(keys: &[String]) -> String {
        let validators: String =
            keys.iter().map(|key| format!("[[validators]]\npublic_key = \"{key}\"\n")).collect();
        format!("chain_id = 1\n{validators}")
    }

    fn key(seed: u8) -> String {
        hex::encode(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes())
    }

    #[test]
    fn duplicate_and_small_order_validator_keys_are_refused() {
        let path = Path::new("genesis.toml");
        Genesis::from_toml(&genesis_of(&[key(1), key(2), key(3), key(4)]), path).expect("four distinct keys");
        let twice = Genesis::from_toml(&genesis_of(&[key(1), key(2), key(1), key(4)]), path).unwrap_err();
        assert!(twice.to_string().contains("validators[2].public_key"), "{twice}");
        assert!(twice.to_string().contains("validators[0]'s key too"), "{twice}");
        // The same key in capitals is the same key (`hex` decodes either case): it was taken
        // as another validator's, and one key held two of the four votes.
        let shouted = Genesis::from_toml(&genesis_of(&[key(1), key(2), key(1).to_uppercase(), key(4)]), path)
            .unwrap_err();
        assert!(shouted.to_string().contains("validators[0]'s key too"), "{shouted}");
        // The identity point (y = 1) has order 1; any signature with R = identity and S = 0
        // verifies for it under a cofactored rule.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = Genesis::from_toml(&genesis_of(&[key(1), hex::encode(identity)]), path).unwrap_err();
        assert!(weak.to_string().contains("small-order"), "{weak}");
        // Key 1 plus each nonzero torsion point: distinct bytes, not small-order, and key 1's
        // secret signs for it under the cofactored rule. It was accepted beside key 1, one
        // secret holding two of the four votes.
        let a = curve25519_dalek::edwards::CompressedEdwardsY(
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes(),
        )
        .decompress()
        .unwrap();
        for torsion in &curve25519_dalek::constants::EIGHT_TORSION[1..] {
            let twin = hex::encode((a + torsion).compress().to_bytes());
            let error = Genesis::from_toml(&genesis_of(&[key(1), key(2), key(3), twin]), path).unwrap_err();
            assert!(
                error.to_string().contains("validators[3].public_key: has a small-order component"),
                "{error}"
            );
        }
    }

    /// Balances summing past u64::MAX are refused with the key named: accepted, fees could
    /// fill the u64 burned counter and then every transfer would fail (found in review).
    #[test]
    fn a_supply_past_u64_is_refused() {
        let path = Path::new("genesis.toml");
        let with = |balance: u64, fillers: u64| {
            format!(
                "chain_id = 1\nload_seed = 5\nfiller_accounts = {fillers}\nfiller_balance = {}\n\
                 [[validators]]\npublic_key = \"{}\"\n[[accounts]]\naddress = \"{}\"\nbalance = {balance}\n",
                u64::MAX / 4,
                key(1),
                "11".repeat(32)
            )
        };
        Genesis::from_toml(&with(u64::MAX / 4, 3), path).expect("four quarters fit");
        let over = Genesis::from_toml(&with(u64::MAX / 4 + 4, 3), path).unwrap_err().to_string();
        assert!(over.contains("accounts") && over.contains("more than 2^64 - 1"), "{over}");
    }

    #[test]
    fn derived_accounts_follow_the_listed_ones_and_are_checked() {
        use tessera_systems::workload::{filler_address, signing_key};
        let path = Path::new("genesis.toml");
        let text = format!(
            "chain_id = 1\nload_seed = 5\nload_accounts = 3\nload_balance = 7\nfiller_accounts = 4\n\
             filler_balance = 2\n[[validators]]\npublic_key = \"{}\"\n[[accounts]]\naddress = \"{}\"\n\
             balance = 9\n",
            key(1),
            "11".repeat(32)
        );
        let genesis = Genesis::from_toml(&text, path).unwrap();
        assert_eq!((genesis.account_count(), genesis.signing_accounts()), (8, 3));
        // A ledger past the memory available is refused with both figures: a node given 10^8
        // filler accounts on a smaller machine grew until the kernel stopped it.
        let fits = |available| crate::memory_fits(genesis.ledger_bytes(), available, "the genesis");
        assert_eq!(fits(8 * super::LEDGER_BYTES_PER_ACCOUNT), Ok(()));
        let error = fits(8 * super::LEDGER_BYTES_PER_ACCOUNT - 1).unwrap_err();
        assert!(error.contains("the genesis needs about") && error.contains("GB is available"), "{error}");
        let balances = genesis.balances();
        assert_eq!(balances[0], ([0x11; 32], 9));
        for i in 0..3 {
            assert_eq!(balances[1 + i], (signing_key(5, i as u64).verifying_key().to_bytes(), 7));
        }
        for i in 0..4 {
            assert_eq!(balances[4 + i], (filler_address(5, i as u64), 2));
        }
        // Written and read back, the counts stay counts.
        let written = toml::to_string(&genesis).unwrap();
        assert!(written.lines().count() < 20, "{written}");
        assert_eq!(Genesis::from_toml(&written, path).unwrap(), genesis);
        // Refusals name their key.
        for (from, to, key) in [
            ("load_seed = 5\n", "", "load_seed"),
            ("load_accounts = 3", "load_accounts = 1048577", "load_accounts"),
            ("filler_accounts = 4", "filler_accounts = 100000001", "filler_accounts"),
        ] {
            let error = Genesis::from_toml(&text.replace(from, to), path).unwrap_err();
            assert!(error.to_string().contains(key), "{key}: {error}");
        }
    }
}
