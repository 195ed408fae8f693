//! The simulated clients' transactions, made ahead of the virtual time they are sent.
//!
//! What clients send is a pure function of the scenario and the seed: batch times are fixed
//! (every `workload.batch_ms` from 0), so are the rate curve, the draws of the client stream
//! and the nonces. The event loop need not make and sign each batch when its time comes.
//! [`ClientPlan`] makes them a window at a time. With real signatures a thread of its own
//! makes and signs windows ahead of the loop ([`Clients::ahead`]), so signing runs on the
//! other core beside the run instead of stalling it; with stand-in tags (a hash each) the
//! loop plans inline. Either way the batches, and so the report, are
//! exactly those the loop made one at a time before.
//!
//! The signing thread also verifies each window it signed, in batches, and leaves the verdicts
//! in the run's [`SharedVerdicts`] memo under each transaction's id. Verification is a pure
//! function of exactly the bytes the id hashes, so a validator that finds the verdict there
//! reaches the one it would have computed; it is charged the same virtual time either way,
//! and the report does not change. The validators' own thread is then spared the checks,
//! which in a simulated tick come a few at a time, too few to batch.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use ed25519_dalek::SigningKey;
use tessera_components::{Txn, TxnBody, TxnSignature};
use tessera_systems::kernels::sigverify::{VerifyItem, stand_in_signature, verify_chunk};
use tessera_systems::sigverify::SharedVerdicts;
use tessera_systems::workload::{SeedStream, sign_many};

use super::scenario::{Policy, Workload};

/// Most transactions one window holds: a bound on what is made ahead (about 1 MiB), and
/// enough for the cores to share.
const WINDOW_TXNS: usize = 8192;

/// Most batches one window holds, for slow rates (each batch is a small allocation).
const WINDOW_BATCHES: usize = 1024;

/// The first window's share of those bounds: windows start small and double, so the loop waits
/// for a few milliseconds of signing, not a whole window's, before its first batch.
const FIRST_WINDOW_SHIFT: u32 = 6;

/// Windows the signing thread may have ready before the loop takes them.
const WINDOWS_AHEAD: usize = 2;

/// Signatures the signing thread checks in one batch. Larger batches cost less a signature,
/// and more of a batch's signatures share a client's key, and so a term of the batch equation:
/// `bench sim --json`'s `verify_us` was 10.6–13.1 µs at 64 and 8.8–10.8 µs at 256 (four
/// runs each, alternating), and with shared key terms, for `lan-4`'s 256 client keys, 9.1 µs
/// at 256 and 7.5 µs at 1,024 (two runs each). The clients' signatures are all good, so no
/// batch is bisected.
const VERIFY_BATCH: usize = 1024;

/// One batch of client transactions and the validators it goes to.
#[derive(Debug)]
pub struct Batch {
    /// Its virtual time, in nanoseconds.
    pub at_ns: u64,
    /// The transactions, signed.
    pub txns: Vec<Txn>,
    /// The validators it goes to.
    pub targets: Vec<u32>,
}

/// The state the clients' draws depend on, and the making of windows of batches.
#[derive(Debug)]
pub struct ClientPlan {
    workload: Workload,
    stream: SeedStream,
    addresses: Vec<[u8; 32]>,
    /// Signing keys, by client; empty with stand-in signatures.
    keys: Vec<SigningKey>,
    nonces: Vec<u64>,
    chain_id: u32,
    validators: u32,
    next_validator: u32,
    carry: f64,
    /// The time of the next batch to make, and the last time one may have.
    next_ns: u64,
    end_ns: u64,
    /// How far below [`WINDOW_TXNS`] and [`WINDOW_BATCHES`] the next window's bounds are (as a
    /// shift): [`FIRST_WINDOW_SHIFT`], less one after each window.
    shrink: u32,
}

