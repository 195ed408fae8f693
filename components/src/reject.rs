//! Why a transaction or block was refused. Every refusal bumps the counter of its reason.

/// A named reason for refusing a transaction, in pipeline order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u8)]
pub enum RejectReason {
    /// The shell's inbox was full; the transaction never entered the pipeline.
    InboxFull,
    /// `chain_id` differs from the node's.
    WrongChain,
    /// `reserved` padding is not zero.
    NonzeroReserved,
    /// Fee below the configured floor.
    FeeTooLow,
    /// Amount is zero.
    ZeroAmount,
    /// Sender and recipient are the same account.
    SelfTransfer,
    /// Nonce is below the sender's account nonce: already executed (a replay).
    NonceStale,
    /// Nonce is too far above the sender's account nonce.
    NonceTooFar,
    /// Signature does not verify under the accept rule.
    BadSignature,
    /// The same transaction (same id) was already seen.
    Duplicate,
    /// Another pending transaction holds the same sender and nonce with an equal or higher fee.
    NonceTaken,
    /// The mempool is full and this fee does not beat the lowest pending fee.
    MempoolFull,
    /// Evicted from the mempool by a higher-fee arrival.
    Evicted,
    /// At execution: the nonce is not the account's next nonce.
    BadNonce,
    /// At execution: balance is below amount plus fee.
    InsufficientFunds,
    /// At execution: a balance would overflow.
    Overflow,
}

impl RejectReason {
    /// Every reason, in declaration order (index = `reason as usize`).
    pub const ALL: [RejectReason; 16] = [
        RejectReason::InboxFull,
        RejectReason::WrongChain,
        RejectReason::NonzeroReserved,
        RejectReason::FeeTooLow,
        RejectReason::ZeroAmount,
        RejectReason::SelfTransfer,
        RejectReason::NonceStale,
        RejectReason::NonceTooFar,
        RejectReason::BadSignature,
        RejectReason::Duplicate,
        RejectReason::NonceTaken,
        RejectReason::MempoolFull,
        RejectReason::Evicted,
        RejectReason::BadNonce,
        RejectReason::InsufficientFunds,
        RejectReason::Overflow,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Stable snake_case name, used as the metric label.
    pub const fn name(self) -> &'static str {
        match self {
            RejectReason::InboxFull => "inbox_full",
            RejectReason::WrongChain => "wrong_chain",
            RejectReason::NonzeroReserved => "nonzero_reserved",
            RejectReason::FeeTooLow => "fee_too_low",
            RejectReason::ZeroAmount => "zero_amount",
            RejectReason::SelfTransfer => "self_transfer",
            RejectReason::NonceStale => "nonce_stale",
            RejectReason::NonceTooFar => "nonce_too_far",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::Duplicate => "duplicate",
            RejectReason::NonceTaken => "nonce_taken",
            RejectReason::MempoolFull => "mempool_full",
            RejectReason::Evicted => "evicted",
            RejectReason::BadNonce => "bad_nonce",
            RejectReason::InsufficientFunds => "insufficient_funds",
            RejectReason::Overflow => "overflow",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order_with_unique_names() {
        for (index, reason) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index);
        }
        let mut names: Vec<_> = RejectReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RejectReason::COUNT);
    }
}
