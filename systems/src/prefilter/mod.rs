//! Prefilter: refuse what is cheap to refuse before any curve arithmetic.

use bevy_ecs::prelude::*;
use tessera_components::{RejectReason, Stage, TxnBody};

use crate::config::PipelineConfig;
use crate::counters::RejectCounters;
use crate::ledger::Ledger;

/// The prefilter subsystem's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrefilterSystems {
    /// Moves [`Stage::Received`] to [`Stage::Prefiltered`] or [`Stage::Rejected`].
    Filter,
}

/// The prefilter's checks on one body, in order. Transactions are fixed-size, so "oversize"
/// cannot arise here: the wire codec refuses oversized frames before any transaction exists.
///
/// # Errors
/// The first failing check's reason.
pub fn check_body(body: &TxnBody, config: &PipelineConfig, ledger: &Ledger) -> Result<(), RejectReason> {
    if body.chain_id != config.chain_id {
        return Err(RejectReason::WrongChain);
    }
    if body.reserved != 0 {
        return Err(RejectReason::NonzeroReserved);
    }
    if body.fee < config.fee_floor {
        return Err(RejectReason::FeeTooLow);
    }
    if body.amount == 0 {
        return Err(RejectReason::ZeroAmount);
    }
    if body.sender == body.recipient {
        return Err(RejectReason::SelfTransfer);
    }
    let account_nonce = ledger.nonce_of(&body.sender);
    if body.nonce < account_nonce {
        return Err(RejectReason::NonceStale);
    }
    if body.nonce - account_nonce >= config.nonce_window {
        return Err(RejectReason::NonceTooFar);
    }
    Ok(())
}

/// Applies [`check_body`] to every received transaction.
pub fn filter_txns(
    config: Res<PipelineConfig>,
    ledger: Res<Ledger>,
    mut counters: ResMut<RejectCounters>,
    mut txns: Query<(&TxnBody, &mut Stage)>,
) {
    for (body, mut stage) in &mut txns {
        if *stage != Stage::Received {
            continue;
        }
        *stage = match check_body(body, &config, &ledger) {
            Ok(()) => Stage::Prefiltered,
            Err(reason) => {
                counters.bump(reason);
                Stage::Rejected(reason)
            }
        };
    }
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
}
