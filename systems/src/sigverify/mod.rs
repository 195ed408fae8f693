//! Sigverify: check every prefiltered signature, in batches on all cores.
//!
//! Bird's eye view: the system copies the tick's prefiltered signatures into an owned
//! [`VerifyJob`] and runs it on rayon's pool through [`crate::kernels::sigverify`]. With
//! `sigverify_overlap` (the default) the job runs in the background while the main thread
//! carries on with the rest of the tick (mempool, propose, execute), and the next tick's
//! sigverify set waits for it and applies its verdicts first. Verification is the only stage
//! that uses every core; overlapping it with the single-threaded stages keeps all cores busy.
//! The verdicts, and the point in the schedule where they are applied, do not depend on timing,
//! so a run is as deterministic as without overlap.

use foldhash::HashMap;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use bevy_ecs::prelude::*;
use tessera_components::{RejectReason, Source, Stage, SubmittedBy, TxnBody, TxnId, TxnSignature};

use crate::config::PipelineConfig;
use crate::counters::{PipelineCounters, RejectCounters};
use crate::fifo::FifoMap;
use crate::kernels::sigverify::{VerifyItem, stand_in_signature, verify_each, verify_many};
use crate::kernels::verify_cache::VerifyCache;
use crate::plugin::Plugin;

/// The cache of accepted signatures, keyed by transaction id. Written by
/// [`verify_signatures`] when verdicts land; read by it for every prefiltered transaction.
#[derive(Debug, Resource)]
pub struct AcceptedSignatures(pub VerifyCache);

/// Verdicts shared by the pipelines of one process that opt in (the simulator's nodes), so a
/// transaction's signature verified by one simulated node is not verified again by the next.
/// Verification is a pure function of (key, message, signature), and the key here is the
/// transaction id, a hash of exactly those bytes, so sharing changes no verdict. The simulator
/// charges virtual time per wake-up, never per real microsecond, so it changes no report
/// either. A node process has none (the default).
#[derive(Clone, Debug, Default, Resource)]
pub struct SharedVerdicts(Option<Arc<Memo>>);

/// The memo behind [`SharedVerdicts`], and how many signatures went into it.
#[derive(Debug)]
struct Memo {
    verdicts: Mutex<HashMap<[u8; 32], bool>>,
    /// Verdicts on signatures of any message ([`SharedVerdicts::remembered_signatures`]), one
    /// memo per mode: real verification (`[0]`) and stand-ins (`[1]`) answer differently.
    signatures: [Mutex<SignatureMemo>; 2],
    /// Judgements of whole batches of consensus messages, by the bytes of the signatures they
    /// carry ([`SharedVerdicts::remembered_batch`]); oldest first out.
    batches: Mutex<FifoMap<Arc<[u8]>, (Vec<bool>, u64)>>,
    /// Signatures actually verified, by a pipeline through the memo or ahead of it.
    verified: std::sync::atomic::AtomicU64,
    /// Signatures this process made and vouched for, not yet handed to an audit
    /// ([`SharedVerdicts::vouch`]).
    vouched: Mutex<Vec<Vouched>>,
}

/// An Ed25519 signature this process made, remembered as valid before anything verified it,
/// and so owed an audit ([`SharedVerdicts::vouch`], [`audit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vouched {
    /// The signer's public key.
    pub public_key: [u8; 32],
    /// The signature made.
    pub signature: [u8; 64],
    /// The bytes signed.
    pub message: Box<[u8]>,
}

/// Each vouched signature's verdict, in order, as a node would find it: batch-verified, on
/// every core.
pub fn audit(vouched: &[Vouched], batch_size: usize) -> Vec<bool> {
    let items: Vec<VerifyItem<'_>> = vouched
        .iter()
        .map(|v| VerifyItem { public_key: &v.public_key, message: &v.message, signature: &v.signature })
        .collect();
    let mut verdicts = vec![false; items.len()];
    if !items.is_empty() {
        verify_many(&items, &mut verdicts, batch_size.max(1));
    }
    verdicts
}

impl Default for Memo {
    fn default() -> Memo {
        Memo {
            verdicts: Mutex::default(),
            signatures: Default::default(),
            batches: Mutex::new(FifoMap::weighed(
                SharedVerdicts::BATCHES_MAX,
                SharedVerdicts::BATCH_BYTES_MAX,
                |key, _| key.len(),
            )),
            verified: std::sync::atomic::AtomicU64::default(),
            vouched: Mutex::default(),
        }
    }
}

