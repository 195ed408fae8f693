//! Account proofs in JSON, as `tessera_getAccount` writes them and `tessera verify-proof`
//! reads them: that an address holds a value, or that it has no account (`"absent": true`).
//! Hashes and addresses are 64 lowercase hex digits; a sibling the tree does not have is `null`.

use serde_json::{Value, json};
use tessera_components::state::{AbsenceProof, AccountProof, tree_height};
use tessera_components::{Account, Hash};

use crate::InputError;

/// What a proof proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proven {
    /// An account's value.
    Account(AccountProof),
    /// That an address has no account.
    Absence(AbsenceProof),
}

fn account_fields(proof: &AccountProof) -> Value {
    json!({
        "address": hex::encode(proof.address),
        "balance": proof.account.balance,
        "nonce": proof.account.nonce,
        "next": hex::encode(proof.next),
        "slot": proof.slot,
        "count": proof.count,
        "burned": proof.burned,
        "first": hex::encode(proof.first),
        "siblings": proof.siblings.iter().map(|s| s.map(|h| h.to_hex())).collect::<Vec<_>>(),
    })
}

/// The proof as JSON, with the root, height and block it was taken at.
pub fn proof_json(proof: &AccountProof, state_root: &Hash, height: u64, block_hash: &Hash) -> Value {
    let mut value = account_fields(proof);
    value["state_root"] = json!(state_root.to_hex());
    value["height"] = json!(height);
    value["block_hash"] = json!(block_hash.to_hex());
    value
}

/// An absence proof as JSON: `"absent": true`, the address, and either `low` (the account just
/// below it, proven as [`proof_json`] gives an account without the root fields) or, when no
/// account is below it, the state root's inputs `count`, `tree_root`, `burned` and `first`.
pub fn absence_json(proof: &AbsenceProof, state_root: &Hash, height: u64, block_hash: &Hash) -> Value {
    let mut value = match proof {
        AbsenceProof::After { address, low } => json!({
            "address": hex::encode(address),
            "absent": true,
            "low": account_fields(low),
        }),
        AbsenceProof::BelowFirst { address, count, tree_root, burned, first } => json!({
            "address": hex::encode(address),
            "absent": true,
            "low": Value::Null,
            "count": count,
            "tree_root": tree_root.to_hex(),
            "burned": burned,
            "first": hex::encode(first),
        }),
    };
    value["state_root"] = json!(state_root.to_hex());
    value["height"] = json!(height);
    value["block_hash"] = json!(block_hash.to_hex());
    value
}

