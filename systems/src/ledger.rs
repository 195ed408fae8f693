//! Account state: a dense array of [`Account`]s plus an index from address to slot.

use foldhash::HashMap;

use bevy_ecs::resource::Resource;
use tessera_components::{Account, Hash, RejectReason, TxnBody};

/// All account state. Written only by execute (and at genesis); read by prefilter and mempool
/// for nonces, with the lag of one tick (they see the state as of the last executed block).
///
/// Slots are assigned in order of first appearance: genesis order, then execution order. The
/// `index` map is only ever looked up, never iterated, so its hasher does not affect
/// determinism.
#[derive(Clone, Debug, Default, Resource)]
pub struct Ledger {
    keys: Vec<[u8; 32]>,
    accounts: Vec<Account>,
    index: HashMap<[u8; 32], u32>,
    /// Fees burned so far.
    burned: u64,
    /// Sum of genesis balances: `Σ balance + burned` must always equal it.
    supply: u128,
}

/// Why genesis could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenesisError {
    /// An address appears twice.
    #[error("genesis lists account {0} twice")]
    DuplicateAccount(String),
    /// More accounts than a u32 slot can address.
    #[error("genesis has more than 2^32 accounts")]
    TooManyAccounts,
    /// Stored state whose columns differ in length.
    #[error("state has {keys} addresses but {accounts} accounts")]
    ColumnMismatch {
        /// Address count.
        keys: usize,
        /// Account count.
        accounts: usize,
    },
    /// Stored state whose balances and burned fees do not add up to its supply.
    #[error("state does not conserve supply: balances and burned fees sum to {sum}, supply is {supply}")]
    SupplyMismatch {
        /// `Σ balance + burned`.
        sum: u128,
        /// Recorded supply.
        supply: u128,
    },
}

/// A ledger taken apart into its columns, for persistence. `keys[i]` owns `accounts[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerParts {
    /// Account addresses in slot order.
    pub keys: Vec<[u8; 32]>,
    /// Accounts in slot order.
    pub accounts: Vec<Account>,
    /// Fees burned so far.
    pub burned: u64,
    /// Genesis supply.
    pub supply: u128,
}

impl Ledger {
    /// State with the given funded accounts, in the given order.
    ///
    /// # Errors
    /// A duplicate address, or more accounts than fit a u32 index.
    pub fn from_genesis(balances: &[([u8; 32], u64)]) -> Result<Ledger, GenesisError> {
        let mut ledger = Ledger::default();
        for (key, balance) in balances {
            if ledger.index.contains_key(key) {
                return Err(GenesisError::DuplicateAccount(Hash(*key).to_hex()));
            }
            let slot = ledger.push_account(*key).ok_or(GenesisError::TooManyAccounts)?;
            ledger.accounts[slot].balance = *balance;
            ledger.supply += u128::from(*balance);
        }
        Ok(ledger)
    }

    /// Rebuilds a ledger from stored columns, checking them: equal lengths, no duplicate
    /// address, supply conserved. The result has the same state root as the ledger the parts
    /// came from.
    ///
    /// # Errors
    /// The first inconsistency found.
    pub fn from_parts(parts: LedgerParts) -> Result<Ledger, GenesisError> {
        let LedgerParts { keys, accounts, burned, supply } = parts;
        if keys.len() != accounts.len() {
            return Err(GenesisError::ColumnMismatch { keys: keys.len(), accounts: accounts.len() });
        }
        if u32::try_from(keys.len()).is_err() {
            return Err(GenesisError::TooManyAccounts);
        }
        let mut index = HashMap::default();
        for (slot, key) in keys.iter().enumerate() {
            if index.insert(*key, slot as u32).is_some() {
                return Err(GenesisError::DuplicateAccount(Hash(*key).to_hex()));
            }
        }
        let ledger = Ledger { keys, accounts, index, burned, supply };
        let sum = ledger.balance_sum();
        if sum != supply {
            return Err(GenesisError::SupplyMismatch { sum, supply });
        }
        Ok(ledger)
    }

    /// The ledger's columns, for persistence ([`Ledger::from_parts`] reverses it).
    pub fn to_parts(&self) -> LedgerParts {
        LedgerParts {
            keys: self.keys.clone(),
            accounts: self.accounts.clone(),
            burned: self.burned,
            supply: self.supply,
        }
    }

    /// Account addresses in slot order.
    pub fn keys(&self) -> &[[u8; 32]] {
        &self.keys
    }

