//! `tessera bench sigverify`: the verification kernel on this machine.

use std::time::Instant;

use clap::Args;
use tessera_components::Txn;
use tessera_systems::kernels::prefilter::{
    PrefilterColumns, PrefilterParams, PrefilterRow, check_scalar, check_simd,
};
use tessera_systems::kernels::sigverify::{
    VerifyItem, curve_backend, verify_batch, verify_chunk, verify_many, verify_single,
};
use tessera_systems::workload::{SeedStream, TransferSpec, transfers};
use tessera_systems::{Ledger, Pipeline, PipelineConfig, Stages};

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
    txns.iter().map(VerifyItem::of_txn).collect()
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
        balance: 1 << 40,
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
    // Up to 64 clean chunks (fewer when --sigs is small; --sigs ≥ 256 guarantees four).
    let clean = &all[..(all.len() / n).min(64) * n];
    let clean_per_s = measure(args.rounds, clean.len(), || {
        for chunk in clean.chunks(n) {
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

    // The headline figures, all at the default chunk size, all cores.
    let batch_size = PipelineConfig::default().sigverify_batch_size;
    let ceiling_per_s = median(
        &mut (0..args.rounds)
            .map(|_| args.sigs as f64 / verify_ceiling_secs(txns, batch_size))
            .collect::<Vec<_>>(),
    );
    let mut verdicts = vec![false; all.len()];
    let kernel_per_s = measure(args.rounds, all.len(), || verify_many(&all, &mut verdicts, batch_size));
    // Every key new (one transfer per sender, more senders than the threads' key caches hold):
    // what the kernel costs when no key repeats, against the ceiling on the same signatures.
    let fresh_count = args.sigs.max(8_192);
    let fresh = transfers(TransferSpec {
        seed: 12,
        chain_id: 1,
        senders: fresh_count as u64,
        per_sender: 1,
        balance: 1 << 40,
        fee_min: 1,
    });
    let fresh_items = items(&fresh.txns);
    let fresh_ceiling_per_s = median(
        &mut (0..args.rounds)
            .map(|_| fresh_count as f64 / verify_ceiling_secs(&fresh.txns, batch_size))
            .collect::<Vec<_>>(),
    );
    let mut fresh_verdicts = vec![false; fresh_items.len()];
    let fresh_kernel_per_s =
        measure(args.rounds, fresh_count, || verify_many(&fresh_items, &mut fresh_verdicts, batch_size));
    if !fresh_verdicts.iter().all(|ok| *ok) {
        return Err("a valid signature was refused".into());
    }
    let mut path_rates = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        path_rates.push(path_per_s(&workload.genesis, txns)?);
    }
    let path_per_s = median(&mut path_rates);
    let (prefilter_simd_per_s, prefilter_scalar_per_s) = prefilter_rates(args.rounds);

    let backend = curve_backend();
    let ratio_to_ceiling = path_per_s / ceiling_per_s;
    if args.json {
        let report = serde_json::json!({
            "backend": backend,
            "threads": threads,
            "sigs": args.sigs,
            "batch_size": batch_size,
            "ceiling_per_s": ceiling_per_s.round(),
            "kernel_per_s": kernel_per_s.round(),
            "path_per_s": path_per_s.round(),
            "ratio_to_ceiling": round3(ratio_to_ceiling),
            "kernel_ratio_to_ceiling": round3(kernel_per_s / ceiling_per_s),
            "distinct_keys_kernel_per_s": fresh_kernel_per_s.round(),
            "distinct_keys_ceiling_per_s": fresh_ceiling_per_s.round(),
            "distinct_keys_ratio_to_ceiling": round3(fresh_kernel_per_s / fresh_ceiling_per_s),
            "prefilter_simd_per_s": prefilter_simd_per_s.round(),
            "prefilter_scalar_per_s": prefilter_scalar_per_s.round(),
            "prefilter_simd_speedup": round3(prefilter_simd_per_s / prefilter_scalar_per_s),
            "single_per_s_per_core": single_per_s.round(),
            "batch": by_batch.iter().map(|(size, per_s, ceiling)| serde_json::json!({
                "batch_size": size, "per_s": per_s.round(), "dalek_verify_batch_per_s": ceiling.round(),
                "ratio_to_dalek": round3(per_s / ceiling),
            })).collect::<Vec<_>>(),
            "bisection_chunk": n,
            "bisection_cost_vs_clean": bisection.iter().map(|(k, cost)| serde_json::json!({
                "bad": k, "cost": (cost * 100.0).round() / 100.0,
            })).collect::<Vec<_>>(),
        });
        println!("{report}");
    } else {
        println!("backend        {backend} ({threads} threads, batch size {batch_size})");
        println!("ceiling        {ceiling_per_s:>9.0} sig/s  ed25519_dalek::verify_batch, all cores");
        println!(
            "kernel         {kernel_per_s:>9.0} sig/s  ({:.3} of ceiling)",
            kernel_per_s / ceiling_per_s
        );
        println!(
            "distinct keys  {fresh_kernel_per_s:>9.0} sig/s  ({:.3} of the ceiling's {fresh_ceiling_per_s:.0} on the same): every key new, the key cache misses",
            fresh_kernel_per_s / fresh_ceiling_per_s
        );
        println!(
            "path           {path_per_s:>9.0} txn/s  ingest → prefilter → verify → dedup ({ratio_to_ceiling:.3} of ceiling)"
        );
        println!(
            "prefilter      {prefilter_simd_per_s:>9.0} rows/s SIMD, {prefilter_scalar_per_s:.0} rows/s scalar ({:.2}x)",
            prefilter_simd_per_s / prefilter_scalar_per_s
        );
        println!("single         {single_per_s:>9.0} sig/s per core");
        println!("batch_size      tessera/s     dalek/s   ratio   (all cores)");
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

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Transactions per second through ingest → prefilter → sigverify → dedup.
fn path_per_s(genesis: &[([u8; 32], u64)], txns: &[Txn]) -> Result<f64, Box<dyn std::error::Error>> {
    let config = PipelineConfig::default();
    let mut pipeline = {
        let ledger = Ledger::from_genesis(genesis)?;
        let tip = tessera_systems::ChainTip::genesis(&ledger);
        Pipeline::with_stages(config.clone(), ledger, tip, Stages::ThroughDedup)?
    };
    let elapsed = super::drive_until_idle(&mut pipeline, txns);
    if pipeline.counters().admitted != txns.len() as u64 {
        return Err(
            format!("admission path passed {} of {}", pipeline.counters().admitted, txns.len()).into()
        );
    }
    Ok(rate(txns.len(), elapsed))
}

/// Rows per second of the SIMD prefilter kernel and its scalar reference on the same columns:
/// one tick's worth of rows (the default ingest batch, cache-resident as in the system), swept
/// `REPEATS` times per measurement.
fn prefilter_rates(rounds: usize) -> (f64, f64) {
    const REPEATS: usize = 256;
    let rows = PipelineConfig::default().ingest_batch_max;
    let params = PrefilterParams { chain_id: 1, fee_floor: 10, nonce_window: 64 };
    let mut stream = SeedStream::new("bench prefilter", 1);
    let mut columns = PrefilterColumns::default();
    for _ in 0..rows {
        // Mostly valid rows, with every kind of refusal mixed in (as a live inbox would be).
        let r = stream.next_u64();
        let account_nonce = r % 1000;
        columns.push(PrefilterRow {
            chain_id: if r.is_multiple_of(97) { 2 } else { 1 },
            reserved: u64::from(r.is_multiple_of(211)),
            fee: 5 + (r >> 8) % 100,
            amount: (r >> 16) % 500,
            self_transfer: u64::from(r.is_multiple_of(389)),
            nonce: account_nonce + (r >> 24) % 80 - u64::from(r.is_multiple_of(53)).min(account_nonce),
            account_nonce,
        });
    }
    let mut simd_codes = vec![0u8; rows];
    let mut scalar_codes = vec![0u8; rows];
    let simd = measure(rounds.max(3), rows * REPEATS, || {
        for _ in 0..REPEATS {
            check_simd(std::hint::black_box(&columns), &params, &mut simd_codes);
        }
    });
    let scalar = measure(rounds.max(3), rows * REPEATS, || {
        for _ in 0..REPEATS {
            check_scalar(std::hint::black_box(&columns), &params, &mut scalar_codes);
        }
    });
    assert_eq!(simd_codes, scalar_codes, "SIMD and scalar prefilters disagree");
    (simd, scalar)
}
