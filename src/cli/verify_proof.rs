//! `tessera verify-proof`: checks an account proof from `tessera_getAccount` offline.
//!
//! A proof says that an address holds a balance and nonce in the state with a given root, or
//! (`"absent": true`) that it has no account there. It is
//! only as good as the root it is checked against: pass `--state-root` with the root of a
//! finalized block header you trust (from `tessera_getBlockByHeight` on a node you trust, or
//! from the quorum certificate that finalized it).

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use crate::InputError;
use crate::node::proof::{Proven, hash, proof_from_json};

/// Largest proof file read: a proof of a 2^64-account state is ~5 KiB of JSON.
const PROOF_BYTES_MAX: u64 = 64 * 1024;

/// Arguments of `tessera verify-proof`.
#[derive(Debug, Args)]
pub struct VerifyProofArgs {
    /// The proof: a `tessera_getAccount` response (whole, its `result`, or its `proof`), as a
    /// file, or `-` for standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    pub proof: PathBuf,
    /// The state root to check against, 64 hex digits: a finalized block header's
    /// `state_root`, from a source you trust. Required: a proof checked only against the root
    /// it names itself proves nothing (anyone can build one for any balance).
    #[arg(long, value_name = "HEX")]
    pub state_root: String,
    /// The address the proof must be about, 64 hex digits (checked when given).
    #[arg(long, value_name = "HEX")]
    pub address: Option<String>,
}

/// A proof about another address than the one asked about (exit status 1).
#[derive(Debug, thiserror::Error)]
#[error("the proof is about account {0}, not the one given with --address")]
pub struct WrongAddress(String);

/// A proof that does not hold (exit status 1, as a failed check, not bad input).
#[derive(Debug, thiserror::Error)]
#[error("the proof does not hold: {0}")]
pub struct InvalidProof(tessera_components::state::ProofError);

/// Runs the check.
///
/// # Errors
/// Unreadable or malformed input (status 2), or a proof that does not hold (status 1).
pub fn run(args: &VerifyProofArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut text = String::new();
    let source = args.proof.display().to_string();
    let read = if source == "-" {
        std::io::stdin().take(PROOF_BYTES_MAX + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(&args.proof)
            .and_then(|file| file.take(PROOF_BYTES_MAX + 1).read_to_string(&mut text))
    };
    read.map_err(|error| InputError(format!("cannot read {source}: {error}")))?;
    if text.len() as u64 > PROOF_BYTES_MAX {
        return Err(
            InputError(format!("{source} is over {PROOF_BYTES_MAX} bytes; a proof is a few KiB")).into()
        );
    }
    let value: Value =
        serde_json::from_str(&text).map_err(|error| InputError(format!("{source} is not JSON: {error}")))?;
    let (proof, named_root) = proof_from_json(&value)?;
    let trusted = hash(&Value::String(args.state_root.clone()), "--state-root")?;
    let about = match &proof {
        Proven::Account(proof) => proof.address,
        Proven::Absence(proof) => *proof.address(),
    };
    if let Some(address) = &args.address {
        let wanted = hash(&Value::String(address.clone()), "--address")?;
        if wanted.0 != about {
            return Err(WrongAddress(hex::encode(about)).into());
        }
    }
    match &proof {
        Proven::Account(proof) => {
            proof.verify(&trusted).map_err(InvalidProof)?;
            println!(
                "valid: account {} holds balance {} and nonce {} in the state with root {}",
                hex::encode(proof.address),
                proof.account.balance,
                proof.account.nonce,
                trusted.to_hex()
            );
        }
        Proven::Absence(proof) => {
            proof.verify(&trusted).map_err(InvalidProof)?;
            println!(
                "valid: address {} has no account in the state with root {}",
                hex::encode(about),
                trusted.to_hex()
            );
        }
    }
    if named_root != trusted {
        println!("note: the proof names root {}, not the one checked", named_root.to_hex());
    }
    Ok(())
}
