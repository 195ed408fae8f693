//! Account proofs in JSON, as `tessera_getAccount` writes them and `tessera verify-proof`
//! reads them. Hashes are 64 lowercase hex digits; a sibling the tree does not have is `null`.

use serde_json::{Value, json};
use tessera_components::state::{AccountProof, tree_height};
use tessera_components::{Account, Hash};

use crate::InputError;

/// The proof as JSON, with the root, height and block it was taken at.
pub fn proof_json(proof: &AccountProof, state_root: &Hash, height: u64, block_hash: &Hash) -> Value {
    json!({
        "address": hex::encode(proof.address),
        "balance": proof.account.balance,
        "nonce": proof.account.nonce,
        "slot": proof.slot,
        "count": proof.count,
        "burned": proof.burned,
        "siblings": proof.siblings.iter().map(|s| s.map(|h| h.to_hex())).collect::<Vec<_>>(),
        "state_root": state_root.to_hex(),
        "height": height,
        "block_hash": block_hash.to_hex(),
    })
}

pub(crate) fn hash(value: &Value, what: &str) -> Result<Hash, InputError> {
    value
        .as_str()
        .and_then(|text| hex::decode(text.trim_start_matches("0x")).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .map(Hash)
        .ok_or_else(|| InputError(format!("proof: {what} is not 64 hex digits")))
}

fn number(object: &Value, field: &str) -> Result<u64, InputError> {
    object[field].as_u64().ok_or_else(|| InputError(format!("proof: {field} is not an unsigned integer")))
}

/// Reads a proof, and the state root it names, from [`proof_json`]'s form (or a response or
/// result that holds one).
///
/// # Errors
/// A field missing or malformed, or more siblings than any state can need.
pub fn proof_from_json(value: &Value) -> Result<(AccountProof, Hash), InputError> {
    let mut value = value;
    for wrapper in ["result", "proof"] {
        if value.get(wrapper).is_some_and(Value::is_object) {
            value = &value[wrapper];
        }
    }
    let siblings =
        value["siblings"].as_array().ok_or_else(|| InputError("proof: no siblings array".into()))?;
    if siblings.len() > tree_height(u64::MAX) {
        return Err(InputError(format!("proof: {} siblings, more than any state can need", siblings.len())));
    }
    let siblings = siblings
        .iter()
        .map(|sibling| if sibling.is_null() { Ok(None) } else { hash(sibling, "a sibling").map(Some) })
        .collect::<Result<Vec<_>, _>>()?;
    let proof = AccountProof {
        address: hash(&value["address"], "address")?.0,
        account: Account { balance: number(value, "balance")?, nonce: number(value, "nonce")? },
        slot: number(value, "slot")?,
        count: number(value, "count")?,
        burned: number(value, "burned")?,
        siblings,
    };
    Ok((proof, hash(&value["state_root"], "state_root")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_survives_its_json_and_a_bad_field_is_named() {
        let proof = AccountProof {
            address: [7; 32],
            account: Account { balance: 5, nonce: 2 },
            slot: 2,
            count: 3,
            burned: 9,
            siblings: vec![None, Some(Hash([4; 32]))],
        };
        let json = proof_json(&proof, &Hash([1; 32]), 12, &Hash([2; 32]));
        let wrapped = json!({"jsonrpc": "2.0", "id": 1, "result": {"exists": true, "proof": json}});
        assert_eq!(proof_from_json(&wrapped).unwrap(), (proof, Hash([1; 32])));
        let mut bad = json.clone();
        bad["siblings"][1] = json!("zz");
        assert!(proof_from_json(&bad).unwrap_err().0.contains("sibling"));
        let mut bad = json.clone();
        bad["balance"] = json!(-1);
        assert!(proof_from_json(&bad).unwrap_err().0.contains("balance"));
        let mut bad = json;
        bad["siblings"] = json!(vec![Value::Null; 65]);
        assert!(proof_from_json(&bad).unwrap_err().0.contains("65 siblings"));
    }
}
