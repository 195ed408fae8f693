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
use crate::node::proof::{Proven, check_result_fields, hash, proof_from_json};

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

/// A proof that holds, in a file that says something else beside it (exit status 1): the
/// result's `exists`, `balance` or `nonce`, or the root the proof names.
#[derive(Debug, thiserror::Error)]
#[error("the proof holds, but {0}")]
pub struct Contradicted(String);

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
    let verified = match &proof {
        Proven::Account(proof) => proof.verify(&trusted),
        Proven::Absence(proof) => proof.verify(&trusted),
    };
    verified.map_err(InvalidProof)?;
    // Checked once the proof holds (so that one that does not is reported as such), and before
    // anything says valid.
    if named_root != trusted {
        return Err(Contradicted(format!(
            "it names root {}, not the one checked: the file was changed",
            named_root.to_hex()
        ))
        .into());
    }
    check_result_fields(&value, &proof).map_err(Contradicted)?;
    match &proof {
        Proven::Account(proof) => println!(
            "valid: account {} holds balance {} and nonce {} in the state with root {}",
            hex::encode(proof.address),
            proof.account.balance,
            proof.account.nonce,
            trusted.to_hex()
        ),
        Proven::Absence(_) => println!(
            "valid: address {} has no account in the state with root {}",
            hex::encode(about),
            trusted.to_hex()
        ),
    }
    if args.address.is_none() {
        eprintln!("note: no --address given: the proof is about {}", hex::encode(about));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tessera_components::Hash;
    use tessera_systems::Ledger;

    use super::*;
    use crate::exit_code;
    use crate::node::proof::{absence_json, proof_json};

    /// Runs the check on `value` as a file; the exit status it would end with and its message.
    fn check(value: &Value, root: &str, address: Option<&str>) -> (u8, String) {
        let path = std::env::temp_dir().join(format!("tessera-verify-proof-{}", std::process::id()));
        std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
        let args = VerifyProofArgs {
            proof: path.clone(),
            state_root: root.to_owned(),
            address: address.map(str::to_owned),
        };
        let outcome = run(&args);
        let _ = std::fs::remove_file(&path);
        outcome.map_or_else(|error| (exit_code(error.as_ref()), error.to_string()), |()| (0, String::new()))
    }

    /// A sound proof in a result that says another balance, or the wrong kind of existence, or
    /// in a file whose named root was changed, is refused (status 1): before, each passed, so a
    /// script that trusted the result's fields after the check trusted a forged balance (found
    /// in review).
    #[test]
    fn a_sound_proof_in_a_result_that_says_otherwise_is_refused() {
        let ledger = Ledger::from_genesis(&[([2; 32], 10), ([1; 32], 20), ([3; 32], 30)]).unwrap();
        let root = ledger.state_root();
        let hex_root = root.to_hex();
        let proof = proof_json(&ledger.proof(&[1; 32]).unwrap(), &root, 4, &Hash([9; 32]));
        let sound = json!({"jsonrpc": "2.0", "id": 1, "result": {"exists": true, "balance": 20, "nonce": 0, "proof": proof}});
        assert_eq!(check(&sound, &hex_root, Some(&"01".repeat(32))), (0, String::new()));
        assert_eq!(check(&sound["result"], &hex_root, None).0, 0, "the result alone");
        assert_eq!(check(&sound["result"]["proof"], &hex_root, None).0, 0, "the bare proof");

        for (field, said) in [("balance", json!(1_000_000)), ("nonce", json!(3)), ("exists", json!(false))] {
            let mut forged = sound.clone();
            forged["result"][field] = said;
            let (code, message) = check(&forged, &hex_root, None);
            assert_eq!(code, 1, "{field}: {message}");
            assert!(message.contains(&format!("says {field}")), "{message}");
        }
        let mut renamed = sound.clone();
        renamed["result"]["proof"]["state_root"] = json!("22".repeat(32));
        let (code, message) = check(&renamed, &hex_root, None);
        assert_eq!(code, 1, "{message}");
        assert!(message.contains("names root"), "{message}");
        // A changed proven field is a proof that does not hold, as before.
        let mut tampered = sound.clone();
        tampered["result"]["proof"]["balance"] = json!(21);
        tampered["result"]["balance"] = json!(21);
        let (code, message) = check(&tampered, &hex_root, None);
        assert_eq!(code, 1);
        assert!(message.contains("does not hold"), "{message}");

        // An absence proof says no account: a result claiming one is refused.
        let absent = absence_json(&ledger.absence_proof(&[5; 32]).unwrap(), &root, 4, &Hash([9; 32]));
        let none = json!({"result": {"exists": false, "balance": 0, "nonce": 0, "proof": absent}});
        assert_eq!(check(&none, &hex_root, Some(&"05".repeat(32))).0, 0);
        let mut claims = none.clone();
        claims["result"]["exists"] = json!(true);
        claims["result"]["balance"] = json!(99);
        assert_eq!(check(&claims, &hex_root, None).0, 1);
        // Written into a bare proof, the same claims are refused too.
        let mut bare = none["result"]["proof"].clone();
        bare["exists"] = json!(true);
        assert_eq!(check(&bare, &hex_root, None).0, 1);
        let mut bare = sound["result"]["proof"].clone();
        bare["exists"] = json!(false);
        assert_eq!(check(&bare, &hex_root, None).0, 1);
        // Hex with two prefixes is not hex.
        assert_eq!(check(&sound, &format!("0x0x{hex_root}"), None).0, 2);
    }
}
