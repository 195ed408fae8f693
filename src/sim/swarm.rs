//! `tessera sim --swarm`: a random small scenario per seed, each checked for safety and for
//! liveness once its faults heal.

use super::engine::Sim;
use super::scenario::Scenario;

/// One seed's outcome.
#[derive(Debug, Clone)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// `None` if every invariant held, else what broke.
    pub failure: Option<String>,
    /// Events simulated.
    pub events: u64,
}

/// Runs the random scenario of `seed` and checks its invariants.
///
/// # Errors
/// A scenario that cannot be built (a bug in [`Scenario::random`]).
pub fn run_seed(seed: u64) -> Result<SeedResult, Box<dyn std::error::Error>> {
    run_seed_with(seed, false)
}

/// [`run_seed`], with the planted amnesia of [`Sim::plant_amnesia`] when `planted_amnesia`
/// (a self-test of the checker: it must then report a safety violation for some seeds).
///
/// # Errors
/// See [`run_seed`].
pub fn run_seed_with(seed: u64, planted_amnesia: bool) -> Result<SeedResult, Box<dyn std::error::Error>> {
    let scenario = Scenario::random(seed);
    let mut sim = Sim::new(scenario, seed)?;
    if planted_amnesia {
        sim.plant_amnesia();
    }
    sim.run(|_, _| {});
    let failure = match (sim.recorder.violation(), sim.recorder.liveness()) {
        (Some(violation), _) => Some(format!("safety: {violation}")),
        (None, Some(false)) => Some("liveness: no progress after the faults healed".to_owned()),
        (None, _) => None,
    };
    Ok(SeedResult { seed, failure, events: sim.events })
}

/// The command that reproduces one seed.
pub fn reproduce(seed: u64) -> String {
    format!("tessera sim --swarm --seeds {seed}..{seed}")
}

/// Parses `A..B` (inclusive).
///
/// # Errors
/// Anything else.
pub fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text.split_once("..").ok_or_else(|| format!("--seeds wants A..B, got {text:?}"))?;
    let a: u64 = a.trim().parse().map_err(|_| format!("--seeds: {a:?} is not a number"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("--seeds: {b:?} is not a number"))?;
    if b < a {
        return Err(format!("--seeds: {b} is below {a}"));
    }
    Ok((a, b))
}
