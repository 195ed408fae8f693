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

/// One of `count` disjoint parts of a seed range: `index` in `0..count`. Shards interleave
/// (seed `s` belongs to shard `(s - first) % count`), so slow seeds spread over every shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0: a Kubernetes indexed Job's `JOB_COMPLETION_INDEX` as it is.
    pub index: u64,
    /// Shards in all.
    pub count: u64,
}

impl Shard {
    /// The whole range as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `K/N`, with `K` in `0..N`.
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (k, n) = text.split_once('/').ok_or_else(|| format!("--shard wants K/N, got {text:?}"))?;
        let index: u64 = k.trim().parse().map_err(|_| format!("--shard: {k:?} is not a number"))?;
        let count: u64 = n.trim().parse().map_err(|_| format!("--shard: {n:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("--shard {text}: K counts from 0 and must be below N (N ≥ 1)"));
        }
        Ok(Shard { index, count })
    }

    /// How many seeds of `first..=last` are in this shard (without walking them).
    pub fn len(self, first: u64, last: u64) -> u64 {
        match first.checked_add(self.index).filter(|start| *start <= last) {
            None => 0,
            Some(start) => (last - start) / self.count + 1,
        }
    }

    /// The seeds of `first..=last` in this shard, in order.
    pub fn seeds(self, first: u64, last: u64) -> impl Iterator<Item = u64> {
        // `first + index` can only overflow past `last`, when the shard is empty.
        let start = first.checked_add(self.index).filter(|start| *start <= last);
        let step = usize::try_from(self.count).unwrap_or(usize::MAX);
        start.into_iter().flat_map(move |start| (start..=last).step_by(step))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A failing seed in a summary.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// What broke.
    pub failure: String,
    /// The command that reproduces it.
    pub reproduce: String,
}

/// What one shard of a swarm found (`--summary FILE`), or, merged, what all of them did.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// The whole range, `A..B`.
    pub seeds: String,
    /// Shards in all.
    pub shard_count: u64,
    /// The shards this summary covers (one, or all once merged).
    pub shards: Vec<u64>,
    /// Seeds run.
    pub seeds_run: u64,
    /// Seeds whose invariants held.
    pub passed: u64,
    /// Seeds that failed, by seed.
    pub failed: Vec<Failure>,
    /// Whether the planted-amnesia self-test was on.
    pub planted_amnesia: bool,
    /// Events simulated.
    pub events: u64,
    /// Wall seconds (summed over shards once merged).
    pub wall_s: f64,
}

