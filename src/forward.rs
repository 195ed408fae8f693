//! Client transactions on their way to the other validators, shared by the node and the
//! simulator (each calls [`Forwarding::after_tick`] after [`crate::driver::tick`]): forwarded
//! only once this validator's own pipeline admitted them, so a batch of forged or unpayable
//! transactions costs the validator that took it from a client, not every validator; and, in a
//! large set, sent again to the leaders of a later view when the first ones did not include
//! them ([`Forwarded`]).

use std::collections::{HashSet, VecDeque};

use tessera_components::constants::TXN_SIZE;
use tessera_components::{Txn, TxnId};
use tessera_systems::consensus::core::Destination;
use tessera_systems::consensus::forward::Forwarded;
use tessera_systems::{Pipeline, TxnRejected};

use crate::driver::Ticked;

/// A validator's forwarding of client transactions: those waiting for admission, and, when it
/// forwards to the next leaders, what it forwarded and may send again.
#[derive(Debug)]
pub struct Forwarding {
    awaiting: AwaitingAdmission,
    forwarded: Forwarded,
}

/// What to forward after a tick: transactions, and to whom.
#[derive(Debug)]
pub struct Forward {
    /// Every other validator, or in a large set the next leaders.
    pub destination: Destination,
    /// The transactions, with their ids, in the order to send them.
    pub txns: Vec<(Txn, TxnId)>,
}

impl Forwarding {
    /// Nothing waiting or remembered; batches fit frames of `frame_bytes_max` (and 1 MiB).
    pub fn new(frame_bytes_max: usize) -> Forwarding {
        Forwarding { awaiting: AwaitingAdmission::new(frame_bytes_max), forwarded: Forwarded::default() }
    }

    /// A client transaction the pipeline took, whose id is `id`: it is forwarded once admitted.
    /// False when the queue is full (it is then not forwarded; this validator can still propose
    /// it).
    pub fn push(&mut self, txn: Txn, id: TxnId) -> bool {
        self.awaiting.push(txn, id)
    }

    /// Most transactions in one forwarded batch (one frame).
    pub fn batch_max(&self) -> usize {
        self.awaiting.batch_max()
    }

    /// After `ticked`: the client transactions the tick admitted, to every other validator, or
    /// in a large set to the next leaders
    /// ([`tessera_systems::consensus::core::Core::forward_destination`]), with what was
    /// forwarded to earlier leaders [`FORWARD_VIEWS`] views ago and is still pending here
    /// (what the blocks it finalized included is forgotten first). Forwarding before admission
    /// made every validator pay for a batch only this one had checked.
    ///
    /// [`FORWARD_VIEWS`]: tessera_systems::consensus::core::FORWARD_VIEWS
    pub fn after_tick(&mut self, pipeline: &Pipeline, ticked: &Ticked) -> Forward {
        let mut txns = self.awaiting.take_admitted(pipeline, &ticked.rejections);
        let Some(core) = pipeline.consensus().map(|consensus| &consensus.core) else {
            return Forward { destination: Destination::All, txns };
        };
        if core.forwards_to_leaders() {
            let included = ticked.finalized.iter().flat_map(|finalized| &finalized.outcomes);
            self.forwarded.included(included.map(|outcome| &outcome.id));
            let view = core.view();
            self.forwarded.note(view, txns.iter().copied(), |txn| pipeline.is_next_in_line(txn));
            txns.extend(self.forwarded.due(view, |id| pipeline.is_pending(id)));
        }
        Forward { destination: core.forward_destination(), txns }
    }
}

/// Client transactions submitted to the pipeline and not yet admitted or refused, oldest first.
#[derive(Debug)]
struct AwaitingAdmission {
    queue: VecDeque<(Txn, TxnId, u64)>,
    /// Ticks seen so far, to age entries out.
    tick: u64,
    /// Transactions per forwarded batch, so each batch fits a peer frame.
    batch_max: usize,
}

