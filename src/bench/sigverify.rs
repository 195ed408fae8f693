//! `tessera bench sigverify`: the verification kernel on this machine.

use std::time::Instant;

use clap::Args;
use tessera_components::Txn;
use tessera_systems::kernels::sigverify::{
    VerifyItem, curve_backend, verify_batch, verify_chunk, verify_many, verify_single,
};
use tessera_systems::workload::{TransferSpec, transfers};

use super::pipeline::verify_ceiling_secs;
use super::{median, rate};

/// Arguments of `tessera bench sigverify`.
#[derive(Debug, Args)]
pub struct SigverifyArgs {
    /// Signatures per measurement.
    #[arg(long, default_value_t = 16_384)]
    sigs: usize,
    /// Measured rounds (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn items(txns: &[Txn]) -> Vec<VerifyItem<'_>> {
    txns.iter()
        .map(|t| VerifyItem {
            public_key: &t.body.sender,
            message: t.body.signing_bytes(),
            signature: &t.signature.0,
        })
        .collect()
}

fn measure(rounds: usize, count: usize, mut f: impl FnMut()) -> f64 {
    let mut rates: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f();
            rate(count, start.elapsed())
        })
        .collect();
    median(&mut rates)
}

/// Runs the benchmark.
///
/// # Errors
/// Invalid arguments, or a verdict that is wrong (the benchmark asserts its answers).
pub fn run(args: &SigverifyArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.sigs < 256 || args.rounds == 0 {
        return Err("--sigs must be at least 256 and --rounds positive".into());
    }
    let workload = transfers(TransferSpec {
        seed: 11,
        chain_id: 1,
        senders: (args.sigs as u64).div_ceil(4),
        per_sender: 4,
        balance: 1,
        fee_min: 1,
    });
    let txns = &workload.txns[..args.sigs];
    let all = items(txns);
    let threads = rayon::current_num_threads();

    // Single verification on one core.
    let single_count = (args.sigs / 4).max(256);
    let single_per_s = measure(args.rounds, single_count, || {
        assert!(all[..single_count].iter().all(verify_single));
    });

    // Batched on all cores, by chunk size.
    let mut by_batch = Vec::new();
    for batch_size in [8usize, 16, 32, 64, 128, 256] {
        let mut verdicts = vec![false; all.len()];
        let per_s = measure(args.rounds, all.len(), || {
            verify_many(&all, &mut verdicts, batch_size);
        });
        if !verdicts.iter().all(|ok| *ok) {
            return Err("a valid signature was refused".into());
        }
        let ceiling_per_s = median(
            &mut (0..args.rounds)
                .map(|_| args.sigs as f64 / verify_ceiling_secs(txns, batch_size))
                .collect::<Vec<_>>(),
        );
        by_batch.push((batch_size, per_s, ceiling_per_s));
    }

    // Bisection: k bad signatures in a chunk of 64, cost relative to a clean chunk (one core).
    let n = 64;
    let mut bisection = Vec::new();
    let clean_per_s = measure(args.rounds, n * 64, || {
        for chunk in all[..n * 64].chunks(n) {
            assert!(verify_batch(chunk));
        }
    });
    for k in [0usize, 1, 2, 4, 8, 16, 64] {
        let mut bad: Vec<Txn> = txns[..n].to_vec();
        for i in 0..k {
            let at = i * n / k.max(1);
            bad[at].signature.0[40] ^= 1;
        }
        let bad_items = items(&bad);
        let mut verdicts = vec![false; n];
        let per_s = measure(args.rounds, n * 64, || {
            for _ in 0..64 {
                verify_chunk(&bad_items, &mut verdicts);
            }
        });
        let refused = verdicts.iter().filter(|ok| !**ok).count();
        if refused != k {
            return Err(format!("bisection found {refused} bad signatures, {k} planted").into());
        }
        bisection.push((k, clean_per_s / per_s));
    }

    let backend = curve_backend();
    if args.json {
        let report = serde_json::json!({
            "backend": backend,
            "threads": threads,
            "single_per_s_per_core": single_per_s.round(),
            "batch": by_batch.iter().map(|(size, per_s, ceiling)| serde_json::json!({
                "batch_size": size, "per_s": per_s.round(), "dalek_verify_batch_per_s": ceiling.round(),
                "ratio_to_dalek": ((per_s / ceiling) * 1000.0).round() / 1000.0,
            })).collect::<Vec<_>>(),
            "bisection_chunk": n,
            "bisection_cost_vs_clean": bisection.iter().map(|(k, cost)| serde_json::json!({
                "bad": k, "cost": (cost * 100.0).round() / 100.0,
            })).collect::<Vec<_>>(),
        });
        println!("{report}");
    } else {
        println!("backend        {backend} ({threads} threads)");
        println!("single         {single_per_s:>9.0} sig/s per core");
        println!(
            "batch_size      tessera/s     dalek/s   ratio   (all cores, ZIP-215 kernel vs ed25519_dalek::verify_batch)"
        );
        for (size, per_s, ceiling) in &by_batch {
            println!("{size:>10} {per_s:>12.0} {ceiling:>11.0} {:>7.3}", per_s / ceiling);
        }
        println!("bisection      k bad in a chunk of {n}: time relative to a clean chunk (one core)");
        for (k, cost) in &bisection {
            println!("{k:>10} {cost:>9.2}x");
        }
    }
    Ok(())
}
