//! Sigverify: check every prefiltered signature, in batches on all cores.
//!
//! The system gathers the tick's signatures into one slice and hands it to
//! [`crate::kernels::sigverify`], which splits it into chunks across rayon's pool.

use bevy_ecs::prelude::*;
use tessera_components::{RejectReason, Stage, TxnBody, TxnSignature};

use crate::config::PipelineConfig;
use crate::counters::{PipelineCounters, RejectCounters};
use crate::kernels::sigverify::{VerifyItem, verify_each, verify_many};

/// The sigverify subsystem's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigverifySystems {
    /// Moves [`Stage::Prefiltered`] to [`Stage::Verified`] or [`Stage::Rejected`].
    Verify,
}

/// Verifies every prefiltered transaction's signature over its body.
pub fn verify_signatures(
    config: Res<PipelineConfig>,
    mut counters: ResMut<RejectCounters>,
    mut pipeline: ResMut<PipelineCounters>,
    mut txns: Query<(&TxnBody, &TxnSignature, &mut Stage)>,
) {
    let verdicts = {
        let items: Vec<VerifyItem<'_>> = txns
            .iter()
            .filter(|(_, _, stage)| **stage == Stage::Prefiltered)
            .map(|(body, signature, _)| VerifyItem {
                public_key: &body.sender,
                message: body.signing_bytes(),
                signature: &signature.0,
            })
            .collect();
        let mut verdicts = vec![false; items.len()];
        if config.sigverify_batch {
            verify_many(&items, &mut verdicts, config.sigverify_batch_size);
        } else {
            verify_each(&items, &mut verdicts);
        }
        verdicts
    };
    pipeline.verified += verdicts.len() as u64;
    // Same query, no structural change in between: iteration order is the same as above.
    let mut verdicts = verdicts.into_iter();
    for (_, _, mut stage) in &mut txns {
        if *stage != Stage::Prefiltered {
            continue;
        }
        let accepted = verdicts
            .next()
            .expect("one verdict per prefiltered transaction");
        *stage = if accepted {
            Stage::Verified
        } else {
            counters.bump(RejectReason::BadSignature);
            Stage::Rejected(RejectReason::BadSignature)
        };
    }
    assert!(verdicts.next().is_none(), "every verdict consumed");
}

/// Installs sigverify.
#[derive(Debug, Default)]
pub struct SigverifyPlugin;

impl crate::Plugin for SigverifyPlugin {
    fn build(&self, _world: &mut World, schedule: &mut Schedule) {
        schedule.add_systems(verify_signatures.in_set(SigverifySystems::Verify));
    }
}