impl AwaitingAdmission {
    /// Transactions held at most (at 160 bytes each, 10 MiB).
    const MAX: usize = 1 << 16;
    /// Ticks a transaction waits for admission at most; admission takes one or two (the
    /// signature check may overlap a tick), so one still unseen after this was lost or went
    /// straight into a block.
    const TICKS_MAX: u64 = 64;

    /// Bytes of a forwarded batch at most, whatever this node's own frame limit: receivers
    /// set theirs for themselves, and a frame over a receiver's limit ends the link.
    const BATCH_BYTES_MAX: usize = 1 << 20;

    /// An empty queue whose batches fit frames of `frame_bytes_max`, and 1 MiB.
    fn new(frame_bytes_max: usize) -> AwaitingAdmission {
        // A `Txns` frame is its header, a count, then the transactions.
        let frame_bytes = frame_bytes_max.min(Self::BATCH_BYTES_MAX);
        let batch_max = (frame_bytes.saturating_sub(256) / TXN_SIZE).max(1);
        AwaitingAdmission { queue: VecDeque::new(), tick: 0, batch_max }
    }

    /// Queues a transaction the pipeline took; false when the queue is full (it is then admitted
    /// here but not forwarded: this node can still propose it).
    fn push(&mut self, txn: Txn, id: TxnId) -> bool {
        debug_assert_eq!(id, txn.id());
        if self.queue.len() >= Self::MAX {
            return false;
        }
        self.queue.push_back((txn, id, self.tick));
        true
    }