    /// Accounts in slot order.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    fn push_account(&mut self, key: [u8; 32]) -> Option<usize> {
        let slot = u32::try_from(self.keys.len()).ok()?;
        self.keys.push(key);
        self.accounts.push(Account::default());
        self.index.insert(key, slot);
        Some(slot as usize)
    }

    /// The account at `key`, if it has ever been touched.
    pub fn account(&self, key: &[u8; 32]) -> Option<&Account> {
        self.index.get(key).map(|slot| &self.accounts[*slot as usize])
    }

    /// The next nonce `key` must use (0 for an unknown account).
    pub fn nonce_of(&self, key: &[u8; 32]) -> u64 {
        self.account(key).map_or(0, |account| account.nonce)
    }

    /// Balance of `key` (0 for an unknown account).
    pub fn balance_of(&self, key: &[u8; 32]) -> u64 {
        self.account(key).map_or(0, |account| account.balance)
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// True when no account exists.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Fees burned so far.
    pub fn burned(&self) -> u64 {
        self.burned
    }

    /// Total supply fixed at genesis.
    pub fn supply(&self) -> u128 {
        self.supply
    }

    /// Applies one transfer.
    ///
    /// The fee rule: a transaction with the sender's next nonce, from a sender whose balance
    /// covers the fee, consumes that nonce and pays that fee whether its amount moves or not. A
    /// transfer that fails before then (self-transfer, unknown sender, wrong nonce, fee above
    /// the balance, nonce or burned total at their limit) changes nothing. So block space taken
    /// by a failing transfer is paid for, and the same bytes can never be charged twice.
    ///
    /// # Errors
    /// [`RejectReason::BadNonce`] if the nonce is not the sender's next one,
    /// [`RejectReason::InsufficientFunds`] if the sender is unknown or its balance is below the
    /// fee (nothing charged) or below amount plus fee (fee charged), [`RejectReason::Overflow`]
    /// if a sum would overflow, [`RejectReason::SelfTransfer`] if sender and recipient are one
    /// account.
    pub fn apply(&mut self, body: &TxnBody) -> Result<(), RejectReason> {
        // The prefilter refuses self-transfers, but a block from another proposer is untrusted
        // input: refuse here too, since the credit below would read a stale balance.
        if body.sender == body.recipient {
            return Err(RejectReason::SelfTransfer);
        }
        let Some(&sender_slot) = self.index.get(&body.sender) else {
            return Err(RejectReason::InsufficientFunds);
        };
        let sender = self.accounts[sender_slot as usize];
        if body.nonce != sender.nonce {
            return Err(RejectReason::BadNonce);
        }
        if sender.balance < body.fee {
            return Err(RejectReason::InsufficientFunds);
        }
        let nonce = sender.nonce.checked_add(1).ok_or(RejectReason::Overflow)?;
        let burned = self.burned.checked_add(body.fee).ok_or(RejectReason::Overflow)?;
        // From here the fee is paid and the nonce consumed, whatever the amount does.
        let sender = &mut self.accounts[sender_slot as usize];
        sender.balance -= body.fee;
        sender.nonce = nonce;
        self.burned = burned;
        self.move_amount(sender_slot as usize, body)
    }

    /// Moves `body.amount` from the sender at `sender_slot` to the recipient, creating the
    /// recipient's account. On error nothing moves.
    fn move_amount(&mut self, sender_slot: usize, body: &TxnBody) -> Result<(), RejectReason> {
        if self.accounts[sender_slot].balance < body.amount {
            return Err(RejectReason::InsufficientFunds);
        }
        let credited =
            self.balance_of(&body.recipient).checked_add(body.amount).ok_or(RejectReason::Overflow)?;
        let recipient_slot = match self.index.get(&body.recipient) {
            Some(slot) => *slot as usize,
            None => self.push_account(body.recipient).ok_or(RejectReason::Overflow)?,
        };
        self.accounts[sender_slot].balance -= body.amount;
        self.accounts[recipient_slot].balance = credited;
        Ok(())
    }

    /// Deterministic state root: BLAKE3 over the account count, every address in slot order,
    /// every account (balance, nonce) in slot order, and the burned total. Two contiguous
    /// column updates, so BLAKE3 hashes them with its wide SIMD path.
    pub fn state_root(&self) -> Hash {
        let mut hasher = blake3::Hasher::new_derive_key("tessera 2026 state root");
        hasher.update(&(self.accounts.len() as u64).to_le_bytes());
        hasher.update(bytemuck::cast_slice(&self.keys));
        hasher.update(bytemuck::cast_slice(&self.accounts));
        hasher.update(&self.burned.to_le_bytes());
        Hash(*hasher.finalize().as_bytes())
    }

    /// `Σ balance + burned`, which must equal [`Ledger::supply`].
    pub fn balance_sum(&self) -> u128 {
        self.accounts.iter().map(|a| u128::from(a.balance)).sum::<u128>() + u128::from(self.burned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(sender: u8, recipient: u8, amount: u64, fee: u64, nonce: u64) -> TxnBody {
        TxnBody {
            chain_id: 1,
            reserved: 0,
            sender: [sender; 32],
            recipient: [recipient; 32],
            amount,
            fee,
            nonce,
        }
    }

    #[test]
    fn transfers_that_cannot_pay_their_fee_change_nothing() {
        let mut ledger = Ledger::from_genesis(&[([1; 32], 100), ([2; 32], u64::MAX - 5)]).unwrap();
        let root = ledger.state_root();
        assert_eq!(ledger.apply(&transfer(1, 3, 1, 101, 0)), Err(RejectReason::InsufficientFunds));
        assert_eq!(ledger.apply(&transfer(1, 3, 10, 1, 1)), Err(RejectReason::BadNonce));
        assert_eq!(ledger.apply(&transfer(9, 3, 1, 1, 0)), Err(RejectReason::InsufficientFunds));
        assert_eq!(ledger.apply(&transfer(1, 1, 1, 1, 0)), Err(RejectReason::SelfTransfer));
        assert_eq!(ledger.state_root(), root);
        assert_eq!(ledger.len(), 2);

        assert_eq!(ledger.apply(&transfer(1, 3, 90, 10, 0)), Ok(()));
        assert_eq!(ledger.balance_of(&[1; 32]), 0);
        assert_eq!(ledger.balance_of(&[3; 32]), 90);
        assert_eq!(ledger.nonce_of(&[1; 32]), 1);
        assert_eq!(ledger.burned(), 10);
        assert_eq!(ledger.balance_sum(), ledger.supply());
        assert_ne!(ledger.state_root(), root);
    }

    #[test]
    fn a_failing_transfer_that_can_pay_its_fee_pays_it_and_consumes_its_nonce() {
        let mut ledger = Ledger::from_genesis(&[([1; 32], 100), ([2; 32], u64::MAX - 5)]).unwrap();
        // Amount plus fee above the balance: the fee is paid, the amount stays.
        assert_eq!(ledger.apply(&transfer(1, 3, 99, 2, 0)), Err(RejectReason::InsufficientFunds));
        assert_eq!((ledger.balance_of(&[1; 32]), ledger.nonce_of(&[1; 32]), ledger.burned()), (98, 1, 2));
        assert_eq!(ledger.account(&[3; 32]), None, "a failed transfer creates no account");
        // The same bytes cannot be charged again: the nonce is spent.
        assert_eq!(ledger.apply(&transfer(1, 3, 99, 2, 0)), Err(RejectReason::BadNonce));
        // The recipient's balance would overflow: the fee is paid, the amount stays.
        assert_eq!(ledger.apply(&transfer(1, 2, 10, 1, 1)), Err(RejectReason::Overflow));
        assert_eq!((ledger.balance_of(&[1; 32]), ledger.balance_of(&[2; 32])), (97, u64::MAX - 5));
        // An amount of 2^64 - 1: the fee is paid.
        assert_eq!(ledger.apply(&transfer(1, 3, u64::MAX, 1, 2)), Err(RejectReason::InsufficientFunds));
        assert_eq!((ledger.balance_of(&[1; 32]), ledger.nonce_of(&[1; 32]), ledger.burned()), (96, 3, 4));
        assert_eq!(ledger.balance_sum(), ledger.supply());
    }

    #[test]
    fn parts_round_trip_and_are_checked() {
        let mut ledger = Ledger::from_genesis(&[([1; 32], 100), ([2; 32], 50)]).unwrap();
        ledger.apply(&transfer(1, 3, 10, 2, 0)).unwrap();
        let parts = ledger.to_parts();
        let back = Ledger::from_parts(parts.clone()).unwrap();
        assert_eq!(back.state_root(), ledger.state_root());
        assert_eq!(back.nonce_of(&[1; 32]), 1);
        let mut bad = parts.clone();
        bad.accounts[0].balance += 1;
        assert!(matches!(Ledger::from_parts(bad), Err(GenesisError::SupplyMismatch { .. })));
        let mut bad = parts.clone();
        bad.keys[1] = bad.keys[0];
        assert!(matches!(Ledger::from_parts(bad), Err(GenesisError::DuplicateAccount(_))));
        let mut bad = parts;
        bad.keys.pop();
        assert!(matches!(Ledger::from_parts(bad), Err(GenesisError::ColumnMismatch { .. })));
    }

    #[test]
    fn duplicate_genesis_account_is_refused() {
        assert!(matches!(
            Ledger::from_genesis(&[([1; 32], 1), ([1; 32], 2)]),
            Err(GenesisError::DuplicateAccount(_))
        ));
    }
}
