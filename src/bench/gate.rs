//! `tessera bench --check`: the performance-budget gate, and `tessera bench --ab KEY`.
//!
//! The gate runs the suites as child processes of this binary (`--json`), an instruction
//! count under callgrind, and two operator measurements, then compares each figure with its
//! budget in `benches/budgets.toml` and with the committed baseline. Budgets are ratios to a
//! ceiling measured in the same run, or instruction counts, so the gate can fail honestly on a
//! noisy machine. It prints a table and exits non-zero on any violation.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::InputError;

/// One budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Metric name, as the gate prints it.
    pub metric: String,
    /// Lowest acceptable value (higher is better).
    #[serde(default)]
    pub min: Option<f64>,
    /// Highest acceptable value (lower is better).
    #[serde(default)]
    pub max: Option<f64>,
    /// Why this budget.
    #[serde(default)]
    pub why: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetFile {
    budget: Vec<Budget>,
}

/// The default budgets file: relative to the current directory (the repository's root, where
/// the gate is run), so an installed binary does not point into the tree it was built in.
pub fn budgets_path() -> PathBuf {
    PathBuf::from("benches/budgets.toml")
}

/// The default baseline, relative like [`budgets_path`].
pub fn baseline_path() -> PathBuf {
    PathBuf::from("benches/baselines/reference.json")
}

/// Reads a budgets file.
///
/// # Errors
/// Unreadable, or not the schema ([`InputError`]). The message for a file that cannot be read
/// names `--budgets`, since the default is relative to the current directory.
pub fn load_budgets(path: &Path) -> Result<Vec<Budget>, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        InputError(format!(
            "cannot read budgets file {}: {e} (run from the repository's root, or give --budgets FILE)",
            path.display()
        ))
    })?;
    let file: BudgetFile =
        toml::from_str(&text).map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    for budget in &file.budget {
        if budget.min.is_none() == budget.max.is_none() {
            return Err(InputError(format!(
                "{}: {}: give exactly one of min and max",
                path.display(),
                budget.metric
            )));
        }
    }
    Ok(file.budget)
}

fn exe() -> Result<PathBuf, Box<dyn std::error::Error>> {
    Ok(std::env::current_exe()?)
}

/// Runs `tessera bench <suite> --json <args>` and parses its JSON.
fn suite(args: &[&str]) -> Result<Value, Box<dyn std::error::Error>> {
    let out = Command::new(exe()?).arg("bench").args(args).arg("--json").stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("tessera bench {} failed", args.join(" ")).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(text.trim())?)
}

