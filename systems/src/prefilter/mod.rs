//! Prefilter: refuse what is cheap to refuse before any curve arithmetic.
//!
//! The system gathers the tick's received transactions into column arrays (one per checked
//! field, plus the sender's account nonce) and runs [`crate::kernels::prefilter`] over them:
//! the SIMD kernel by default, the scalar reference with `prefilter_simd = false`.

use bevy_ecs::prelude::*;
use tessera_components::{RejectReason, Stage, TxnBody};

use crate::config::PipelineConfig;
use crate::counters::RejectCounters;
use crate::kernels::prefilter::{
    PrefilterColumns, PrefilterParams, PrefilterRow, check_row, check_scalar, check_simd,
};
use crate::ledger::Ledger;

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

fn row(body: &TxnBody, ledger: &Ledger) -> PrefilterRow {
    PrefilterRow {
        chain_id: u64::from(body.chain_id),
        reserved: u64::from(body.reserved),
        fee: body.fee,
        amount: body.amount,
        self_transfer: u64::from(body.sender == body.recipient),
        nonce: body.nonce,
        account_nonce: ledger.nonce_of(&body.sender),
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
    match reason(check_row(&row(body, ledger), &params(config))) {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

/// Applies the checks to every received transaction.
pub fn filter_txns(
    config: Res<PipelineConfig>,
    ledger: Res<Ledger>,
    mut counters: ResMut<RejectCounters>,
    mut columns: Local<PrefilterColumns>,
    mut codes: Local<Vec<u8>>,
    mut txns: Query<(&TxnBody, &mut Stage)>,
) {
    columns.clear();
    for (body, stage) in &txns {
        if *stage == Stage::Received {
            columns.push(row(body, &ledger));
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
    let mut codes = codes.iter();
    for (_, mut stage) in &mut txns {
        if *stage != Stage::Received {
            continue;
        }
        let code = *codes.next().expect("one code per received transaction");
        *stage = match reason(code) {
            None => Stage::Prefiltered,
            Some(reason) => {
                counters.bump(reason);
                Stage::Rejected(reason)
            }
        };
    }
    assert!(codes.next().is_none(), "every code consumed");
}

/// Installs the prefilter.
#[derive(Debug, Default)]
pub struct PrefilterPlugin;

impl crate::Plugin for PrefilterPlugin {
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
        let good = TxnBody {
            chain_id: 1,
            reserved: 0,
            sender: [1; 32],
            recipient: [2; 32],
            amount: 1,
            fee: 5,
            nonce: 0,
        };
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
    fn reasons_follow_the_kernel_check_names() {
        for (reason, name) in REASONS.iter().zip(crate::kernels::prefilter::CHECKS) {
            assert_eq!(reason.name(), name);
        }
    }
}
