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
use std::collections::{BTreeMap, HashMap};

use tessera_components::{Account, RejectReason, Source, Stage, SubmittedBy, TxnBody, TxnId};

use crate::config::PipelineConfig;
use crate::counters::RejectCounters;
use crate::kernels::prefilter::{
    PrefilterColumns, PrefilterParams, PrefilterRow, check_row, check_scalar, check_simd,
};
use crate::ledger::Ledger;
use crate::mempool::{Mempool, debit};
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

/// `source` as bans count it: an IPv6 address by its /64 (an IPv4 address, mapped, whole).
fn grouped(source: Source) -> Source {
    match source {
        Source::Address(mut octets) if octets[..12] != [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] => {
            octets[8..].fill(0);
            Source::Address(octets)
        }
        other => other,
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
#[allow(clippy::too_many_arguments)]
pub fn filter_txns(
    config: Res<PipelineConfig>,
    ledger: Res<Ledger>,
    // Absent from a pipeline built of the stages before admission only (`Stages`).
    mempool: Option<Res<Mempool>>,
    mut counters: ResMut<RejectCounters>,
    mut columns: Local<PrefilterColumns>,
    mut codes: Local<Vec<u8>>,
    mut rows: Local<Vec<(Option<Account>, Option<RejectReason>)>>,
    mut named: Local<HashMap<(Source, [u8; 32], u64), (u64, TxnId)>>,
    mut coming: Local<HashMap<[u8; 32], BTreeMap<u64, (u128, u128)>>>,
    mut reach: Local<HashMap<[u8; 32], u64>>,
    mut txns: Query<(&TxnBody, &TxnId, Option<&SubmittedBy>, &mut Stage)>,
) {
    columns.clear();
    rows.clear();
    named.clear();
    for (body, id, from, stage) in &txns {
        if *stage == Stage::Received {
            // One account lookup serves the kernel's nonce column, the funds check and the
            // mempool's.
            let sender = ledger.account(&body.sender).copied();
            columns.push(row(body, sender.map_or(0, |account| account.nonce)));
            rows.push((sender, (!payable(body, sender.as_ref())).then_some(RejectReason::InsufficientFunds)));
        } else if let (Stage::Verifying, Some(from)) = (*stage, from) {
            // A source's body still being verified holds its sender and nonce against the same
            // source's later bodies, as the first choice in a tick does (below). Without it, a
            // source sending a fresh variant each tick had every one verified until the first
            // reached the pool: about two for each nonce the pool took one of, with
            // verification overlapping a tick (found in review). A forged body holds only its own
            // source's later bodies, for a tick or two.
            named.insert((grouped(from.0), body.sender, body.nonce), (u64::MAX, *id));
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
    let received = txns.iter().filter(|row| *row.3 == Stage::Received);
    for (((account, refusal), code), (body, id, from, _)) in rows.iter_mut().zip(codes.iter()).zip(received) {
        *refusal = reason(*code).or(*refusal);
        // A copy of a pending transaction goes on to be refused as the duplicate it is; what
        // else the mempool would refuse is refused here (but for being behind a gap, and for
        // what this tick's bodies owe together, below).
        let pending = mempool.as_ref().is_some_and(|mempool| mempool.contains(id));
        if let (None, Some(mempool), false) = (&refusal, mempool.as_ref(), pending) {
            *refusal = mempool.refusal(body, *account, true, 0);
        }
        // Of the bodies that pass so far that one source sends in a tick for one sender and
        // nonce, the one paying the most (the first of those) goes on to verification, with
        // copies of it (refused later as duplicates), unless the source has one on its way
        // already; the mempool takes one at most. Before, a source sending thousands of bodies
        // for a fresh nonce in one tick had each verified. Submissions without a source
        // (trusted addresses, the simulator's clients) are left out: as one source, a forged
        // body from any of them could have an honest one's transfer refused.
        if let (None, Some(from), false) = (refusal, from, pending) {
            let best = named.entry((grouped(from.0), body.sender, body.nonce)).or_insert((body.fee, *id));
            if body.fee > best.0 {
                *best = (body.fee, *id);
            }
        }
    }
    let received = txns.iter().filter(|row| *row.3 == Stage::Received);
    for ((_, refusal), (body, id, from, _)) in rows.iter_mut().zip(received) {
        let pending = mempool.as_ref().is_some_and(|mempool| mempool.contains(id));
        if let (None, Some(from), false) = (&refusal, from, pending)
            && named[&(grouped(from.0), body.sender, body.nonce)].1 != *id
        {
            *refusal = Some(RejectReason::NonceTaken);
        }
    }
    // A refusal for being behind a gap is not given while the nonces below are each pending or
    // on their way: still being verified, or passed this far this tick. Judged on the pool
    // alone, a run n, n + 1 sent together was refused for want of room behind gaps, which an
    // attacker's gapped transactions could keep full; judged on anything in the pipeline, the
    // attacker's own gapped bodies (or a replayed stale one) waived it (found in review). And
    // what the bodies on their way below this one owe (the least at each nonce not pending)
    // counts against the balance with what the pool holds: each alone fitting it, a thousand
    // bodies each debiting the whole balance were verified behind one paid transfer a tick
    // (found in review).
    coming.clear();
    reach.clear();
    if let Some(mempool) = mempool.as_ref() {
        // A received body's account was looked up above; only those still being verified are
        // looked up here.
        let received = txns.iter().filter(|row| *row.3 == Stage::Received).map(|(body, ..)| body);
        let passed = received
            .zip(rows.iter())
            .filter(|(_, (_, refusal))| refusal.is_none())
            .map(|(body, (account, _))| (body, account.map_or(0, |account| account.nonce)));
        let verifying = txns
            .iter()
            .filter(|row| *row.3 == Stage::Verifying)
            .map(|(body, ..)| (body, ledger.account(&body.sender).map_or(0, |account| account.nonce)));
        for (body, account_nonce) in passed.chain(verifying) {
            // A nonce the ledger has passed is no longer on its way (a body still being
            // verified for it, after its commit); one pending, or in a block this node packed,
            // is already owed or about to be, whatever a body on its way at it says. Priced at
            // its body's debit, a forged body there got the sender's next transaction refused
            // for funds (found in review).
            if body.nonce < account_nonce {
                continue;
            }
            let owed = mempool.is_pending(&body.sender, body.nonce)
                || body.nonce < mempool.next_unpacked(&body.sender, account_nonce);
            let debit = if owed { 0 } else { debit(body) };
            let least = coming.entry(body.sender).or_default().entry(body.nonce).or_insert((debit, 0));
            least.0 = least.0.min(debit);
        }
        for nonces in coming.values_mut() {
            let mut below = 0u128;
            for (debit, owed_below) in nonces.values_mut() {
                *owed_below = below;
                below += *debit;
            }
        }
        let received = txns.iter().filter(|row| *row.3 == Stage::Received);
        for ((account, refusal), (body, id, ..)) in rows.iter_mut().zip(received) {
            if refusal.is_some() || mempool.contains(id) {
                continue;
            }
            let nonces = coming.get(&body.sender);
            let owed_below = nonces
                .and_then(|nonces| nonces.range(..body.nonce).next_back())
                .map_or(0, |(_, (debit, below))| debit + below);
            // Refused only for being behind a gap, if at all (the rest was refused above, but
            // for what the bodies below owe): then whether the gap closes.
            let Some(strict) = mempool.refusal(body, *account, false, owed_below) else { continue };
            let gap_closes = mempool.refusal(body, *account, true, owed_below).is_none()
                && *reach.entry(body.sender).or_insert_with(|| {
                    let account_nonce = account.map_or(0, |account| account.nonce);
                    mempool.reach(&body.sender, account_nonce, config.nonce_window, |nonce| {
                        nonces.is_some_and(|nonces| nonces.contains_key(&nonce))
                    })
                }) >= body.nonce;
            *refusal = (!gap_closes).then_some(strict);
        }
    }
    let mut rows = rows.iter();
    for (_, _, _, mut stage) in &mut txns {
        if *stage != Stage::Received {
            continue;
        }
        let (_, refusal) = rows.next().expect("one row per received transaction");
        *stage = match refusal {
            None => Stage::Prefiltered,
            Some(reason) => {
                counters.bump(*reason);
                Stage::Rejected(*reason)
            }
        };
    }
    assert!(rows.next().is_none(), "every row consumed");
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
