//! The audit of the signatures the simulated validators vouch for.
//!
//! A validator's consensus signatures are remembered as valid in the run's shared memo as it
//! makes them ([`SharedVerdicts::vouch`]), so the peers that receive them verify nothing on the
//! loop's thread. Each is still verified once: the loop hands them over in batches to a thread
//! of its own, which batch-verifies them as a node would, and the run waits for it before it
//! ends. A signature that fails its audit means the simulator trusted one that does not verify,
//! so the run's figures are not what verifying would have given: the run reports it as a
//! safety violation instead of a result.
//!
//! The audit changes no verdict a run acts on, so a run's report does not depend on it, on its
//! thread's speed, or on whether the thread could be started (then the loop audits inline).

use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use tessera_systems::sigverify::{SharedVerdicts, Vouched, audit};

/// Vouched signatures handed over at a time: a batch that pays for its verification's setup.
const AUDIT_BATCH: usize = 64;

/// Batches in flight to the thread before the loop waits for it: bounds what the audit holds.
const BATCHES_IN_FLIGHT: usize = 64;

/// What the audit found when it finished.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditResult {
    /// Signatures audited.
    pub audited: u64,
    /// The first signature that failed, described, if any.
    pub failed: Option<String>,
}

impl AuditResult {
    fn add(&mut self, batch: &[Vouched], batch_size: usize, memo: &SharedVerdicts) {
        let verdicts = audit(batch, batch_size);
        self.audited += batch.len() as u64;
        memo.count_verified(batch.len() as u64);
        if self.failed.is_none()
            && let Some((vouched, _)) = batch.iter().zip(&verdicts).find(|(_, ok)| !**ok)
        {
            self.failed = Some(format!(
                "a signature a validator made does not verify: key {}, {} bytes signed",
                hex::encode(vouched.public_key),
                vouched.message.len(),
            ));
        }
    }
}

/// The loop's side of the audit.
#[derive(Debug)]
pub struct Auditor {
    memo: SharedVerdicts,
    batch_size: usize,
    /// The audit thread's inbox and handle, once started (`None` before the first batch, and
    /// after [`Auditor::finish`]).
    thread: Option<(SyncSender<Vec<Vouched>>, JoinHandle<AuditResult>)>,
    /// Audited on the loop's thread (when no thread could be started), and what the thread
    /// found, once it has finished.
    result: AuditResult,
}

impl Auditor {
    /// An audit of what validators vouch for in `memo`, verifying in batches of `batch_size`.
    pub fn new(memo: SharedVerdicts, batch_size: usize) -> Auditor {
        Auditor { memo, batch_size: batch_size.max(1), thread: None, result: AuditResult::default() }
    }

    /// Hands the vouched signatures over once a batch of them waits.
    pub fn poll(&mut self) {
        if self.memo.vouched_waiting() >= AUDIT_BATCH {
            self.hand_over();
        }
    }

    fn hand_over(&mut self) {
        let batch = self.memo.take_vouched();
        if batch.is_empty() {
            return;
        }
        if self.thread.is_none() {
            let (sender, batches) = sync_channel::<Vec<Vouched>>(BATCHES_IN_FLIGHT);
            let (memo, batch_size) = (self.memo.clone(), self.batch_size);
            let spawned = std::thread::Builder::new().name("sim-audit".into()).spawn(move || {
                let mut result = AuditResult::default();
                for batch in batches {
                    result.add(&batch, batch_size, &memo);
                }
                result
            });
            if let Ok(handle) = spawned {
                self.thread = Some((sender, handle));
            }
        }
        let batch = match &self.thread {
            Some((sender, _)) => match sender.send(batch) {
                Ok(()) => return,
                // The thread is gone (it panicked): `finish` reports it; audit here meanwhile.
                Err(returned) => returned.0,
            },
            None => batch,
        };
        self.result.add(&batch, self.batch_size, &self.memo);
    }

    /// Audits what is left and waits for the thread: everything vouched for so far, and all
    /// the audit has found since it began.
    pub fn finish(&mut self) -> AuditResult {
        self.hand_over();
        if let Some((sender, handle)) = self.thread.take() {
            drop(sender);
            match handle.join() {
                Ok(thread) => {
                    self.result.audited += thread.audited;
                    self.result.failed = self.result.failed.take().or(thread.failed);
                }
                Err(_) => self.result.failed = Some("the audit thread panicked".to_owned()),
            }
        }
        self.result.clone()
    }

    /// Signatures audited by the last [`Auditor::finish`] (and inline since).
    pub fn audited(&self) -> u64 {
        self.result.audited
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn made(memo: &SharedVerdicts, seed: u8, message: &[u8]) -> [u8; 64] {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let signature = key.sign(message).to_bytes();
        memo.vouch(&key.verifying_key().to_bytes(), message, &signature);
        signature
    }

    #[test]
    fn every_vouched_signature_is_audited_once() {
        let memo = SharedVerdicts::new();
        let mut auditor = Auditor::new(memo.clone(), 16);
        for i in 0..200u32 {
            made(&memo, (i % 7) as u8, &i.to_le_bytes());
            auditor.poll();
        }
        let result = auditor.finish();
        assert_eq!(result, AuditResult { audited: 200, failed: None });
        assert_eq!(memo.verified(), 200, "each counts as verified once");
        assert_eq!(memo.vouched_waiting(), 0);
    }

    #[test]
    fn a_vouched_signature_that_does_not_verify_fails_the_audit() {
        // A signer that vouches for other bytes than it signed: what the audit is there to
        // catch, among a hundred good ones.
        let memo = SharedVerdicts::new();
        let mut auditor = Auditor::new(memo.clone(), 16);
        for i in 0..100u32 {
            made(&memo, 1, &i.to_le_bytes());
        }
        let key = SigningKey::from_bytes(&[9; 32]);
        let public_key = key.verifying_key().to_bytes();
        memo.vouch(&public_key, b"vouched", &key.sign(b"signed").to_bytes());
        auditor.poll();
        let result = auditor.finish();
        assert_eq!(result.audited, 101);
        let failed = result.failed.expect("the planted signature fails");
        assert!(failed.contains(&hex::encode(public_key)), "{failed}");
    }
}
