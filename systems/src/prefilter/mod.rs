//! Prefilter: refuse what is cheap to refuse before any curve arithmetic.
//!
//! The system gathers the tick's received transactions into column arrays (one per checked
//! field, plus the sender's account nonce) and runs [`crate::kernels::prefilter`] over them:
//! the SIMD kernel by default, the scalar reference with `prefilter_simd = false`. A
//! transaction that passes is then refused for insufficient funds if its sender has no account
//! or a balance below its amount plus fee: one lookup, done before any signature is checked,
//! so a flood from keys that own nothing costs no curve arithmetic. Last, it is refused for
//! what the mempool would refuse it for as the pool stands ([`Mempool::refusal`]): a nonce
//! taken, pending debits past the balance, no room. Those depend on the body alone, so a
//! sender's set of variants that could never be admitted costs no verification either.

use bevy_ecs::prelude::*;
use std::collections::HashMap;

use tessera_components::{Account, RejectReason, Source, Stage, SubmittedBy, TxnBody, TxnId};

use crate::config::PipelineConfig;
use crate::counters::RejectCounters;
use crate::kernels::prefilter::{
    PrefilterColumns, PrefilterParams, PrefilterRow, check_row, check_scalar, check_simd,
};
use crate::ledger::Ledger;
use crate::mempool::Mempool;
use crate::plugin::Plugin;

/// The prefilter subsystem's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrefilterSystems {
    /// Moves [`Stage::Received`] to [`Stage::Prefiltered`] or [`Stage::Rejected`].
    Filter,
}

/// The kernel's checks, in `CHECKS` order, are the refusals `WrongChain` through `NonceTooFar`:
/// `RejectReason::ALL[1..=7]` (a test holds the two orders together).
const REASONS: &[RejectReason] = RejectReason::ALL.split_at(1).1.split_at(7).0;

fn params(config: &PipelineConfig) -> PrefilterParams {
    PrefilterParams {
        chain_id: u64::from(config.chain_id),
        fee_floor: config.fee_floor,
        nonce_window: config.nonce_window,
    }
}

/// Whether the sender's executed account covers this one transaction's amount and fee.
fn payable(body: &TxnBody, sender: Option<&Account>) -> bool {
    sender
        .is_some_and(|account| u128::from(account.balance) >= u128::from(body.amount) + u128::from(body.fee))
}

/// The kernel's row for `body`, whose sender's executed nonce is `account_nonce`.
fn row(body: &TxnBody, account_nonce: u64) -> PrefilterRow {
    PrefilterRow {
        chain_id: u64::from(body.chain_id),
        reserved: u64::from(body.reserved),
        fee: body.fee,
        amount: body.amount,
        self_transfer: u64::from(body.sender == body.recipient),
        nonce: body.nonce,
        account_nonce,
    }
}

fn reason(code: u8) -> Option<RejectReason> {
    code.checked_sub(1).map(|index| REASONS[usize::from(index)])
}

