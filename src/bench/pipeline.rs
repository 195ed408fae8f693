//! `tessera bench pipeline`: N signed transfers through the whole schedule, against raw
//! `ed25519_dalek::verify_batch` over the same transactions on the same cores.

use std::time::Instant;

use clap::Args;
use ed25519_dalek::{Signature, VerifyingKey};
use rayon::prelude::*;
use tessera_components::Txn;
use tessera_systems::workload::{TransferSpec, transfers};
use tessera_systems::{Ledger, Pipeline, PipelineConfig};

use super::{median, rate};

/// Arguments of `tessera bench pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Signed transfers per round.
    #[arg(long, default_value_t = 40_000)]
    txns: usize,
    /// Workload seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Measured rounds of each side (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Signatures per verification chunk (pipeline and ceiling alike).
    #[arg(long, default_value_t = PipelineConfig::default().sigverify_batch_size)]
    batch_size: usize,
    /// Override a pipeline setting for this run, e.g. `--set sigverify_overlap=false` to measure
    /// without an optimisation. Keys: prefilter_simd, sigverify_batch, sigverify_overlap
    /// (true/false); sigverify_cache_capacity, ingest_batch_max, block_txn_max (numbers).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Seconds for raw `ed25519_dalek::verify_batch` over `txns` in chunks of `batch_size` on
/// rayon's pool, including decoding the public keys (as any verifier must).
///
/// # Panics
/// If any signature is bad: the ceiling is measured on valid input only.
pub fn verify_ceiling_secs(txns: &[Txn], batch_size: usize) -> f64 {
    let start = Instant::now();
    txns.par_chunks(batch_size).for_each(|chunk| {
        let messages: Vec<&[u8]> = chunk.iter().map(|t| t.body.signing_bytes()).collect();
        let signatures: Vec<Signature> =
            chunk.iter().map(|t| Signature::from_bytes(&t.signature.0)).collect();
        let keys: Vec<VerifyingKey> = chunk
            .iter()
            .map(|t| VerifyingKey::from_bytes(&t.body.sender).expect("workload keys are valid"))
            .collect();
        ed25519_dalek::verify_batch(&messages, &signatures, &keys).expect("workload signatures are valid");
    });
    start.elapsed().as_secs_f64()
}

fn pipeline_secs(
    genesis: &[([u8; 32], u64)],
    txns: &[Txn],
    config: &PipelineConfig,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut pipeline = Pipeline::new(config.clone(), Ledger::from_genesis(genesis)?)?;
    let elapsed = super::drive_until_idle(&mut pipeline, txns).as_secs_f64();
    // Assert the answer: every transfer executed, nothing refused.
    let executed = pipeline.counters().executed;
    if executed != txns.len() as u64 || pipeline.reject_counters().total() != 0 {
        let refused: Vec<String> = pipeline
            .reject_counters()
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|(name, count)| format!("{name}={count}"))
            .collect();
        return Err(format!(
            "pipeline executed {executed} of {} transfers (refused: {})",
            txns.len(),
            refused.join(" ")
        )
        .into());
    }
    Ok(elapsed)
}

/// Applies one `KEY=VALUE` override.
///
/// # Errors
/// [`crate::InputError`] (exit status 2) for an unknown key or a value of the wrong type.
/// Applies one `--set KEY=VALUE` to `config`.
///
/// # Errors
/// An unknown key or a value of the wrong type.
pub fn apply_setting(config: &mut PipelineConfig, setting: &str) -> Result<(), crate::InputError> {
    let bad = |why: &str| crate::InputError(format!("--set {setting}: {why}"));
    let (key, value) = setting.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
    let flag = || value.parse::<bool>().map_err(|_| bad("expected true or false"));
    let number = || value.parse::<usize>().map_err(|_| bad("expected a whole number"));
    match key {
        "prefilter_simd" => config.prefilter_simd = flag()?,
        "sigverify_batch" => config.sigverify_batch = flag()?,
        "sigverify_overlap" => config.sigverify_overlap = flag()?,
        "sigverify_cache_capacity" => config.sigverify_cache_capacity = number()?,
        "ingest_batch_max" => config.ingest_batch_max = number()?,
        "block_txn_max" => config.block_txn_max = number()?,
        _ => return Err(bad("unknown key")),
    }
    Ok(())
}

/// Runs the benchmark.
///
/// # Errors
/// Invalid arguments, or a pipeline that did not execute every transfer.
pub fn run(args: &PipelineArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.txns == 0 || args.rounds == 0 || args.batch_size == 0 {
        return Err("--txns, --rounds and --batch-size must be positive".into());
    }
    let mut config = PipelineConfig { sigverify_batch_size: args.batch_size, ..PipelineConfig::default() };
    for setting in &args.set {
        apply_setting(&mut config, setting)?;
    }
    config.validate().map_err(|error| crate::InputError(error.to_string()))?;
    let senders = (args.txns as u64).div_ceil(10);
    let workload = transfers(TransferSpec {
        seed: args.seed,
        chain_id: config.chain_id,
        senders,
        per_sender: 10,
        balance: 1 << 40,
        fee_min: config.fee_floor,
    });
    let txns = &workload.txns[..args.txns];
    if !args.json {
        eprintln!("signed {} transfers; measuring {} rounds each", txns.len(), args.rounds);
    }
    // Warm-up: page in tables, spin up the pool.
    verify_ceiling_secs(&txns[..txns.len().min(4096)], args.batch_size);

    let mut ceiling = Vec::with_capacity(args.rounds);
    let mut through = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        ceiling.push(rate(
            txns.len(),
            std::time::Duration::from_secs_f64(verify_ceiling_secs(txns, args.batch_size)),
        ));
        through.push(rate(
            txns.len(),
            std::time::Duration::from_secs_f64(pipeline_secs(&workload.genesis, txns, &config)?),
        ));
    }
    let ceiling_per_s = median(&mut ceiling);
    let pipeline_per_s = median(&mut through);
    let ratio = pipeline_per_s / ceiling_per_s;
    let backend = tessera_systems::kernels::sigverify::curve_backend();
    let threads = rayon::current_num_threads();
    if args.json {
        let report = serde_json::json!({
            "txns": txns.len(),
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "threads": threads,
            "backend": backend,
            "pipeline_per_s": pipeline_per_s.round(),
            "ceiling_per_s": ceiling_per_s.round(),
            "ratio_to_ceiling": (ratio * 1000.0).round() / 1000.0,
        });
        println!("{report}");
    } else {
        println!("backend            {backend} ({threads} threads, batch size {})", args.batch_size);
        println!("pipeline           {pipeline_per_s:>10.0} txn/s  (ingest → execute, {} txns)", txns.len());
        println!("ceiling            {ceiling_per_s:>10.0} sig/s  (ed25519_dalek::verify_batch, same cores)");
        println!("ratio_to_ceiling   {ratio:>10.3}");
    }
    Ok(())
}
