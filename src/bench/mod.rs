//! `tessera bench`: benchmark suites that print figures, each against a ceiling measured in
//! the same run.

pub mod pipeline;
mod sigverify;
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
    }
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