/// Instructions per transaction through the pipeline (sign + admit + verify + execute), from
/// callgrind: the difference of two runs of different sizes, so start-up costs cancel.
fn instructions_per_txn(sets: &[String]) -> Result<f64, Box<dyn std::error::Error>> {
    let run = |txns: usize| -> Result<u64, Box<dyn std::error::Error>> {
        let mut command = Command::new("valgrind");
        command
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(exe()?)
            .args(["bench", "insns", "--txns", &txns.to_string()])
            // One verification thread: no idle spinning in the count.
            .env("RAYON_NUM_THREADS", "1");
        for set in sets {
            command.args(["--set", set]);
        }
        let out =
            command.output().map_err(|e| format!("cannot run valgrind (apt-get install valgrind): {e}"))?;
        if !out.status.success() {
            return Err(format!("callgrind run failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let collected = stderr
            .lines()
            .find_map(|line| line.split("Collected :").nth(1))
            .and_then(|n| n.trim().replace(',', "").parse::<u64>().ok())
            .ok_or("callgrind printed no instruction count")?;
        Ok(collected)
    };
    let (small, large) = (256, 768);
    let a = run(small)?;
    let b = run(large)?;
    Ok(b.saturating_sub(a) as f64 / (large - small) as f64)
}

fn binary_size_mib() -> Result<f64, Box<dyn std::error::Error>> {
    Ok(std::fs::metadata(exe()?)?.len() as f64 / (1024.0 * 1024.0))
}

/// Milliseconds from spawning `tessera node` on a fresh genesis to its first JSON-RPC answer.
fn cold_start_ms() -> Result<f64, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("tessera-gate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // One validator: it serves RPC without waiting for peers. Ports below the ephemeral range.
    let base = 31200 + (std::process::id() % 100) as u16 * 4;
    let status = Command::new(exe()?)
        .args(["genesis", "--validators", "1", "--accounts", "16", "--base-port", &base.to_string(), "--out"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err("tessera genesis failed".into());
    }
    let started = Instant::now();
    let mut child = Command::new(exe()?)
        .args(["node", "--config"])
        .arg(dir.join("node-0.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let rpc = format!("http://127.0.0.1:{}/", base + 2);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getStatus","params":[]}"#;
    let agent = ureq::Agent::new_with_defaults();
    let result = loop {
        if started.elapsed() > Duration::from_secs(30) {
            break Err("the node did not answer JSON-RPC within 30 s".into());
        }
        if let Ok(mut response) = agent.post(&rpc).header("Content-Type", "application/json").send(body)
            && response.body_mut().read_to_string().is_ok_and(|text| text.contains("\"result\""))
        {
            break Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Measures every gated metric (or, with `only`, those whose name starts with it). `quick`
/// uses small sizes (for CI); `state_*` settings go to the state suite, the others to the
/// pipeline suite and the instruction count.
///
/// # Errors
/// A suite that fails, or an unknown state setting.
pub fn measure(
    quick: bool,
    sets: &[String],
    only: Option<&str>,
) -> Result<Vec<(String, f64)>, Box<dyn std::error::Error>> {
    let (state_sets, sets): (Vec<String>, Vec<String>) =
        sets.iter().cloned().partition(|set| set.starts_with("state_"));
    // Settings are checked before any suite runs for minutes.
    if let Some(bad) = state_sets
        .iter()
        .find(|set| !matches!(set.as_str(), "state_rehash_all=true" | "state_rehash_all=false"))
    {
        return Err(InputError(format!("unknown state setting {bad} (state_rehash_all=true|false)")).into());
    }
    if !state_sets.is_empty()
        && only.is_some_and(|prefix| !"state".starts_with(prefix) && !prefix.starts_with("state"))
    {
        return Err(
            InputError("state_* settings need the state suite, which --only leaves out".into()).into()
        );
    }
    let want = |suite: &str| only.is_none_or(|prefix| suite.starts_with(prefix) || prefix.starts_with(suite));
    let mut figures = Vec::new();
    if want("pipeline") {
        let mut pipeline_args: Vec<String> = if quick {
            vec!["pipeline".into(), "--txns".into(), "8000".into(), "--rounds".into(), "3".into()]
        } else {
            vec!["pipeline".into(), "--txns".into(), "40000".into(), "--rounds".into(), "5".into()]
        };
        for set in &sets {
            pipeline_args.push("--set".into());
            pipeline_args.push(set.clone());
        }
        let refs: Vec<&str> = pipeline_args.iter().map(String::as_str).collect();
        eprintln!("gate: pipeline…");
        let p = suite(&refs)?;
        figures.push(("pipeline.ratio_to_ceiling".into(), p["ratio_to_ceiling"].as_f64().unwrap_or(0.0)));
    }
    if want("sigverify") {
        eprintln!("gate: sigverify…");
        let s = if quick {
            suite(&["sigverify", "--sigs", "4096", "--rounds", "3"])?
        } else {
            suite(&["sigverify"])?
        };
        figures.push((
            "sigverify.kernel_ratio_to_ceiling".into(),
            s["kernel_ratio_to_ceiling"].as_f64().unwrap_or(0.0),
        ));
        figures.push((
            "sigverify.distinct_keys_ratio_to_ceiling".into(),
            s["distinct_keys_ratio_to_ceiling"].as_f64().unwrap_or(0.0),
        ));
        figures
            .push(("sigverify.path_ratio_to_ceiling".into(), s["ratio_to_ceiling"].as_f64().unwrap_or(0.0)));
        figures.push((
            "sigverify.prefilter_simd_speedup".into(),
            s["prefilter_simd_speedup"].as_f64().unwrap_or(0.0),
        ));
    }
    if want("storage") {
        eprintln!("gate: storage…");
        let d = if quick {
            suite(&["storage", "--blocks", "32", "--rounds", "3", "--size-mib", "64"])?
        } else {
            suite(&["storage"])?
        };
        figures.push(("storage.ratio_to_ceiling".into(), d["ratio_to_ceiling"].as_f64().unwrap_or(0.0)));
    }
    if want("state") {
        eprintln!("gate: state…");
        // More accounts, the same blocks: near flat when a block's cost follows the accounts
        // it touches, in proportion when it follows the ledger. The quick sizes are a hundred
        // times apart: at ten times, the blocks' fixed costs (execution, the synced append)
        // held the planted whole-ledger root to 5-6x, too close to the budget to fail surely.
        let (sizes, metric) = if quick {
            ("10000,1000000", "state.cost_ratio_1m")
        } else {
            ("1000000,10000000", "state.cost_ratio_10m")
        };
        let mut state_args = vec!["state", "--accounts", sizes, "--blocks", if quick { "5" } else { "9" }];
        if state_sets.last().is_some_and(|set| set == "state_rehash_all=true") {
            state_args.push("--rehash-all");
        }
        let t = suite(&state_args)?;
        let ratio = t["cost_ratio"].as_f64().unwrap_or(f64::INFINITY);
        figures.push((metric.into(), (ratio * 100.0).round() / 100.0));
        // A tree node hashed one at a time over eight at a time in lanes, on one core.
        let hashes = &t["hash_ns"];
        let lanes = hashes["node_one_at_a_time"].as_f64().unwrap_or(0.0)
            / hashes["node_in_lanes"].as_f64().unwrap_or(f64::INFINITY);
        figures.push(("state.hash_lanes_speedup".into(), (lanes * 100.0).round() / 100.0));
    }
    if want("insns") {
        eprintln!("gate: instruction count (callgrind)…");
        figures.push(("insns.pipeline_per_txn".into(), instructions_per_txn(&sets)?.round()));
    }
    if want("operator") {
        eprintln!("gate: operator figures…");
        figures.push(("operator.binary_size_mib".into(), (binary_size_mib()? * 10.0).round() / 10.0));
        figures.push(("operator.cold_start_to_rpc_ms".into(), cold_start_ms()?.round()));
    }
    if figures.is_empty() {
        return Err(InputError(format!("--only {} names no gated suite", only.unwrap_or(""))).into());
    }
    Ok(figures)
}

/// The machine, for baselines.
pub fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    json!({
        "cpu": cpu,
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "curve_backend": tessera_systems::kernels::sigverify::curve_backend(),
        "os": std::env::consts::OS,
    })
}

/// Runs the gate: prints the table; `Err` (exit 1) on any violation.
///
/// # Errors
/// A failed suite, a bad budgets file, or a budget violated.
pub fn check(
    quick: bool,
    sets: &[String],
    budgets: &Path,
    baseline: &Path,
    write_baseline: Option<&Path>,
    as_json: bool,
    only: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    if only.is_some() && write_baseline.is_some() {
        return Err(InputError("--write-baseline needs every figure; drop --only".into()).into());
    }
    let budgets = load_budgets(budgets)?;
    let figures = measure(quick, sets, only)?;
    let base: Value = std::fs::read_to_string(baseline)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for (metric, measured) in &figures {
        let budget = budgets.iter().find(|b| &b.metric == metric);
        let (bound, pass, margin) = match budget {
            Some(Budget { min: Some(min), .. }) => (format!(">= {min}"), *measured >= *min, measured - min),
            Some(Budget { max: Some(max), .. }) => (format!("<= {max}"), *measured <= *max, max - measured),
            _ => ("—".into(), true, 0.0),
        };
        if !pass {
            failed.push(metric.clone());
        }
        let baseline_value = base["figures"][metric].as_f64();
        rows.push(json!({
            "metric": metric, "budget": bound, "measured": measured, "margin": margin,
            "baseline": baseline_value, "pass": pass,
        }));
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({"quick": quick, "set": sets, "rows": rows}))?);
    } else {
        println!(
            "{:<42} {:>12} {:>12} {:>12} {:>12}  result",
            "metric", "budget", "measured", "margin", "baseline"
        );
        for row in &rows {
            let num = |v: &Value| {
                v.as_f64().map_or("—".to_owned(), |x| {
                    format!("{x:.3}").trim_end_matches('0').trim_end_matches('.').to_owned()
                })
            };
            println!(
                "{:<42} {:>12} {:>12} {:>12} {:>12}  {}",
                row["metric"].as_str().unwrap_or(""),
                row["budget"].as_str().unwrap_or(""),
                num(&row["measured"]),
                num(&row["margin"]),
                num(&row["baseline"]),
                if row["pass"] == true { "pass" } else { "FAIL" }
            );
        }
    }
    if let Some(path) = write_baseline {
        let figures: serde_json::Map<String, Value> =
            figures.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let out = json!({"machine": machine(), "quick": quick, "figures": figures});
        std::fs::write(path, serde_json::to_string_pretty(&out)? + "\n")?;
        eprintln!("wrote baseline {}", path.display());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("performance budget violated: {}", failed.join(", ")).into())
    }
}

/// `--ab KEY`: the pipeline suite with the optimisation on and off, back to back.
///
/// # Errors
/// An unknown key or a failed suite.
pub fn ab(key: &str, quick: bool, as_json: bool) -> Result<(), Box<dyn std::error::Error>> {
    let (on, off) = match key {
        "sigverify_batch" | "prefilter_simd" | "sigverify_overlap" => ("true", "false"),
        "sigverify_cache_capacity" => ("65536", "0"),
        _ => {
            return Err(InputError(format!(
                "--ab {key}: not a switchable optimisation (sigverify_batch, prefilter_simd, sigverify_overlap, sigverify_cache_capacity)"
            ))
            .into());
        }
    };
    let (txns, rounds) = if quick { ("8000", "3") } else { ("40000", "5") };
    let mut results = Vec::new();
    for value in [on, off] {
        let set = format!("{key}={value}");
        eprintln!("ab: {set}…");
        let r = suite(&["pipeline", "--txns", txns, "--rounds", rounds, "--set", &set])?;
        let insns = instructions_per_txn(std::slice::from_ref(&set)).ok();
        results.push((set, r, insns));
    }
    let ratio = |i: usize| results[i].1["ratio_to_ceiling"].as_f64().unwrap_or(0.0);
    let rate = |i: usize| results[i].1["pipeline_per_s"].as_f64().unwrap_or(0.0);
    let difference = (rate(0) / rate(1).max(1.0) - 1.0) * 100.0;
    if as_json {
        let rows: Vec<Value> = results
            .iter()
            .map(|(set, r, insns)| json!({"set": set, "pipeline_per_s": r["pipeline_per_s"], "ratio_to_ceiling": r["ratio_to_ceiling"], "insns_per_txn": insns}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"key": key, "runs": rows, "on_vs_off_percent": difference})
            )?
        );
    } else {
        println!("{:<32} {:>14} {:>18} {:>16}", "setting", "pipeline/s", "ratio_to_ceiling", "insns/txn");
        for (i, (set, _, insns)) in results.iter().enumerate() {
            println!(
                "{:<32} {:>14.0} {:>18.3} {:>16}",
                set,
                rate(i),
                ratio(i),
                insns.map_or("—".into(), |n| format!("{n:.0}"))
            );
        }
        println!("{key}: on is {difference:+.1}% throughput versus off");
    }
    Ok(())
}