pub(crate) fn hash(value: &Value, what: &str) -> Result<Hash, InputError> {
    value
        .as_str()
        .and_then(|text| hex::decode(text.strip_prefix("0x").unwrap_or(text)).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .map(Hash)
        .ok_or_else(|| InputError(format!("proof: {what} is not 64 hex digits")))
}

fn number(object: &Value, field: &str) -> Result<u64, InputError> {
    object[field].as_u64().ok_or_else(|| InputError(format!("proof: {field} is not an unsigned integer")))
}

/// Reads a proof, and the state root it names, from [`proof_json`]'s or [`absence_json`]'s form
/// (or a response or result that holds one).
///
/// # Errors
/// A field missing or malformed, or more siblings than any state can need.
pub fn proof_from_json(value: &Value) -> Result<(Proven, Hash), InputError> {
    let mut value = value;
    for wrapper in ["result", "proof"] {
        if value.get(wrapper).is_some_and(Value::is_object) {
            value = &value[wrapper];
        }
    }
    let root = hash(&value["state_root"], "state_root")?;
    if value.get("absent").is_some() {
        if value["absent"] != Value::Bool(true) {
            return Err(InputError("proof: absent must be true".into()));
        }
        let address = hash(&value["address"], "address")?.0;
        let proof = match &value["low"] {
            Value::Null => AbsenceProof::BelowFirst {
                address,
                count: number(value, "count")?,
                tree_root: hash(&value["tree_root"], "tree_root")?,
                burned: number(value, "burned")?,
                first: hash(&value["first"], "first")?.0,
            },
            low => AbsenceProof::After { address, low: account_from_json(low)? },
        };
        return Ok((Proven::Absence(proof), root));
    }
    Ok((Proven::Account(account_from_json(value)?), root))
}

/// Checks what a `tessera_getAccount` result says beside its proof (`exists`, `balance`,
/// `nonce`) against what the proof proves: an account's value, or no account (`false`, 0, 0).
/// A node could otherwise wrap a sound proof in a result that says something else, and a
/// script that reads the result once the proof checked would trust it. The same fields written
/// into the proof object itself are checked too.
///
/// # Errors
/// The first field that is present and says something else, named with both values.
pub fn check_result_fields(value: &Value, proven: &Proven) -> Result<(), String> {
    let holder = if value.get("result").is_some_and(Value::is_object) { &value["result"] } else { value };
    // The fields beside the proof, and any of them written into the proof object itself (a
    // bare proof with an `exists` added, say).
    let proof = holder.get("proof").filter(|proof| proof.is_object()).unwrap_or(holder);
    let (exists, balance, nonce) = match proven {
        Proven::Account(proof) => (true, proof.account.balance, proof.account.nonce),
        Proven::Absence(_) => (false, 0, 0),
    };
    for object in [holder, proof] {
        for (field, proven) in
            [("exists", json!(exists)), ("balance", json!(balance)), ("nonce", json!(nonce))]
        {
            match object.get(field) {
                Some(said) if *said != proven => {
                    return Err(format!("the result says {field} {said}, the proof {proven}"));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn account_from_json(value: &Value) -> Result<AccountProof, InputError> {
    let siblings =
        value["siblings"].as_array().ok_or_else(|| InputError("proof: no siblings array".into()))?;
    if siblings.len() > tree_height(u64::MAX) {
        return Err(InputError(format!("proof: {} siblings, more than any state can need", siblings.len())));
    }
    let siblings = siblings
        .iter()
        .map(|sibling| if sibling.is_null() { Ok(None) } else { hash(sibling, "a sibling").map(Some) })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AccountProof {
        address: hash(&value["address"], "address")?.0,
        account: Account { balance: number(value, "balance")?, nonce: number(value, "nonce")? },
        next: hash(&value["next"], "next")?.0,
        slot: number(value, "slot")?,
        count: number(value, "count")?,
        burned: number(value, "burned")?,
        first: hash(&value["first"], "first")?.0,
        siblings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_survives_its_json_and_a_bad_field_is_named() {
        let proof = AccountProof {
            address: [7; 32],
            account: Account { balance: 5, nonce: 2 },
            next: [8; 32],
            slot: 2,
            count: 3,
            burned: 9,
            first: [1; 32],
            siblings: vec![None, Some(Hash([4; 32]))],
        };
        let json = proof_json(&proof, &Hash([1; 32]), 12, &Hash([2; 32]));
        let wrapped = json!({"jsonrpc": "2.0", "id": 1, "result": {"exists": true, "proof": json}});
        assert_eq!(proof_from_json(&wrapped).unwrap(), (Proven::Account(proof.clone()), Hash([1; 32])));
        let mut bad = json.clone();
        bad["siblings"][1] = json!("zz");
        assert!(proof_from_json(&bad).unwrap_err().0.contains("sibling"));
        let mut bad = json.clone();
        bad["balance"] = json!(-1);
        assert!(proof_from_json(&bad).unwrap_err().0.contains("balance"));
        let mut bad = json.clone();
        bad["next"] = json!("00");
        assert!(proof_from_json(&bad).unwrap_err().0.contains("next"));
        let mut bad = json;
        bad["siblings"] = json!(vec![Value::Null; 65]);
        assert!(proof_from_json(&bad).unwrap_err().0.contains("65 siblings"));
        // Both kinds of absence proof.
        for absence in [
            AbsenceProof::After { address: [7; 32], low: AccountProof { address: [6; 32], ..proof.clone() } },
            AbsenceProof::BelowFirst {
                address: [0; 32],
                count: 3,
                tree_root: Hash([5; 32]),
                burned: 9,
                first: [1; 32],
            },
        ] {
            let json = absence_json(&absence, &Hash([1; 32]), 12, &Hash([2; 32]));
            let wrapped = json!({"result": {"exists": false, "proof": json}});
            assert_eq!(proof_from_json(&wrapped).unwrap(), (Proven::Absence(absence), Hash([1; 32])));
            let mut bad = json.clone();
            bad["absent"] = json!(false);
            assert!(proof_from_json(&bad).unwrap_err().0.contains("absent"));
        }
    }
}