impl ClientPlan {
    /// Clients `addresses` (with their `keys`, or none for stand-in tags) sending `workload`
    /// on `chain_id` to `validators` validators, from time 0 to `end_ns`, drawing from
    /// `stream`.
    pub fn new(
        workload: Workload,
        stream: SeedStream,
        addresses: Vec<[u8; 32]>,
        keys: Vec<SigningKey>,
        chain_id: u32,
        validators: u32,
        end_ns: u64,
    ) -> ClientPlan {
        debug_assert!(keys.is_empty() || keys.len() == addresses.len());
        let nonces = vec![0; addresses.len()];
        ClientPlan {
            workload,
            stream,
            addresses,
            keys,
            nonces,
            chain_id,
            validators,
            next_validator: 0,
            carry: 0.0,
            next_ns: 0,
            end_ns,
            shrink: FIRST_WINDOW_SHIFT,
        }
    }

    /// The next window of batches, in time order; empty once every batch up to the end was
    /// made. Draws in exactly the order the loop drew batch by batch: each batch's bodies,
    /// then its target.
    pub fn next_window(&mut self) -> Vec<Batch> {
        let batch_ns = self.workload.batch_ms * 1_000_000;
        let mut shapes: Vec<(u64, usize, Vec<u32>)> = Vec::new();
        let mut bodies: Vec<(usize, TxnBody)> = Vec::new();
        let (txns_max, batches_max) = (WINDOW_TXNS >> self.shrink, WINDOW_BATCHES >> self.shrink);
        self.shrink = self.shrink.saturating_sub(1);
        while self.next_ns <= self.end_ns && bodies.len() < txns_max && shapes.len() < batches_max {
            let at_ns = self.next_ns;
            let rate = self.workload.rate_at(at_ns as f64 / 1e9);
            let want = rate * self.workload.batch_ms as f64 / 1000.0 + self.carry;
            let count = want.floor() as u64;
            self.carry = want - count as f64;
            let first = bodies.len();
            let mut targets = Vec::new();
            if count > 0 && !self.addresses.is_empty() {
                for _ in 0..count {
                    let client = self.stream.below(self.addresses.len() as u64) as usize;
                    let recipient = (client + 1) % self.addresses.len();
                    let (sender, recipient) = (self.addresses[client], self.addresses[recipient]);
                    let amount = 1 + self.stream.below(100);
                    let fee = 1 + self.stream.below(10);
                    let body =
                        TxnBody::transfer(self.chain_id, sender, recipient, amount, fee, self.nonces[client]);
                    self.nonces[client] += 1;
                    bodies.push((client, body));
                }
                targets = match self.workload.policy {
                    Policy::RoundRobin => {
                        self.next_validator = (self.next_validator + 1) % self.validators;
                        vec![self.next_validator]
                    }
                    Policy::Random => vec![self.stream.below(u64::from(self.validators)) as u32],
                    Policy::All => (0..self.validators).collect(),
                };
            }
            shapes.push((at_ns, bodies.len() - first, targets));
            // The last batch is the one whose successor would pass the end.
            self.next_ns = match at_ns.checked_add(batch_ns) {
                Some(next) if batch_ns > 0 => next,
                _ => u64::MAX,
            };
        }
        // Sequential: the thread that signs ahead is the parallelism. Signing on the global
        // pool from here could wait on workers that a simulation run from inside that pool
        // holds, blocked on this thread's windows. A window's signatures share one inversion
        // (`sign_many`: the signatures `sign` makes, byte for byte).
        let txns: Vec<Txn> = if self.keys.is_empty() {
            bodies
                .iter()
                .map(|(_, body)| Txn { body: *body, signature: TxnSignature(stand_in_signature(body)) })
                .collect()
        } else {
            let signed: Vec<(&SigningKey, TxnBody)> =
                bodies.iter().map(|(client, body)| (&self.keys[*client], *body)).collect();
            sign_many(&signed)
        };
        let mut txns = txns.into_iter();
        shapes
            .into_iter()
            .map(|(at_ns, count, targets)| Batch {
                at_ns,
                txns: txns.by_ref().take(count).collect(),
                targets,
            })
            .collect()
    }
}