/// Combines shard summaries of one campaign: the same range, shard count and switches, every
/// shard exactly once.
///
/// # Errors
/// No summaries, summaries of different campaigns, a shard twice, or shards missing.
pub fn merge(summaries: Vec<Summary>) -> Result<Summary, String> {
    for summary in &summaries {
        let (range_ok, shards_ok) = (
            parse_range(&summary.seeds).is_ok(),
            summary.shard_count > 0 && summary.shards.iter().all(|shard| *shard < summary.shard_count),
        );
        let counts_ok = summary.passed.checked_add(summary.failed.len() as u64) == Some(summary.seeds_run);
        if !(range_ok && shards_ok && counts_ok) {
            return Err(format!(
                "not a consistent summary: seeds {:?}, shards {:?} of {}, {} passed + {} failed of {} run",
                summary.seeds,
                summary.shards,
                summary.shard_count,
                summary.passed,
                summary.failed.len(),
                summary.seeds_run
            ));
        }
    }
    let mut summaries = summaries.into_iter();
    let mut merged = summaries.next().ok_or("nothing to merge")?;
    merged.shards.sort_unstable();
    if merged.shards.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err("a summary names one shard twice".into());
    }
    for summary in summaries {
        if (&summary.seeds, summary.shard_count, summary.planted_amnesia)
            != (&merged.seeds, merged.shard_count, merged.planted_amnesia)
        {
            return Err(format!(
                "summaries of different campaigns: seeds {} in {} shards{} and seeds {} in {} shards{}",
                merged.seeds,
                merged.shard_count,
                if merged.planted_amnesia { " (planted amnesia)" } else { "" },
                summary.seeds,
                summary.shard_count,
                if summary.planted_amnesia { " (planted amnesia)" } else { "" },
            ));
        }
        if let Some(twice) = summary.shards.iter().find(|shard| merged.shards.contains(shard)) {
            return Err(format!("shard {twice}/{} appears twice", merged.shard_count));
        }
        merged.shards.extend(summary.shards);
        merged.seeds_run = merged.seeds_run.saturating_add(summary.seeds_run);
        merged.passed = merged.passed.saturating_add(summary.passed);
        merged.failed.extend(summary.failed);
        merged.events = merged.events.saturating_add(summary.events);
        merged.wall_s += summary.wall_s;
    }
    merged.shards.sort_unstable();
    merged.failed.sort_by_key(|failure| failure.seed);
    let missing: Vec<String> = (0..merged.shard_count)
        .filter(|shard| !merged.shards.contains(shard))
        .map(|s| s.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "shards missing: {} of {} (each must run once)",
            missing.join(", "),
            merged.shard_count
        ));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_range_with_no_overlap_and_no_gap() {
        for (first, last) in [(0, 0), (1, 10), (5, 5), (7, 1000), (u64::MAX - 3, u64::MAX)] {
            for count in [1, 2, 3, 7, 16, 2000] {
                let mut seen: Vec<u64> =
                    (0..count).flat_map(|index| Shard { index, count }.seeds(first, last)).collect();
                let before = seen.len();
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(seen.len(), before, "{first}..{last} in {count}: a seed in two shards");
                assert_eq!(seen, (first..=last).collect::<Vec<_>>(), "{first}..{last} in {count}");
                let lens: u64 = (0..count).map(|index| Shard { index, count }.len(first, last)).sum();
                assert_eq!(lens, last - first + 1, "{first}..{last} in {count}: lengths");
            }
        }
        assert_eq!(Shard::parse("0/4"), Ok(Shard { index: 0, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    fn summary(shard: u64, count: u64, failed: &[u64]) -> Summary {
        Summary {
            seeds: "1..10".into(),
            shard_count: count,
            shards: vec![shard],
            seeds_run: 5,
            passed: 5 - failed.len() as u64,
            failed: failed
                .iter()
                .map(|seed| Failure { seed: *seed, failure: "safety".into(), reproduce: reproduce(*seed) })
                .collect(),
            planted_amnesia: false,
            events: 100,
            wall_s: 1.0,
        }
    }

    #[test]
    fn merging_needs_every_shard_once_of_one_campaign() {
        let merged = merge(vec![summary(1, 2, &[8, 2]), summary(0, 2, &[5])]).unwrap();
        assert_eq!((merged.seeds_run, merged.passed, merged.shards.clone()), (10, 7, vec![0, 1]));
        assert_eq!(merged.failed.iter().map(|f| f.seed).collect::<Vec<_>>(), vec![2, 5, 8]);
        assert!(merge(vec![summary(0, 2, &[])]).unwrap_err().contains("missing: 1"));
        assert!(merge(vec![summary(0, 2, &[]), summary(0, 2, &[])]).unwrap_err().contains("twice"));
        assert!(merge(vec![summary(0, 2, &[]), summary(1, 3, &[])]).unwrap_err().contains("different"));
        assert!(merge(Vec::new()).is_err());
        let mut zero = summary(0, 1, &[]);
        zero.shard_count = 0;
        assert!(merge(vec![zero]).unwrap_err().contains("consistent"));
        let mut lying = summary(0, 1, &[3]);
        lying.passed = 5;
        assert!(merge(vec![lying]).unwrap_err().contains("consistent"));
    }
}