    /// Transactions waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.len()
    }

    /// Most transactions in one forwarded batch (one frame).
    fn batch_max(&self) -> usize {
        self.batch_max
    }

    /// After a tick: takes out, with their ids, the transactions now pending in the pipeline's
    /// mempool (admitted); drops those it refused (`rejections`) and those waiting longer than
    /// [`Self::TICKS_MAX`]; keeps the rest (still being checked).
    fn take_admitted(&mut self, pipeline: &Pipeline, rejections: &[TxnRejected]) -> Vec<(Txn, TxnId)> {
        self.tick += 1;
        if self.queue.is_empty() {
            // Most ticks: nothing to look up, so no set of this tick's refusals is built.
            return Vec::new();
        }
        let rejected: HashSet<TxnId> = rejections.iter().map(|rejected| rejected.id).collect();
        let mut admitted = Vec::new();
        // A transaction queued twice (a client sent it twice) goes out once.
        let mut taken = HashSet::new();
        let before = self.queue.len();
        let tick = self.tick;
        self.queue.retain(|(txn, id, queued)| {
            if pipeline.is_pending(id) {
                if taken.insert(*id) {
                    admitted.push((*txn, *id));
                }
                return false;
            }
            !rejected.contains(id) && tick - queued <= Self::TICKS_MAX
        });
        debug_assert!(self.queue.len() + admitted.len() <= before);
        debug_assert_eq!(taken.len(), admitted.len());
        admitted
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use ed25519_dalek::SigningKey;
    use tessera_components::TxnBody;
    use tessera_systems::consensus::core::{ConsensusConfig, Core, ValidatorSet};
    use tessera_systems::workload::{sign, signing_key};
    use tessera_systems::{ChainTip, Ledger, PipelineConfig, Stages};

    use super::*;

    /// A signed transfer of 1 from `key`'s account at nonce 0, on the default chain.
    pub(crate) fn transfer(key: &SigningKey) -> Txn {
        let body = TxnBody {
            chain_id: PipelineConfig::default().chain_id,
            reserved: 0,
            sender: key.verifying_key().to_bytes(),
            recipient: [0xee; 32],
            amount: 1,
            fee: 1,
            nonce: 0,
        };
        sign(key, body)
    }

    /// A client batch of forged transactions is never forwarded; the valid transactions beside
    /// them are, once admitted, and once each.
    /// With verification overlapping the next tick (the default) too: a copy refused as a
    /// duplicate while its original was still being verified dropped the original from this
    /// queue, so it was admitted but never forwarded (found in review of a change that
    /// refused copies before verification; they now take the original's verdict).
    #[test]
    fn only_admitted_transactions_are_forwarded() -> Result<(), Box<dyn std::error::Error>> {
        for overlap in [false, true] {
            only_admitted_transactions_are_forwarded_with(overlap)?;
        }
        Ok(())
    }

    fn only_admitted_transactions_are_forwarded_with(
        overlap: bool,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let keys: Vec<SigningKey> = (0..8).map(|i| signing_key(0xf0, i)).collect();
        let genesis: Vec<([u8; 32], u64)> =
            keys.iter().map(|key| (key.verifying_key().to_bytes(), 1 << 40)).collect();
        let config = PipelineConfig { sigverify_overlap: overlap, ..PipelineConfig::default() };
        let ledger = Ledger::from_genesis(&genesis)?;
        let tip = ChainTip::genesis(&ledger);
        // Validator 1 of four, which does not lead view 0: what it admits stays pending.
        let validators: Vec<SigningKey> = (0..4).map(|i| signing_key(0x7a, i)).collect();
        let set = ValidatorSet::new(validators.iter().map(|key| key.verifying_key().to_bytes()).collect());
        let core = Core::new(1, validators[1].clone(), set, ConsensusConfig::default(), 0, tip.hash);
        let stages = Stages::Validator { core: Box::new(core), history_bytes_max: 1 << 20 };
        let mut pipeline = Pipeline::with_stages(config, ledger, tip, stages)?;
        let mut awaiting = AwaitingAdmission::new(1 << 20);
        let honest: Vec<Txn> = keys[..2].iter().map(transfer).collect();
        let forged: Vec<Txn> = keys[2..]
            .iter()
            .map(|key| {
                let mut txn = transfer(key);
                txn.signature.0[7] ^= 1;
                txn
            })
            .collect();
        for txn in forged.iter().chain(&honest) {
            assert!(pipeline.submit(*txn));
            assert!(awaiting.push(*txn, txn.id()));
        }
        // A client sent one of them twice: it is forwarded once all the same (a repeat in a
        // batch is dropped by the receiver, and once was charged to the forwarder).
        assert!(pipeline.submit(honest[0]));
        assert!(awaiting.push(honest[0], honest[0].id()));
        let mut forwarded = Vec::new();
        for now in 1..=4 {
            pipeline.tick(now * 1_000_000);
            let rejections = pipeline.drain_rejections();
            forwarded.extend(awaiting.take_admitted(&pipeline, &rejections).into_iter().map(|(txn, _)| txn));
        }
        assert_eq!(
            forwarded, honest,
            "the honest transactions, and only they, are forwarded (overlap {overlap})"
        );
        assert_eq!(awaiting.len(), 0, "the forged ones were dropped on their refusal");
        Ok(())
    }

    #[test]
    fn batches_fit_a_frame_and_the_queue_is_bounded() {
        let awaiting = AwaitingAdmission::new(1 << 20);
        assert!(awaiting.batch_max * TXN_SIZE + 256 <= 1 << 20);
        // A node with a larger limit still forwards batches any receiver's default takes.
        let large = AwaitingAdmission::new(16 << 20);
        assert_eq!(large.batch_max, awaiting.batch_max);
        let mut small = AwaitingAdmission::new(1024);
        assert_eq!(small.batch_max, (1024 - 256) / TXN_SIZE);
        let txn: Txn = bytemuck::Zeroable::zeroed();
        for _ in 0..AwaitingAdmission::MAX {
            assert!(small.push(txn, txn.id()));
        }
        assert!(!small.push(txn, txn.id()));
        assert_eq!(small.len(), AwaitingAdmission::MAX);
    }
}