/// Where the event loop takes its batches from.
pub enum Clients {
    /// Windows made on the loop's own thread, when each is cheap (stand-in tags).
    Inline {
        /// The plan (boxed: it is most of the enum's size).
        plan: Box<ClientPlan>,
        /// Batches made and not yet sent.
        ready: VecDeque<Batch>,
    },
    /// Windows made by a thread of their own, ahead of the loop (real signatures).
    Ahead {
        /// Windows from the signing thread; it ends when the plan is done or this is dropped.
        windows: Receiver<Vec<Batch>>,
        /// The signing thread, joined when its windows end, so that a panic there is raised
        /// here rather than taken for the end of the plan.
        thread: Option<std::thread::JoinHandle<()>>,
        /// Batches received and not yet sent.
        ready: VecDeque<Batch>,
    },
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, ready) = match self {
            Clients::Inline { ready, .. } => ("inline", ready.len()),
            Clients::Ahead { ready, .. } => ("ahead", ready.len()),
        };
        formatter.debug_struct("Clients").field("kind", &kind).field("ready", &ready).finish()
    }
}

impl Clients {
    /// Batches planned on the loop's thread.
    pub fn inline(plan: ClientPlan) -> Clients {
        Clients::Inline { plan: Box::new(plan), ready: VecDeque::new() }
    }

    /// Batches planned and signed by a thread of their own, up to [`WINDOWS_AHEAD`] windows
    /// ahead of the loop; the thread verifies each window too and leaves the verdicts in
    /// `verdicts`. A thread that cannot be started leaves the plan inline.
    pub fn ahead(plan: ClientPlan, verdicts: SharedVerdicts) -> Clients {
        let (sender, windows) = sync_channel(WINDOWS_AHEAD);
        // The thread takes the plan when it starts; if it cannot start, the plan is still here.
        let handed = std::sync::Arc::new(std::sync::Mutex::new(Some(plan)));
        let taken = handed.clone();
        let spawned = std::thread::Builder::new().name("sim-clients".into()).spawn(move || {
            let plan = taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            if let Some(plan) = plan {
                sign_ahead(plan, &sender, &verdicts);
            }
        });
        if let Ok(thread) = spawned {
            return Clients::Ahead { windows, thread: Some(thread), ready: VecDeque::new() };
        }
        match handed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            Some(plan) => Clients::inline(plan),
            None => unreachable!("a thread that never started took the plan"),
        }
    }

    /// The batch due at `now_ns`, if any: batches are made for every batch time from 0 on,
    /// and the loop asks at each.
    pub fn take(&mut self, now_ns: u64) -> Option<Batch> {
        let batch = match self {
            Clients::Inline { plan, ready } => {
                if ready.is_empty() {
                    ready.extend(plan.next_window());
                }
                ready.pop_front()
            }
            Clients::Ahead { windows, thread, ready } => {
                if ready.is_empty() {
                    match windows.recv() {
                        Ok(window) => ready.extend(window),
                        Err(_) => {
                            if let Some(Err(panic)) = thread.take().map(std::thread::JoinHandle::join) {
                                std::panic::resume_unwind(panic);
                            }
                        }
                    }
                }
                ready.pop_front()
            }
        }?;
        assert_eq!(batch.at_ns, now_ns, "client batches are taken at their times");
        Some(batch)
    }
}

/// The signing thread: windows until the plan is done or the loop stops listening, each
/// verified into `verdicts` before it is handed over.
fn sign_ahead(mut plan: ClientPlan, sender: &SyncSender<Vec<Batch>>, verdicts: &SharedVerdicts) {
    loop {
        let window = plan.next_window();
        if window.is_empty() {
            return;
        }
        verdicts.remember(&verify_window(&window));
        if sender.send(window).is_err() {
            return;
        }
    }
}