/// The prefilter's checks on one body, in order. Transactions are fixed-size, so "oversize"
/// cannot arise here: the wire codec refuses oversized frames before any transaction exists.
///
/// # Errors
/// The first failing check's reason.
pub fn check_body(body: &TxnBody, config: &PipelineConfig, ledger: &Ledger) -> Result<(), RejectReason> {
    match reason(check_row(&row(body, ledger.nonce_of(&body.sender)), &params(config))) {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

/// Applies the checks to every received transaction.
pub fn filter_txns(
    config: Res<PipelineConfig>,
    ledger: Res<Ledger>,
    // Absent from a pipeline built of the stages before admission only (`Stages`).
    mempool: Option<Res<Mempool>>,
    mut counters: ResMut<RejectCounters>,
    mut columns: Local<PrefilterColumns>,
    mut codes: Local<Vec<u8>>,
    mut refusals: Local<Vec<Option<RejectReason>>>,
    mut named: Local<HashMap<(Source, [u8; 32], u64), TxnId>>,
    mut lowest: Local<HashMap<[u8; 32], u64>>,
    mut txns: Query<(&TxnBody, &TxnId, Option<&SubmittedBy>, &mut Stage)>,
) {
    columns.clear();
    refusals.clear();
    named.clear();
    // Each sender's lowest nonce on its way through the pipeline (this tick's, and what is still
    // being verified): it may close a gap before the insert ([`Mempool::refusal`]).
    lowest.clear();
    if mempool.is_some() {
        for (body, _, _, stage) in &txns {
            if !matches!(stage, Stage::Rejected(_)) {
                let nonce = lowest.entry(body.sender).or_insert(body.nonce);
                *nonce = (*nonce).min(body.nonce);
            }
        }
    }
    for (body, id, from, stage) in &txns {
        if *stage == Stage::Received {
            // One account lookup serves the kernel's nonce column, the funds check and the
            // mempool's.
            let sender = ledger.account(&body.sender);
            columns.push(row(body, sender.map_or(0, |account| account.nonce)));
            // One body per sender and nonce from one source a tick goes on to verification (and
            // copies of it, refused later as duplicates): the mempool takes one at most, and a
            // replacement can come next tick. Before, a source sending thousands of bodies for a
            // fresh nonce in one tick had each verified.
            let repeated = from
                .is_some_and(|from| *named.entry((from.0, body.sender, body.nonce)).or_insert(*id) != *id);
            refusals.push(if !payable(body, sender) {
                Some(RejectReason::InsufficientFunds)
            } else if repeated {
                Some(RejectReason::NonceTaken)
            } else {
                // A copy of a pending transaction goes on to be refused as the duplicate it is.
                mempool.as_ref().filter(|mempool| !mempool.contains(id)).and_then(|mempool| {
                    let lower_nonce_coming =
                        lowest.get(&body.sender).is_some_and(|nonce| *nonce < body.nonce);
                    mempool.refusal(body, sender.copied(), lower_nonce_coming)
                })
            });
        }
    }
    codes.clear();
    codes.resize(columns.len(), 0);
    if config.prefilter_simd {
        check_simd(&columns, &params(&config), &mut codes);
    } else {
        check_scalar(&columns, &params(&config), &mut codes);
    }
    // Same query, no structural change in between: the same rows in the same order.
    let mut codes = codes.iter().zip(refusals.iter());
    for (_, _, _, mut stage) in &mut txns {
        if *stage != Stage::Received {
            continue;
        }
        let (code, refusal) = codes.next().expect("one code per received transaction");
        let refusal = reason(*code).or(*refusal);
        *stage = match refusal {
            None => Stage::Prefiltered,
            Some(reason) => {
                counters.bump(reason);
                Stage::Rejected(reason)
            }
        };
    }
    assert!(codes.next().is_none(), "every code consumed");
}

/// Bytes of one row of [`fuzz_txn_body`]'s input: a transaction, then the sender's account
/// nonce, the sender's balance and the recipient's balance (u64 little-endian each).
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub const FUZZ_TXN_ROW: usize = tessera_components::constants::TXN_SIZE + 24;

/// Fuzz harness for the transaction body: `data` is a 20-byte policy (chain id u32, fee floor
/// and nonce window u64) then up to 67 rows of [`FUZZ_TXN_ROW`] bytes. Every 160 bytes are a
/// transaction (the layout is Pod); the SIMD prefilter kernel must give the scalar reference's
/// code for every row, [`check_body`] must agree with both, and applying the body to a ledger
/// must change nothing, charge only the fee (a failing transfer that can pay it), or move exactly
/// amount and fee; it always conserves supply, and the last two consume the nonce. Run by `cargo test` on seeded inputs and by `fuzz/fuzz_targets/txn_body.rs`.
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub fn fuzz_txn_body(data: &[u8]) {
    use tessera_components::{Account, Txn};

    let Some((policy, rows)) = data.split_first_chunk::<20>() else {
        return;
    };
    let chain_id = u32::from_le_bytes(policy[..4].try_into().expect("4 bytes"));
    let fee_floor = u64::from_le_bytes(policy[4..12].try_into().expect("8 bytes"));
    let nonce_window = u64::from_le_bytes(policy[12..].try_into().expect("8 bytes")).max(1);
    let config = PipelineConfig { chain_id, fee_floor, nonce_window, ..PipelineConfig::default() };
    let params = params(&config);
    let u64_at = |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let mut columns = PrefilterColumns::default();
    let mut bodies = Vec::new();
    for row_bytes in rows.chunks_exact(FUZZ_TXN_ROW).take(67) {
        let txn: Txn = bytemuck::pod_read_unaligned(&row_bytes[..tessera_components::constants::TXN_SIZE]);
        let tail = &row_bytes[tessera_components::constants::TXN_SIZE..];
        let (account_nonce, sender_balance, recipient_balance) =
            (u64_at(tail, 0), u64_at(tail, 8), u64_at(tail, 16));
        columns.push(row(&txn.body, account_nonce));
        bodies.push((txn.body, account_nonce, sender_balance, recipient_balance));
    }
    let mut scalar = vec![0; columns.len()];
    let mut simd = vec![u8::MAX; columns.len()];
    check_scalar(&columns, &params, &mut scalar);
    check_simd(&columns, &params, &mut simd);
    assert_eq!(scalar, simd, "the SIMD prefilter disagrees with the scalar reference");
    for ((body, account_nonce, sender_balance, recipient_balance), code) in bodies.into_iter().zip(scalar) {
        assert!(usize::from(code) <= REASONS.len());
        // Balances sum to at most u64::MAX, as a ledger requires (GenesisError::SupplyTooLarge),
        // so no recipient's balance can overflow.
        let recipient_balance = recipient_balance.min(u64::MAX - sender_balance);
        // The reason check_body reports is the kernel's code, against a ledger with that nonce.
        let mut keys = vec![body.sender];
        let mut accounts = vec![Account { balance: sender_balance, nonce: account_nonce }];
        if body.recipient != body.sender {
            keys.push(body.recipient);
            accounts.push(Account { balance: recipient_balance, nonce: 0 });
        }
        let supply = accounts.iter().map(|a| u128::from(a.balance)).sum();
        let mut ledger = Ledger::from_parts(crate::ledger::LedgerParts { keys, accounts, burned: 0, supply })
            .expect("distinct keys");
        assert_eq!(check_body(&body, &config, &ledger).err(), reason(code));
        let root = ledger.state_root();
        match ledger.apply(&body) {
            Err(_) if ledger.state_root() == root => {}
            Err(reason) => {
                // The fee rule: a failed transfer with the right nonce pays its fee if it can.
                assert!(matches!(reason, RejectReason::InsufficientFunds | RejectReason::Overflow));
                assert_eq!(body.nonce, account_nonce, "a fee charged out of nonce order");
                assert_eq!(ledger.nonce_of(&body.sender), account_nonce + 1);
                assert_eq!(ledger.balance_of(&body.sender), sender_balance - body.fee);
                assert_eq!(ledger.balance_of(&body.recipient), recipient_balance, "a failed amount moved");
                assert_eq!(ledger.burned(), body.fee);
            }
            Ok(()) => {
                assert_ne!(code, 5, "a self-transfer was applied");
                assert_eq!(body.nonce, account_nonce, "applied out of nonce order");
                assert_eq!(ledger.nonce_of(&body.sender), account_nonce + 1);
                assert_eq!(ledger.balance_of(&body.sender), sender_balance - body.amount - body.fee);
                assert_eq!(ledger.balance_of(&body.recipient), recipient_balance + body.amount);
                assert_eq!(ledger.burned(), body.fee);
            }
        }
        assert_eq!(ledger.balance_sum(), ledger.supply(), "supply not conserved");
    }
}

/// Installs the prefilter.
#[derive(Debug, Default)]
pub struct PrefilterPlugin;

impl Plugin for PrefilterPlugin {
    fn build(&self, _world: &mut World, schedule: &mut Schedule) {
        schedule.add_systems(filter_txns.in_set(PrefilterSystems::Filter));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_names_its_reason() {
        let config = PipelineConfig { fee_floor: 5, nonce_window: 10, ..PipelineConfig::default() };
        let mut ledger = Ledger::from_genesis(&[([1; 32], 1000)]).unwrap();
        let good = TxnBody::transfer(1, [1; 32], [2; 32], 1, 5, 0);
        assert_eq!(check_body(&good, &config, &ledger), Ok(()));
        let cases = [
            (TxnBody { chain_id: 2, ..good }, RejectReason::WrongChain),
            (TxnBody { reserved: 1, ..good }, RejectReason::NonzeroReserved),
            (TxnBody { fee: 4, ..good }, RejectReason::FeeTooLow),
            (TxnBody { amount: 0, ..good }, RejectReason::ZeroAmount),
            (TxnBody { recipient: [1; 32], ..good }, RejectReason::SelfTransfer),
            (TxnBody { nonce: 10, ..good }, RejectReason::NonceTooFar),
        ];
        for (body, reason) in cases {
            assert_eq!(check_body(&body, &config, &ledger), Err(reason));
        }
        assert_eq!(check_body(&TxnBody { nonce: 9, ..good }, &config, &ledger), Ok(()));
        ledger.apply(&good).unwrap();
        assert_eq!(check_body(&good, &config, &ledger), Err(RejectReason::NonceStale));
        assert_eq!(check_body(&TxnBody { nonce: 10, ..good }, &config, &ledger), Ok(()));
    }

    #[test]
    fn fuzz_txn_body_survives_seeded_inputs() {
        use tessera_components::fuzz::{FuzzSeeds, fuzz_corpus};

        let mut sound = Vec::new();
        sound.extend_from_slice(&1u32.to_le_bytes());
        sound.extend_from_slice(&1u64.to_le_bytes());
        sound.extend_from_slice(&16u64.to_le_bytes());
        let good = TxnBody {
            chain_id: 1,
            reserved: 0,
            sender: [1; 32],
            recipient: [2; 32],
            amount: 5,
            fee: 2,
            nonce: 3,
        };
        for row in 0..6u64 {
            let body = TxnBody { nonce: 3 + row % 3, amount: row, ..good };
            sound.extend_from_slice(bytemuck::bytes_of(&body));
            sound.extend_from_slice(&[7; 64]);
            for value in [3, 100 + row * 3, u64::MAX - row] {
                sound.extend_from_slice(&value.to_le_bytes());
            }
        }
        fuzz_txn_body(&sound);
        tessera_components::fuzz::fuzz_write_seeds("txn_body", &[&sound]);
        let mut seeds = FuzzSeeds::new(0x7b0d);
        for round in 0..3000 {
            let input = if round % 10 == 0 { seeds.bytes(20 + round % 700) } else { seeds.mutate(&sound) };
            fuzz_txn_body(&input);
        }
        for input in fuzz_corpus("txn_body") {
            fuzz_txn_body(&input);
        }
    }

    #[test]
    fn reasons_follow_the_kernel_check_names() {
        for (reason, name) in REASONS.iter().zip(crate::kernels::prefilter::CHECKS) {
            assert_eq!(reason.name(), name);
        }
    }
}
