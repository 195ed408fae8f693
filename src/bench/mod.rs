//! `tessera bench`: benchmark suites that print figures, each against a ceiling measured in
//! the same run.

pub mod pipeline;
mod sigverify;
mod sim;
mod storage;

use clap::{Args, Subcommand};

/// Arguments of `tessera bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Debug, Subcommand)]
enum Suite {
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
}

/// Runs the chosen suite.
///
/// # Errors
/// Invalid arguments or a failed run.
pub fn run(args: &BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    match &args.suite {
        Suite::Pipeline(args) => pipeline::run(args),
        Suite::Sigverify(args) => sigverify::run(args),
        Suite::Storage(args) => storage::run(args),
        Suite::Sim(args) => sim::run(args),
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
            pipeline.submit(*txn, 0);
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