/// Each transaction's id and the verdict on its signature, checked in batches of
/// [`VERIFY_BATCH`] on this thread (sequentially, for the reason `next_window` signs so).
fn verify_window(window: &[Batch]) -> Vec<([u8; 32], bool)> {
    let txns: Vec<&Txn> = window.iter().flat_map(|batch| &batch.txns).collect();
    let accepted = verify_in_batches(&txns);
    txns.iter().map(|txn| txn.id().0.0).zip(accepted).collect()
}

/// The verdict on each of `txns`' signatures, checked in batches of [`VERIFY_BATCH`] on the
/// calling thread: how the signing thread checks, and what `bench sim` times as its cost.
pub fn verify_in_batches(txns: &[&Txn]) -> Vec<bool> {
    let mut accepted = vec![false; txns.len()];
    for (chunk, verdicts) in txns.chunks(VERIFY_BATCH).zip(accepted.chunks_mut(VERIFY_BATCH)) {
        let items: Vec<VerifyItem<'_>> = chunk.iter().map(|txn| VerifyItem::of_txn(txn)).collect();
        verify_chunk(&items, verdicts);
    }
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(keys: bool, policy: Policy) -> ClientPlan {
        let count = 5;
        let keys: Vec<SigningKey> = if keys {
            (0..count).map(|i| tessera_systems::workload::signing_key(7, i)).collect()
        } else {
            Vec::new()
        };
        let addresses: Vec<[u8; 32]> = if keys.is_empty() {
            (0..count).map(|i| [i as u8 + 1; 32]).collect()
        } else {
            keys.iter().map(|key| key.verifying_key().to_bytes()).collect()
        };
        // 1,500 txn/s in 10 ms batches for 12 s: 18,000 transactions, three windows and more.
        let workload =
            Workload { rate: vec![[0.0, 500.0], [2.0, 1500.0]], policy, batch_ms: 10, accounts: count };
        ClientPlan::new(workload, SeedStream::new("test clients", 3), addresses, keys, 1, 4, 12_000_000_000)
    }

    fn all(mut clients: Clients) -> Vec<Batch> {
        let mut batches = Vec::new();
        let mut now = 0;
        while let Some(batch) = clients.take(now) {
            batches.push(batch);
            now += 10_000_000;
        }
        batches
    }

    #[test]
    fn batches_come_at_every_batch_time_with_consecutive_nonces_and_real_signatures() {
        let batches = all(Clients::ahead(plan(true, Policy::Random), SharedVerdicts::default()));
        assert_eq!(batches.len(), 1201, "one batch each 10 ms from 0 to 12 s, the end included");
        assert!(batches.iter().enumerate().all(|(i, batch)| batch.at_ns == i as u64 * 10_000_000));
        let txns: Vec<&Txn> = batches.iter().flat_map(|batch| &batch.txns).collect();
        assert!(txns.len() > 2 * WINDOW_TXNS, "{} transactions: more than two windows", txns.len());
        let mut nonces = std::collections::HashMap::new();
        for txn in &txns {
            let next = nonces.entry(txn.body.sender).or_insert(0);
            assert_eq!(txn.body.nonce, *next, "nonces in sending order");
            *next += 1;
        }
        let items: Vec<_> = txns
            .iter()
            .take(64)
            .map(|txn| (txn.body.sender, txn.body.signing_bytes(), txn.signature.0))
            .collect();
        for (key, message, signature) in &items {
            let key = ed25519_dalek::VerifyingKey::from_bytes(key).unwrap();
            assert!(key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature)).is_ok());
        }
        assert!(batches.iter().all(|batch| batch.targets.len() == usize::from(!batch.txns.is_empty())));
    }

    /// The signing thread leaves a verdict for every transaction it hands over, so the
    /// validators verify none of them again; and the verdicts are checks, not assumptions.
    #[test]
    fn the_signing_thread_leaves_the_verdict_of_every_transaction_it_signed() {
        let verdicts = SharedVerdicts::new();
        let batches = all(Clients::ahead(plan(true, Policy::RoundRobin), verdicts.clone()));
        let ids: Vec<[u8; 32]> =
            batches.iter().flat_map(|batch| &batch.txns).map(|txn| txn.id().0.0).collect();
        assert!(ids.len() > 2 * WINDOW_TXNS);
        let found = verdicts.remembered(&ids, |id| *id, |unknown| panic!("{} left to verify", unknown.len()));
        assert!(found.iter().all(|accepted| *accepted), "every signature the clients made is valid");

        let mut window: Vec<Batch> =
            all(Clients::inline(plan(true, Policy::All))).into_iter().take(250).collect();
        let txns = window.iter().map(|batch| batch.txns.len()).sum::<usize>();
        assert!(txns > VERIFY_BATCH, "{txns} transactions: more than one batch");
        let forged = window.iter_mut().flat_map(|batch| &mut batch.txns).nth(txns - 3).unwrap();
        forged.signature.0[5] ^= 1;
        let forged = forged.id().0.0;
        let checked = verify_window(&window);
        assert_eq!(checked.len(), txns);
        assert!(
            checked.iter().all(|(id, accepted)| *accepted == (*id != forged)),
            "only the forged one refused"
        );
    }

    /// A signing thread that panics makes the loop panic, as planning inline would; its end is
    /// not taken for the end of the plan.
    #[test]
    #[should_panic(expected = "remainder")]
    fn a_panic_on_the_signing_thread_is_raised_in_the_loop() {
        let mut plan = plan(true, Policy::RoundRobin);
        plan.validators = 0;
        all(Clients::ahead(plan, SharedVerdicts::default()));
    }

    /// Windows start small, so the loop's first batch waits for little signing, and double up
    /// to their bounds; their sizes change no batch.
    #[test]
    fn windows_start_small_and_their_sizes_change_no_batch() {
        let mut growing = plan(true, Policy::Random);
        let sizes: Vec<usize> = (0..2).map(|_| growing.next_window().len()).collect();
        let first = WINDOW_BATCHES >> FIRST_WINDOW_SHIFT;
        assert_eq!(sizes, [first, 2 * first]);
        let mut whole = plan(true, Policy::Random);
        whole.shrink = 0;
        let drain = |mut plan: ClientPlan| {
            std::iter::from_fn(move || Some(plan.next_window()).filter(|window| !window.is_empty()))
                .flatten()
                .map(|batch| (batch.at_ns, batch.targets, batch.txns.iter().map(Txn::id).collect::<Vec<_>>()))
                .collect::<Vec<_>>()
        };
        let (small_first, whole) = (drain(plan(true, Policy::Random)), drain(whole));
        assert!(whole.len() > WINDOW_BATCHES, "more than one whole window");
        assert_eq!(small_first, whole);
    }

    /// The thread that signs ahead makes exactly the batches the loop makes inline: same
    /// draws, same order, so a run's report does not depend on which one made them.
    #[test]
    fn batches_made_ahead_are_those_made_inline() {
        for policy in [Policy::RoundRobin, Policy::Random, Policy::All] {
            let inline = all(Clients::inline(plan(true, policy)));
            let ahead = all(Clients::ahead(plan(true, policy), SharedVerdicts::default()));
            assert_eq!(inline.len(), ahead.len());
            for (a, b) in inline.iter().zip(&ahead) {
                assert_eq!((a.at_ns, &a.targets), (b.at_ns, &b.targets), "{policy:?}");
                assert!(a.txns.iter().zip(&b.txns).all(|(x, y)| x.id() == y.id()), "{policy:?}");
                assert_eq!(a.txns.len(), b.txns.len());
            }
        }
        let stand_in = all(Clients::inline(plan(false, Policy::All)));
        let txn = &stand_in[50].txns[0];
        assert_eq!(txn.signature.0, stand_in_signature(&txn.body));
    }
}
