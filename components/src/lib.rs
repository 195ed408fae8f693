//! # tessera-components: the plain data of a Tessera node
//!
//! Bird's eye view: everything here is data. Transactions, block headers, votes and accounts
//! are `#[repr(C)]` [`bytemuck::Pod`] layouts with compile-time size assertions and explicit,
//! zero-checked padding; the [`wire`] module frames them for the network with postcard behind a
//! fixed header. Nothing here does I/O, spawns threads or runs systems: behaviour lives in
//! `tessera-systems`, drivers in the `tessera` binary. The one exception is the fuzz
//! scaffolding (`fuzz`, compiled only for tests and fuzzing), which reads and writes seed
//! corpora.
//!
//! The ECS `Component` derives live on the types the schedule stores per entity
//! ([`txn::TxnBody`], [`txn::TxnSignature`], [`txn::TxnId`], [`txn::Stage`]).

pub mod account;
pub mod block;
pub mod consensus;
pub mod constants;
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub mod fuzz;
pub mod hash;
pub mod reject;
pub mod state;
pub mod storage;
pub mod txn;
pub mod wire;

pub use account::Account;
pub use block::{
    Block, BlockFields, BlockHeader, ChainTag, QuorumCertificate, Signature, Vote, VoteKind,
    vote_signing_bytes,
};
pub use consensus::{CertifiedBlock, ConsensusMessage, NewView, Proposal, SafetyState};
pub use hash::{Domain, Hash, merkle_root};
pub use reject::RejectReason;
pub use txn::{Source, Stage, SubmittedBy, Txn, TxnBody, TxnId, TxnSignature};

// Every multi-byte integer in a Pod layout is stored in the host's byte order, and those bytes
// are what gets signed, hashed and framed. Pinning little-endian makes "host order" the one
// documented order (docs/wire.md) instead of a portability hazard.
const _: () = assert!(cfg!(target_endian = "little"), "Tessera layouts are little-endian");
