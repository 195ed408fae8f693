//! `tessera bench`: benchmark suites that print figures, each against a ceiling measured in
//! the same run.

mod calibrate;
pub mod gate;
pub mod pipeline;
mod sigverify;
mod sim;
mod state;
mod storage;

use clap::{Args, Subcommand};

/// Arguments of `tessera bench`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    suite: Option<Suite>,
    /// The performance-budget gate: run the suites, compare with benches/budgets.toml and the
    /// baseline, print a table, exit 1 on any violation.
    #[arg(long, conflicts_with = "ab")]
    check: bool,
    /// Compare the pipeline with optimisation KEY on and off (sigverify_batch, prefilter_simd,
    /// sigverify_overlap, sigverify_cache_capacity).
    #[arg(long, value_name = "KEY")]
    ab: Option<String>,
    /// Small sizes, for CI.
    #[arg(long)]
    quick: bool,
    /// Override a pipeline setting for the gate's run (for example sigverify_batch=false).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// With --check: run only the gated suites whose metrics start with this (pipeline,
    /// sigverify, storage, state, insns, operator).
    #[arg(long, value_name = "PREFIX", requires = "check")]
    only: Option<String>,
    /// Budgets file, relative to the current directory unless absolute.
    #[arg(long, value_name = "FILE", default_value_os_t = gate::budgets_path())]
    budgets: std::path::PathBuf,
    /// Baseline to compare with, relative to the current directory unless absolute (a missing
    /// baseline is compared with nothing).
    #[arg(long, value_name = "FILE", default_value_os_t = gate::baseline_path())]
    baseline: std::path::PathBuf,
    /// Write this run's figures as a baseline.
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<std::path::PathBuf>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Suite {
    /// Measure what each unit of work costs on this machine, for the simulator's cost model
    /// (`--out costs.toml`, named in a scenario as `validators.costs`).
    Calibrate(calibrate::CalibrateArgs),
    /// Signed transfers through the whole schedule versus raw batch verification.
    Pipeline(pipeline::PipelineArgs),
    /// The verification kernel: backend, single and batch rates, bisection cost.
    Sigverify(sigverify::SigverifyArgs),
    /// Block persistence against sequential writes with the same fsync policy, and the time to
    /// open and verify a 1 GiB data directory.
    Storage(storage::StorageArgs),
    /// The simulator: events per second, wall nanoseconds per event, and virtual time per
    /// wall second on the shipped scenarios.
    Sim(sim::SimBenchArgs),
    /// The account state: per-block execute, root and commit cost at several ledger sizes, and
    /// the ratio of the largest size's cost to the smallest's.
    State(state::StateArgs),
    /// Signed transfers through the pipeline, verification inline, nothing else: what the
    /// gate counts instructions of under callgrind.
    #[command(hide = true)]
    Insns(InsnsArgs),
}

/// Arguments of `tessera bench insns`.
#[derive(Debug, Args)]
pub struct InsnsArgs {
    /// Transfers.
    #[arg(long, default_value_t = 512)]
    txns: usize,
    /// Pipeline overrides.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn insns(args: &InsnsArgs) -> Result<(), Box<dyn std::error::Error>> {
    use tessera_systems::workload::{TransferSpec, transfers};
    let mut config = tessera_systems::PipelineConfig::default();
    for setting in &args.set {
        pipeline::apply_setting(&mut config, setting)?;
    }
    // Inline verification: the count then covers it on this thread, without a background job.
    config.sigverify_overlap = false;
    let workload = transfers(TransferSpec {
        seed: 1,
        chain_id: config.chain_id,
        senders: (args.txns as u64).div_ceil(8),
        per_sender: 8,
        balance: 1 << 40,
        fee_min: config.fee_floor,
    });
    let txns = &workload.txns[..args.txns.min(workload.txns.len())];
    let mut pipeline =
        tessera_systems::Pipeline::new(config, tessera_systems::Ledger::from_genesis(&workload.genesis)?)?;
    drive_until_idle(&mut pipeline, txns);
    if pipeline.counters().executed != txns.len() as u64 {
        return Err(format!("executed {} of {}", pipeline.counters().executed, txns.len()).into());
    }
    Ok(())
}

/// Runs the chosen suite.
///
/// # Errors
/// Invalid arguments or a failed run.
pub fn run(args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    match (&args.suite, args.check, &args.ab) {
        (Some(Suite::Calibrate(args)), ..) => calibrate::run(args),
        (Some(Suite::Pipeline(args)), ..) => pipeline::run(args),
        (Some(Suite::Sigverify(args)), ..) => sigverify::run(args),
        (Some(Suite::Storage(args)), ..) => storage::run(args),
        (Some(Suite::Sim(args)), ..) => sim::run(args),
        (Some(Suite::State(args)), ..) => state::run(args),
        (Some(Suite::Insns(args)), ..) => insns(args),
        (None, true, _) => gate::check(
            args.quick,
            &args.set,
            &args.budgets,
            &args.baseline,
            args.write_baseline.as_deref(),
            args.json,
            args.only.as_deref(),
        ),
        (None, false, Some(key)) => gate::ab(key, args.quick, args.json),
        (None, false, None) => Err(crate::InputError(
            "name a suite (pipeline, sigverify, storage, sim, state), or --check, or --ab KEY; see --help"
                .into(),
        )
        .into()),
    }
}

/// Feeds `txns` to `pipeline` one ingest batch per tick until every one has gone through and
/// the pipeline is idle; returns the wall time it took.
fn drive_until_idle(
    pipeline: &mut tessera_systems::Pipeline,
    txns: &[tessera_components::Txn],
) -> std::time::Duration {
    let batch = pipeline.world().resource::<tessera_systems::PipelineConfig>().ingest_batch_max;
    let start = std::time::Instant::now();
    let mut pending = txns;
    let mut now_ns = 0;
    while !pending.is_empty() || !pipeline.is_idle() {
        let take = pending.len().min(batch);
        for txn in &pending[..take] {
            pipeline.submit(*txn);
        }
        pending = &pending[take..];
        now_ns += 1_000_000;
        pipeline.tick(now_ns);
    }
    start.elapsed()
}

/// Items per second.
fn rate(items: usize, elapsed: std::time::Duration) -> f64 {
    items as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// The median of `values` (which must be non-empty).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
