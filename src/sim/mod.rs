//! The simulator: many nodes in one process, in virtual time, deterministic from a seed.
//!
//! Bird's eye view: [`engine::Sim`] is the discrete-event loop; each validator runs the
//! node's own [`tessera_systems::Pipeline`] and the same after-tick step as the real node
//! ([`crate::driver`]). [`network`] models latency, bandwidth, loss, duplication, reordering
//! and partitions; [`byzantine`] rewrites a faulty validator's outbound messages; [`scenario`]
//! reads scenario files and draws random ones for [`swarm`]; [`report`] keeps the invariants
//! (safety across honest validators, liveness after the faults heal) and the figures, and
//! [`plot`] draws them. [`audit`] verifies, on a thread of its own, each consensus signature
//! the validators vouched for as they made it, and [`crate::forward`] is the node's own
//! forwarding of client transactions.

pub mod audit;
pub mod byzantine;
pub mod clients;
pub mod costs;
pub mod disk;
pub mod engine;
pub mod network;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod swarm;

use ed25519_dalek::SigningKey;
use tessera_systems::workload::signing_key;

/// How a validator behaves while its fault window is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// As leader, sends one proposal to half the validators and a conflicting one to the rest.
    EquivocatingProposer,
    /// Sends every vote twice: as cast to half the validators, for a different block to the rest.
    DoubleVoter,
    /// Sends no votes.
    VoteWithholder,
    /// As leader, proposes blocks with a wrong state root.
    InvalidProposer,
    /// As leader, proposes blocks whose proposal signature does not verify.
    BadSignatureProposer,
    /// As leader, proposes blocks with more transactions than any block may hold.
    OverLimitProposer,
    /// Sends every message again; with [`byzantine::Adversary`], also messages from the past.
    Replayer,
    /// Sends every message many times over.
    Flooder,
    /// Honest messages, but reads slowly on its connections (transport level: see
    /// [`byzantine::Transport`]).
    SlowReader,
    /// Completes the handshake, then sends bytes that are not frames (transport level).
    GarbageAfterHandshake,
}

/// Validator `index`'s key in a simulation seeded with `seed`.
pub fn validator_key(seed: u64, index: u64) -> SigningKey {
    signing_key(seed ^ 0x7661_6c69_6461_746f, index)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod engine_tests;