impl SharedVerdicts {
    /// Most verdicts held; past it the memo starts again empty (memory stays bounded over
    /// long simulations, at the cost of verifying again what was dropped).
    pub const MAX: usize = 1 << 22;

    /// A memo to hand to every pipeline that shares it.
    pub fn new() -> SharedVerdicts {
        SharedVerdicts(Some(Arc::default()))
    }

    /// Signatures verified into the memo so far (each distinct one once, while the memo holds
    /// it); 0 without a memo.
    pub fn verified(&self) -> u64 {
        self.0.as_ref().map_or(0, |memo| memo.verified.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Remembers verdicts found elsewhere: `(transaction id, verdict)` pairs, each the verdict
    /// of verifying exactly the signature that id hashes (the simulator's clients verify what
    /// they signed, ahead of the loop, on a thread of their own). Nothing for a pipeline
    /// without a memo.
    pub fn remember(&self, verdicts: &[([u8; 32], bool)]) {
        let Some(memo) = &self.0 else {
            return;
        };
        memo.verified.fetch_add(verdicts.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut memo = memo.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        if memo.len() + verdicts.len() > Self::MAX {
            memo.clear();
        }
        memo.extend(verdicts.iter().copied());
    }

    /// Verdicts for transaction `items` in order, keyed by transaction id.
    fn verdicts(&self, items: &[OwnedItem], verify: impl FnOnce(&[OwnedItem]) -> Vec<bool>) -> Vec<bool> {
        self.remembered(items, |item| item.id, verify)
    }

    /// Verdicts for `items` in order: remembered ones from the memo, the others from `verify`
    /// (called once, with the items not remembered, unless there are none), which are then
    /// remembered under `key`. `key` must hash exactly the (key, message, signature) an item
    /// stands for.
    pub fn remembered<T: Copy>(
        &self,
        items: &[T],
        key: impl Fn(&T) -> [u8; 32],
        verify: impl FnOnce(&[T]) -> Vec<bool>,
    ) -> Vec<bool> {
        let Some(shared) = &self.0 else {
            return verify(items);
        };
        let memo = &shared.verdicts;
        let keys: Vec<[u8; 32]> = items.iter().map(&key).collect();
        let mut verdicts: Vec<Option<bool>> = {
            let memo = memo.lock().unwrap_or_else(PoisonError::into_inner);
            keys.iter().map(|key| memo.get(key).copied()).collect()
        };
        let unknown: Vec<T> =
            items.iter().zip(&verdicts).filter(|(_, known)| known.is_none()).map(|(item, _)| *item).collect();
        if !unknown.is_empty() {
            let fresh = verify(&unknown);
            shared.verified.fetch_add(unknown.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let mut memo = memo.lock().unwrap_or_else(PoisonError::into_inner);
            if memo.len() + unknown.len() > Self::MAX {
                memo.clear();
            }
            let mut fresh = fresh.into_iter();
            for (key, verdict) in keys.iter().zip(verdicts.iter_mut()) {
                if verdict.is_none() {
                    let accepted = fresh.next().expect("one verdict per unknown item");
                    memo.insert(*key, accepted);
                    *verdict = Some(accepted);
                }
            }
        }
        verdicts.into_iter().map(|verdict| verdict.expect("every verdict filled")).collect()
    }

    /// Remembers an Ed25519 signature this process just made as valid, before anything
    /// verifies it, and queues it for [`audit`] ([`SharedVerdicts::take_vouched`]). For the
    /// signer's own signatures only (the simulator's validators sign through it): a correct
    /// signer's output verifies, so vouching changes no verdict, and the audit checks that it
    /// did not, on another core, once per signature. What a peer sends is never vouched for: a
    /// signature that did not come out of this process's signing is found in the memo only
    /// once verified. Nothing for a pipeline without a memo.
    pub fn vouch(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) {
        let Some(shared) = &self.0 else { return };
        let item = VerifyItem { public_key, message, signature };
        {
            // Real verification's memo (stand-ins are `[1]`).
            let mut memo = shared.signatures[0].lock().unwrap_or_else(PoisonError::into_inner);
            let hash = memo.hash(&item);
            memo.insert(hash, &item, true);
        }
        shared.vouched.lock().unwrap_or_else(PoisonError::into_inner).push(Vouched {
            public_key: *public_key,
            signature: *signature,
            message: message.into(),
        });
    }

    /// The vouched signatures not yet taken, oldest first; the memo owes each an audit.
    pub fn take_vouched(&self) -> Vec<Vouched> {
        self.0.as_ref().map_or_else(Vec::new, |shared| {
            std::mem::take(&mut *shared.vouched.lock().unwrap_or_else(PoisonError::into_inner))
        })
    }

    /// How many vouched signatures wait to be taken.
    pub fn vouched_waiting(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |shared| shared.vouched.lock().unwrap_or_else(PoisonError::into_inner).len())
    }

    /// Counts `count` signatures as verified (an audit's, done outside the memo).
    pub fn count_verified(&self, count: u64) {
        if let Some(shared) = &self.0 {
            shared.verified.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// True for a memo shared between pipelines; false for a node's own (none).
    pub fn is_shared(&self) -> bool {
        self.0.is_some()
    }

    /// Most batch judgements held, and most bytes of their keys.
    const BATCHES_MAX: usize = 4096;
    const BATCH_BYTES_MAX: usize = 32 << 20;

    /// A judgement [`SharedVerdicts::remember_batch`] recorded under exactly these bytes: which
    /// messages keep, and how many distinct signatures the batch carries.
    pub fn remembered_batch(&self, key: &[u8]) -> Option<(Vec<bool>, u64)> {
        let memo = self.0.as_ref()?.batches.lock().unwrap_or_else(PoisonError::into_inner);
        memo.get(key).cloned()
    }

    /// Records a batch's judgement under the bytes that name its signatures and the mode they
    /// were checked in (the caller's encoding, which must be exact). Bounded in entries and in
    /// bytes, the oldest going first.
    pub fn remember_batch(&self, key: Vec<u8>, judged: (Vec<bool>, u64)) {
        let Some(shared) = &self.0 else { return };
        let mut memo = shared.batches.lock().unwrap_or_else(PoisonError::into_inner);
        if key.len() > Self::BATCH_BYTES_MAX || memo.contains_key(key.as_slice()) {
            return;
        }
        // One copy of the key, shared by the map and the order of arrival.
        memo.insert(Arc::from(key), judged);
    }

    /// Verdicts for signatures of any message, in order: remembered ones from the memo of
    /// this mode (matched on the whole key, signature and message), the others from `verify`
    /// (called once, with the items not remembered, unless there are none), then remembered.
    /// `stand_in` names the mode `verify` checks in.
    pub fn remembered_signatures(
        &self,
        items: &[VerifyItem<'_>],
        stand_in: bool,
        verify: impl FnOnce(&[VerifyItem<'_>]) -> Vec<bool>,
    ) -> Vec<bool> {
        let Some(shared) = &self.0 else {
            return verify(items);
        };
        let (hashes, mut verdicts): (Vec<u64>, Vec<Option<bool>>) = {
            let memo =
                shared.signatures[usize::from(stand_in)].lock().unwrap_or_else(PoisonError::into_inner);
            items
                .iter()
                .map(|item| {
                    let hash = memo.hash(item);
                    (hash, memo.get(hash, item))
                })
                .unzip()
        };
        let unknown: Vec<VerifyItem<'_>> =
            items.iter().zip(&verdicts).filter(|(_, known)| known.is_none()).map(|(item, _)| *item).collect();
        if !unknown.is_empty() {
            let fresh = verify(&unknown);
            if !stand_in {
                // Signatures, not stand-ins: the count prices real verification.
                shared.verified.fetch_add(unknown.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            let mut memo =
                shared.signatures[usize::from(stand_in)].lock().unwrap_or_else(PoisonError::into_inner);
            let mut fresh = fresh.into_iter();
            for ((item, hash), verdict) in items.iter().zip(&hashes).zip(verdicts.iter_mut()) {
                if verdict.is_none() {
                    let accepted = fresh.next().expect("one verdict per unknown item");
                    memo.insert(*hash, item, accepted);
                    *verdict = Some(accepted);
                }
            }
        }
        verdicts.into_iter().map(|verdict| verdict.expect("every verdict filled")).collect()
    }
}

/// Verdicts by (public key, signature, message), held whole and compared byte for byte, so a
/// hit is exactly the question asked; found through a fast non-cryptographic hash of the three
/// (a collision costs a comparison, never a wrong verdict). In-process only: cheaper than a
/// cryptographic key, which cost as much as the stand-in check it was to save.
#[derive(Debug, Default)]
struct SignatureMemo {
    /// `public key ‖ signature ‖ message` and its verdict, by the hash of those bytes.
    by_hash: HashMap<u64, Vec<(Box<[u8]>, bool)>>,
    len: usize,
    /// The hash's seed, drawn per memo, so that no input is known in advance to collide.
    seed: foldhash::fast::RandomState,
}

impl SignatureMemo {
    /// Most verdicts held; past it the memo starts again empty.
    const MAX: usize = 1 << 18;

    fn hash(&self, item: &VerifyItem<'_>) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = self.seed.build_hasher();
        hasher.write(item.public_key);
        hasher.write(item.signature);
        hasher.write(item.message);
        hasher.finish()
    }

    fn same(entry: &[u8], item: &VerifyItem<'_>) -> bool {
        entry.len() == 96 + item.message.len()
            && entry[..32] == item.public_key[..]
            && entry[32..96] == item.signature[..]
            && entry[96..] == *item.message
    }

    fn get(&self, hash: u64, item: &VerifyItem<'_>) -> Option<bool> {
        let bucket = self.by_hash.get(&hash)?;
        bucket.iter().find(|(entry, _)| Self::same(entry, item)).map(|(_, verdict)| *verdict)
    }

    fn insert(&mut self, hash: u64, item: &VerifyItem<'_>, verdict: bool) {
        if self.len >= Self::MAX {
            self.by_hash.clear();
            self.len = 0;
        }
        let bucket = self.by_hash.entry(hash).or_default();
        if bucket.iter().any(|(entry, _)| Self::same(entry, item)) {
            return;
        }
        let bytes = [&item.public_key[..], &item.signature[..], item.message].concat();
        bucket.push((bytes.into_boxed_slice(), verdict));
        self.len += 1;
    }
}

/// The sigverify subsystem's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigverifySystems {
    /// Applies landed verdicts ([`Stage::Verifying`] to [`Stage::Verified`] or
    /// [`Stage::Rejected`]) and starts a job for [`Stage::Prefiltered`] transactions.
    Verify,
}

/// One signature to check, owned so it can cross to the pool.
#[derive(Clone, Copy, Debug)]
struct OwnedItem {
    body: TxnBody,
    signature: [u8; 64],
    /// The transaction id: BLAKE3 over body and signature.
    id: [u8; 32],
}

/// The job in flight: which entities it covers, each with the item whose verdict it takes, and
/// where its verdicts arrive.
/// Written only by [`verify_signatures`].
#[derive(Debug, Default, Resource)]
pub struct VerifyJob {
    in_flight: Option<(Vec<(Entity, usize)>, Mutex<Receiver<(Vec<bool>, Option<u64>)>>)>,
}

/// Wall-clock microseconds of recent verification jobs, for the node's verify-batch histogram.
/// Bounded: beyond [`VerifyTimings::MAX`] undrained samples new ones are dropped. Timings never
/// feed back into what the pipeline decides.
#[derive(Debug, Default, Resource)]
pub struct VerifyTimings {
    samples_us: Vec<u64>,
    /// The shell's monotonic clock in microseconds; without one (the default, and in the
    /// simulator) nothing is timed. The systems never read a clock themselves.
    clock_us: Option<fn() -> u64>,
}

impl VerifyTimings {
    /// Most samples kept between drains.
    pub const MAX: usize = 4096;

    fn record(&mut self, us: u64) {
        if self.samples_us.len() < Self::MAX {
            self.samples_us.push(us);
        }
    }

    /// Times jobs with `clock_us` from now on.
    pub fn set_clock(&mut self, clock_us: fn() -> u64) {
        self.clock_us = Some(clock_us);
    }

    /// Takes the samples recorded since the last call.
    pub fn drain(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.samples_us)
    }
}

impl VerifyJob {
    /// True when a job's verdicts are still to be applied.
    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }
}

/// Verifies `items`; returns the verdicts and, given a clock, the job's microseconds.
fn run_job(
    items: &[OwnedItem],
    batch: bool,
    batch_size: usize,
    stand_in: bool,
    clock_us: Option<fn() -> u64>,
    shared: &SharedVerdicts,
) -> (Vec<bool>, Option<u64>) {
    let started = clock_us.map(|clock| clock());
    let verdicts = shared.verdicts(items, |items| verify_items(items, batch, batch_size, stand_in));
    (verdicts, clock_us.and_then(|clock| Some(clock().saturating_sub(started?))))
}

/// Verifies `items`, one verdict each, in order.
fn verify_items(items: &[OwnedItem], batch: bool, batch_size: usize, stand_in: bool) -> Vec<bool> {
    if stand_in {
        return items.iter().map(|item| item.signature == stand_in_signature(&item.body)).collect();
    }
    let views: Vec<VerifyItem<'_>> = items
        .iter()
        .map(|item| VerifyItem {
            public_key: &item.body.sender,
            message: item.body.signing_bytes(),
            signature: &item.signature,
        })
        .collect();
    let mut verdicts = vec![false; views.len()];
    if batch {
        verify_many(&views, &mut verdicts, batch_size);
    } else {
        verify_each(&views, &mut verdicts);
    }
    verdicts
}

/// Applies the verdicts of the job in flight (waiting for it if needed), then verifies every
/// prefiltered transaction: in the background with `sigverify_overlap`, else at once.
pub fn verify_signatures(
    config: Res<PipelineConfig>,
    mut job: ResMut<VerifyJob>,
    mut cache: ResMut<AcceptedSignatures>,
    mut counters: ResMut<RejectCounters>,
    mut pipeline: ResMut<PipelineCounters>,
    mut timings: ResMut<VerifyTimings>,
    shared: Res<SharedVerdicts>,
    mut forged: ResMut<Forged>,
    mut txns: Query<(Entity, &TxnBody, &TxnSignature, &TxnId, &mut Stage)>,
    sources: Query<&SubmittedBy>,
) {
    let source_of = |entity| sources.get(entity).ok().map(|SubmittedBy(source)| *source);
    let clock_us = timings.clock_us;
    let mut land = |cache: &mut AcceptedSignatures,
                    counters: &mut RejectCounters,
                    entities,
                    landed,
                    from,
                    txns: &mut Query<_>| {
        let mut sinks = VerdictSinks {
            cache,
            counters,
            timings: &mut timings,
            forged: &mut forged,
            source_of: &source_of,
        };
        apply_verdicts(entities, landed, from, txns, &mut sinks);
    };
    if let Some((entities, receiver)) = job.in_flight.take() {
        let receiver = receiver.into_inner().expect("verdict channel lock is never poisoned");
        let landed = receiver.recv().expect("verification job always sends its verdicts");
        land(&mut cache, &mut counters, entities, landed, Stage::Verifying, &mut txns);
    }

    // Each entity with the item whose verdict it takes. Copies of a transaction gathered this
    // tick (an id names exactly its sender, body and signature) take their original's verdict
    // and are not verified again: before, a frame of one signed transfer repeated 64 times cost
    // 64 verifications, each copy then refused as a duplicate and charged to nobody (found in
    // review). They land with the original, in the same tick, as each copy's own verdict did,
    // so what follows (the duplicate check, the fates, forwarding) sees what it saw before.
    let mut entities: Vec<(Entity, usize)> = Vec::new();
    let mut items = Vec::new();
    let mut hits = Vec::new();
    let mut slots: HashMap<[u8; 32], usize> = HashMap::default();
    for (entity, body, signature, id, stage) in &txns {
        if *stage != Stage::Prefiltered {
            continue;
        }
        if cache.0.contains(&id.0.0) {
            hits.push(entity);
            continue;
        }
        let slot = *slots.entry(id.0.0).or_insert_with(|| {
            items.push(OwnedItem { body: *body, signature: signature.0, id: id.0.0 });
            items.len() - 1
        });
        entities.push((entity, slot));
    }
    // A copy takes its original's verdict without a verification of its own: a hit.
    pipeline.verify_cache_hits += (hits.len() + entities.len() - items.len()) as u64;
    pipeline.verify_cache_misses += items.len() as u64;
    for entity in hits {
        *txns.get_mut(entity).expect("entity was just read").4 = Stage::Verified;
    }
    if items.is_empty() {
        return;
    }
    pipeline.verified += items.len() as u64;
    let (batch, batch_size, stand_in) =
        (config.sigverify_batch, config.sigverify_batch_size, config.sigverify_stand_in);
    if config.sigverify_overlap {
        for (entity, _) in &entities {
            *txns.get_mut(*entity).expect("entity was just read").4 = Stage::Verifying;
        }
        let (sender, receiver) = sync_channel(1);
        let shared = shared.clone();
        rayon::spawn(move || {
            // The receiver lives in the world until the verdicts are read, so a failed send
            // means the world itself is gone and nobody needs them.
            let _ = sender.send(run_job(&items, batch, batch_size, stand_in, clock_us, &shared));
        });
        job.in_flight = Some((entities, Mutex::new(receiver)));
    } else {
        let landed = run_job(&items, batch, batch_size, stand_in, clock_us, &shared);
        land(&mut cache, &mut counters, entities, landed, Stage::Prefiltered, &mut txns);
    }
}

/// Bad signatures not yet taken by the shell, per source ([`SubmittedBy`]). Bounded by the
/// validators and the addresses seen between two takes (the shell takes after every tick).
#[derive(Debug, Default, Resource)]
pub struct Forged(pub std::collections::BTreeMap<Source, u64>);

/// Where a job's verdicts are recorded besides the entities' stages.
struct VerdictSinks<'a> {
    cache: &'a mut AcceptedSignatures,
    counters: &'a mut RejectCounters,
    timings: &'a mut VerifyTimings,
    forged: &'a mut Forged,
    /// Who submitted an entity, where known.
    source_of: &'a dyn Fn(Entity) -> Option<Source>,
}

/// Lands one job's verdicts, one per item: `entities` (each at `from`, with the item whose
/// verdict it takes) move to [`Stage::Verified`] or [`Stage::Rejected`], accepted ids enter the
/// cache, refusals are counted, and the job's time (given a clock) is recorded.
fn apply_verdicts(
    entities: Vec<(Entity, usize)>,
    (verdicts, us): (Vec<bool>, Option<u64>),
    from: Stage,
    txns: &mut Query<(Entity, &TxnBody, &TxnSignature, &TxnId, &mut Stage)>,
    sinks: &mut VerdictSinks<'_>,
) {
    if let Some(us) = us {
        sinks.timings.record(us);
    }
    assert!(entities.iter().all(|(_, slot)| *slot < verdicts.len()), "a verdict for every entity");
    for (entity, slot) in entities {
        let accepted = verdicts[slot];
        let (_, _, _, id, mut stage) =
            txns.get_mut(entity).expect("entities of a job are never despawned before its verdicts land");
        assert_eq!(*stage, from, "a job's entities wait at one stage");
        if accepted {
            sinks.cache.0.insert(&id.0.0);
        } else if let Some(source) = (sinks.source_of)(entity) {
            *sinks.forged.0.entry(source).or_default() += 1;
        }
        *stage = verdict_stage(accepted, sinks.counters);
    }
}

fn verdict_stage(accepted: bool, counters: &mut RejectCounters) -> Stage {
    if accepted {
        Stage::Verified
    } else {
        counters.bump(RejectReason::BadSignature);
        Stage::Rejected(RejectReason::BadSignature)
    }
}

/// Installs sigverify.
#[derive(Debug, Default)]
pub struct SigverifyPlugin;

impl Plugin for SigverifyPlugin {
    fn build(&self, world: &mut World, schedule: &mut Schedule) {
        world.init_resource::<VerifyJob>();
        world.init_resource::<VerifyTimings>();
        world.init_resource::<SharedVerdicts>();
        world.init_resource::<Forged>();
        let capacity = world.resource::<PipelineConfig>().sigverify_cache_capacity;
        world.insert_resource(AcceptedSignatures(VerifyCache::new(capacity)));
        schedule.add_systems(verify_signatures.in_set(SigverifySystems::Verify));
    }
}

#[cfg(test)]
mod shared_tests {
    use std::cell::Cell;

    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn item(seed: u8, forged: bool) -> OwnedItem {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let body = TxnBody {
            chain_id: 1,
            reserved: 0,
            sender: key.verifying_key().to_bytes(),
            recipient: [9; 32],
            amount: 5,
            fee: 1,
            nonce: u64::from(seed),
        };
        let mut signature = key.sign(body.signing_bytes()).to_bytes();
        if forged {
            signature[40] ^= 1;
        }
        let mut id = *blake3::hash(&signature).as_bytes();
        id[0] = seed;
        OwnedItem { body, signature, id }
    }

    #[test]
    fn a_shared_memo_verifies_each_signature_once_and_changes_no_verdict() {
        let items: Vec<OwnedItem> = (1..=6).map(|seed| item(seed, seed % 3 == 0)).collect();
        let direct = verify_items(&items, true, 64, false);
        assert_eq!(direct, vec![true, true, false, true, true, false]);
        let shared = SharedVerdicts::new();
        let verified = Cell::new(0);
        let counting = |items: &[OwnedItem]| {
            verified.set(verified.get() + items.len());
            verify_items(items, true, 64, false)
        };
        // One node sees the first four; the next sees all six: only the last two are new.
        assert_eq!(shared.clone().verdicts(&items[..4], counting), direct[..4]);
        assert_eq!(shared.verdicts(&items, counting), direct);
        assert_eq!(verified.get(), 6, "each signature verified once across both");
        assert_eq!(shared.verified(), 6, "the memo counts what went into it");
        // Without a memo (a node process), every call verifies everything.
        let alone = SharedVerdicts::default();
        assert_eq!(alone.verdicts(&items, counting), direct);
        assert_eq!(verified.get(), 12);
        assert_eq!(alone.verified(), 0, "no memo, nothing counted");
    }

    /// A memo entry answers only for the whole (key, signature, message) it holds, whatever
    /// the hash that found it; and the batch memo drops its oldest past its bound.
    #[test]
    fn memo_entries_match_whole_items_and_batches_are_bounded() {
        let (key, signature) = ([1; 32], [2; 64]);
        let one = VerifyItem { public_key: &key, message: b"one", signature: &signature };
        let two = VerifyItem { public_key: &key, message: b"two", signature: &signature };
        let mut memo = SignatureMemo::default();
        memo.insert(7, &one, true);
        assert_eq!(memo.get(7, &one), Some(true));
        assert_eq!(memo.get(7, &two), None, "the same hash, another message");
        memo.insert(7, &two, false);
        assert_eq!((memo.get(7, &one), memo.get(7, &two)), (Some(true), Some(false)));

        let shared = SharedVerdicts::new();
        let max = SharedVerdicts::BATCHES_MAX;
        for n in 0..=max {
            shared.remember_batch(n.to_le_bytes().to_vec(), (vec![n.is_multiple_of(2)], n as u64));
        }
        assert_eq!(shared.remembered_batch(&0usize.to_le_bytes()), None, "the oldest went first");
        assert_eq!(
            shared.remembered_batch(&max.to_le_bytes()),
            Some((vec![max.is_multiple_of(2)], max as u64))
        );
        assert_eq!(SharedVerdicts::default().remembered_batch(&max.to_le_bytes()), None, "no memo");
    }

    #[test]
    fn signatures_of_any_message_are_remembered_by_key_message_and_signature() {
        let owned: Vec<OwnedItem> = (1..=4).map(|seed| item(seed, seed == 2)).collect();
        let views: Vec<VerifyItem<'_>> = owned
            .iter()
            .map(|o| VerifyItem {
                public_key: &o.body.sender,
                message: o.body.signing_bytes(),
                signature: &o.signature,
            })
            .collect();
        let shared = SharedVerdicts::new();
        let verified = Cell::new(0);
        let verify = |items: &[VerifyItem<'_>]| {
            verified.set(verified.get() + items.len());
            let mut verdicts = vec![false; items.len()];
            crate::kernels::sigverify::verify_many(items, &mut verdicts, 64);
            verdicts
        };
        assert_eq!(shared.remembered_signatures(&views, false, verify), vec![true, false, true, true]);
        assert_eq!(shared.remembered_signatures(&views, false, verify), vec![true, false, true, true]);
        assert_eq!(verified.get(), 4, "the second pass verified nothing");
        // The same signature under another key is another question.
        let other = [owned[1].body.sender; 1];
        let moved = [VerifyItem { public_key: &other[0], ..views[0] }];
        assert_eq!(shared.remembered_signatures(&moved, false, verify), vec![false]);
        assert_eq!(verified.get(), 5);
    }
}
