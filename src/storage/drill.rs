//! Deterministic chains for exercising the store: a genesis, and blocks of valid transfers
//! executed on a ledger and sealed with a commit certificate. Used by the crash drill
//! (`tessera storage-drill`), `tessera bench storage` and the tests.
//!
//! Blocks are a function of the ledger and the height only, so a process that restarts from a
//! recovered ledger produces exactly the blocks it would have produced without the crash.
//! Transactions carry zero signatures and certificates zero signatures: the store checks
//! structure and checksums, never signatures, and execution does not verify them either.

use tessera_components::{
    Block, BlockFields, Hash, QuorumCertificate, Txn, TxnBody, TxnId, TxnSignature, VoteKind,
    block::Signature,
};
use tessera_systems::Ledger;
use tessera_systems::execute::execute_block;

/// Balance of every funded drill account.
pub const DRILL_BALANCE: u64 = 1 << 40;

/// The address of drill account `index`.
pub fn account(index: u64) -> [u8; 32] {
    Hash::in_domain("tessera 2026 storage drill account", &[&index.to_le_bytes()]).0
}

/// `senders` funded accounts.
pub fn genesis(senders: u64) -> Vec<([u8; 32], u64)> {
    (0..senders).map(|index| (account(index), DRILL_BALANCE)).collect()
}

/// Builds block `parent_height + 1` of `txns` transfers over the `senders` funded accounts,
/// executes it on `ledger` (which becomes the state after it), and returns it sealed, with a
/// commit certificate.
///
/// # Panics
/// If `txns` exceeds `senders` (each sender sends at most once per block, so every nonce is
/// right).
pub fn next_block(
    ledger: &mut Ledger,
    parent: Hash,
    height: u64,
    senders: u64,
    txns: usize,
) -> (Block, QuorumCertificate) {
    assert!(txns as u64 <= senders, "at most one transfer per sender per block");
    let first = height.wrapping_mul(txns as u64);
    let txns: Vec<Txn> = (0..txns as u64)
        .map(|j| {
            let sender = account((first + j) % senders);
            Txn {
                body: TxnBody {
                    chain_id: 1,
                    reserved: 0,
                    sender,
                    recipient: account(senders + (first + j) % (senders * 4)),
                    amount: 1 + j % 7,
                    fee: 1,
                    nonce: ledger.nonce_of(&sender),
                },
                signature: TxnSignature([0; 64]),
            }
        })
        .collect();
    let ids: Vec<TxnId> = txns.iter().map(Txn::id).collect();
    let fields = BlockFields {
        height,
        view: height,
        timestamp_ms: height * 1_000,
        proposer: (height % 4) as u32,
        parent,
        state_root: Hash::ZERO,
    };
    let sealed = execute_block(ledger, Block::assemble(fields, txns, &ids), &ids);
    let certificate = QuorumCertificate {
        kind: VoteKind::Commit,
        view: height,
        height,
        block: sealed.hash,
        signers: vec![0, 1, 2],
        signatures: vec![Signature([0; 64]); 3],
    };
    (sealed.block, certificate)
}

/// Every file directly in `dir`, by name, with its bytes: what the crash tests compare to show
/// a directory unchanged (or copy to damage a twin of it).
///
/// # Errors
/// An unreadable directory or file, or a name that is not UTF-8.
pub fn dir_contents(dir: &std::path::Path) -> std::io::Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut files = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().into_string().map_err(|name| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("file name {name:?} is not UTF-8"))
        })?;
        files.insert(name, std::fs::read(entry.path())?);
    }
    Ok(files)
}
