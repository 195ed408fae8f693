//! `tessera devnet`: a local network of real `tessera node` processes under open-loop load,
//! with a live progress line and a final report.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use crate::cli::genesis::{GenesisArgs, ports};
use crate::load::{Accounts, Live, PhaseReport, RpcClient, Second, Via, presign, run_phase};

/// Arguments of `tessera devnet`.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Validator processes to start.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub validators: u32,
    /// Seconds of load.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Offered load, transactions per second; without it, the devnet searches for the highest
    /// rate it sustains with bounded latency and reports that.
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_rate)]
    pub rate: Option<f64>,
    /// Where the run's genesis, configs, logs and data directories go (kept for `tessera
    /// inspect`). Default: a fresh `devnet-data/run-<time>` under the current directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,
    /// Write the report with per-second series for every validator (`report.json`), and plots
    /// of them over time (`finalized_tps.svg`, `latency.svg`), into this directory. Every
    /// validator's finalized blocks are then followed over JSON-RPC, not only validator 0's.
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// First port (validator i uses base + 4i .. base + 4i + 3); default: the first free block
    /// from 27000.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Then run the same workload in the simulator, calibrated with --costs, and print both
    /// side by side (finalized TPS, blocks/s, latency p50/p90/p99, messages and bytes per
    /// block). Writes compare.json, sim-report.json and latency_cdf.svg (both latency CDFs)
    /// into --report-dir, or DATA_DIR/compare. Needs --rate.
    #[arg(long, requires = "rate")]
    pub compare_sim: bool,
    /// The cost table for --compare-sim, as `tessera bench calibrate --out FILE` writes it.
    #[arg(long, value_name = "FILE", default_value = "tools/scenarios/costs.toml")]
    pub costs: PathBuf,
    /// Validator sets of at least this many send votes to the view's leader, which broadcasts
    /// the certificates (`consensus.aggregate_votes_from`; 1 aggregates any set). Default:
    /// votes go to everyone.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub aggregate_votes_from: Option<u64>,
    /// Validator sets of at least this many forward client transactions only to the next
    /// three views' leaders (`consensus.forward_to_leaders_from`; 1 does in any set). Default:
    /// to every validator.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub forward_to_leaders_from: Option<u64>,
    /// Accounts in the genesis (up to 100,000,000). The load signs from as many load accounts
    /// as it needs (rate × duration ÷ 512, at least 1024); any beyond those are receive-only
    /// filler accounts, and then every transfer goes to one of them at random, so blocks touch
    /// accounts spread over the whole state. Default: the load accounts alone.
    #[arg(long, value_name = "N")]
    pub accounts: Option<u64>,
}

/// Frames and bytes every validator sent its peers, summed from `tessera_net_frames_sent_total`
/// and `tessera_net_sent_bytes_total` on their metrics ports; `None` if one cannot be read.
fn peer_traffic(base_port: u16, validators: u32) -> Option<(f64, f64)> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
    let (mut frames, mut bytes) = (0.0, 0.0);
    for index in 0..validators {
        let [_, _, _, metrics] = ports(base_port, index);
        let text =
            agent.get(&format!("http://{metrics}/metrics")).call().ok()?.body_mut().read_to_string().ok()?;
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else { continue };
            let name = name.split('{').next().unwrap_or(name);
            let Ok(value) = value.parse::<f64>() else { continue };
            match name {
                "tessera_net_frames_sent_total" => frames += value,
                "tessera_net_sent_bytes_total" => bytes += value,
                _ => {}
            }
        }
    }
    Some((frames, bytes))
}

struct Validator {
    child: Child,
    rpc: RpcClient,
    ingress: SocketAddr,
}

fn free_base(validators: u32) -> Result<u16, String> {
    // Below 32768: the kernel hands out ephemeral source ports above it, which would collide.
    'search: for base in (27000u16..32000).step_by(200) {
        for index in 0..validators {
            for addr in ports(base, index) {
                if std::net::TcpListener::bind(addr).is_err() {
                    continue 'search;
                }
            }
        }
        return Ok(base);
    }
    Err("no free block of ports between 27000 and 32000; pass --base-port".into())
}

fn terminate(child: &mut Child) {
    // SIGTERM first: the node finishes its tick and exits cleanly.
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a pid this process spawned and has not yet reaped; it has no
    // memory-safety preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// While the returned flag is true, sends SIGTERM to the node processes `pids` and exits with
/// status 130 when this process gets SIGINT or SIGTERM. The nodes finish their tick and exit
/// cleanly, as on any stop. Clear the flag before reaping the nodes. The second flag is set
/// once a signal came: the main thread, which sees its nodes go, must then exit with 130 too
/// rather than report their exit as a failure.
fn stop_nodes_on_signal(
    pids: Vec<u32>,
) -> std::io::Result<(std::sync::Arc<AtomicBool>, std::sync::Arc<AtomicBool>)> {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let signalled = stop.clone();
    let armed = std::sync::Arc::new(AtomicBool::new(true));
    let watching = armed.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !watching.load(Ordering::SeqCst) {
            // The nodes are being stopped already; the main thread finishes and exits.
            return;
        }
        eprintln!("\ndevnet: stopped by a signal; stopping the nodes");
        for pid in &pids {
            // While `armed` is set the main thread has not reaped this node, so the pid is
            // still that of the node this process spawned.
            #[allow(unsafe_code)]
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGTERM);
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        std::process::exit(130);
    });
    Ok((armed, signalled))
}

fn wait_ready(validators: &mut [Validator], accounts: u64) -> Result<(), String> {
    // Each validator derives and builds the genesis state before it listens: allow for it
    // (about a second per hundred thousand accounts on a shared two-core machine).
    let allowed = 30 + accounts / 100_000;
    let deadline = Instant::now() + Duration::from_secs(allowed);
    let n = validators.len() as u64;
    loop {
        let mut ready = 0;
        for (index, validator) in validators.iter_mut().enumerate() {
            if let Ok(Some(status)) = validator.child.try_wait() {
                return Err(format!("validator {index} exited during start ({status}); see its log"));
            }
            if let Ok(status) = validator.rpc.call("tessera_getStatus", json!([]))
                && status["peers"].as_u64() == Some(n - 1)
                && status["height"].as_u64().unwrap_or(0) >= 1
            {
                ready += 1;
            }
        }
        if ready == validators.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("validators did not connect and finalize a block within {allowed} s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True iff every validator that answers has the same block hash at the lowest finalized
/// height among them and at evenly spaced heights below it; also returns that height and how
/// many validators answered (a validator killed during the run cannot be compared, and is
/// reported missing rather than silently counted as agreeing).
///
/// A block's hash commits to its parent's, and each node's store checks that link on every
/// append, so equal hashes at the lowest height mean equal chains up to it; the spaced heights
/// cross-check that on the way down. Fetching every block instead made the check take longer
/// than a long run's load phase (a 10-minute soak's 6.7 M transfers had not been compared nine
/// minutes after the load stopped).
fn agreement(validators: &[Validator]) -> (bool, u64, usize) {
    let answering: Vec<(&Validator, u64)> = validators
        .iter()
        .filter_map(|v| {
            let status = v.rpc.call("tessera_getStatus", json!([])).ok()?;
            Some((v, status["height"].as_u64()?))
        })
        .collect();
    let Some(low) = answering.iter().map(|(_, height)| *height).min() else { return (false, 0, 0) };
    for height in sampled_heights(low, AGREEMENT_SAMPLES) {
        let mut hashes = answering.iter().map(|(v, _)| {
            v.rpc.call("tessera_getBlockByHeight", json!([height])).ok().map(|b| b["hash"].clone())
        });
        let first = hashes.next().flatten();
        if first.is_none() || hashes.any(|hash| hash != first) {
            return (false, low, answering.len());
        }
    }
    (true, low, answering.len())
}

/// Heights the agreement check compares, at most this many.
const AGREEMENT_SAMPLES: u64 = 64;

/// Up to `samples` heights spread evenly over `1..=low`, always including `low`, ascending;
/// every height when there are no more than `samples`.
fn sampled_heights(low: u64, samples: u64) -> Vec<u64> {
    assert!(samples > 0);
    if low <= samples {
        return (1..=low).collect();
    }
    let heights: Vec<u64> = (1..=samples).map(|k| k * low / samples).collect();
    debug_assert!(heights.windows(2).all(|pair| pair[0] < pair[1]));
    debug_assert_eq!(heights.last(), Some(&low));
    heights
}

fn progress(live: &Live, stop: &AtomicBool, start: Instant) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let phase_secs = (live.now_us().saturating_sub(live.phase_start_us.load(Ordering::Relaxed)) as f64
            / 1e6)
            .max(1e-3);
        let secs = start.elapsed().as_secs_f64();
        let height = live.height.load(Ordering::Relaxed);
        eprint!(
            "\r[{:>5.1}s] height {height} finalized {height} tps {:>8.0} p99 {:>6.0} ms mempool {:>7}   ",
            secs,
            live.committed.load(Ordering::Relaxed) as f64 / phase_secs,
            live.p99_us.load(Ordering::Relaxed) as f64 / 1000.0,
            live.mempool.load(Ordering::Relaxed),
        );
        let _ = std::io::stderr().flush();
    }
    eprintln!();
}

/// Runs the devnet.
///
/// # Errors
/// Ports, processes or files that cannot be set up; a devnet that does not start.
pub fn run(args: &DevnetArgs) -> Result<(), Box<dyn std::error::Error>> {
    crate::load::check_run(args.rate, args.duration).map_err(crate::InputError)?;
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            let stamp =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            PathBuf::from("devnet-data").join(format!("run-{stamp}"))
        }
    };
    if let Some(out) = &args.report_dir {
        // Before any node starts: a report that cannot be written should not cost a run.
        std::fs::create_dir_all(out).map_err(|error| format!("--report-dir {}: {error}", out.display()))?;
    }
    if args.compare_sim {
        // Before any node starts: a missing table should not cost a run.
        crate::sim::costs::CostFile::load(&args.costs).map_err(|error| {
            crate::InputError(format!(
                "--costs: {error} (write one with `tessera bench calibrate --out FILE`)"
            ))
        })?;
    }
    if dir.join("genesis.toml").exists() {
        return Err(format!("{} already holds a devnet; pick another --data-dir", dir.display()).into());
    }
    let base_port = match args.base_port {
        Some(port) => port,
        None => free_base(args.validators)?,
    };
    let max_rate = args.rate.unwrap_or(64_000.0);
    let signing = ((max_rate * args.duration as f64) / 512.0).ceil().max(1024.0) as u64;
    let total_accounts = args.accounts.unwrap_or(signing).max(signing);
    let accounts = Accounts { chain_id: 1, load_seed: 1, count: signing, filler: total_accounts - signing };
    // The load signs for the first `signing` load accounts; the genesis derives a few more,
    // which `tessera attack --kind nonce-variant-spam` spends (`Genesis::attack_spenders`).
    let spenders = crate::node::genesis::ATTACK_SPENDERS;
    let genesis = GenesisArgs {
        full_nodes: 0,
        validators: args.validators,
        out: dir.clone(),
        chain_id: 1,
        accounts: total_accounts + spenders,
        signing_accounts: signing + spenders,
        load_seed: 1,
        balance: None,
        base_port,
        hosts: Vec::new(),
        hosts_file: None,
        full_node_hosts: Vec::new(),
    };
    let configs = crate::cli::genesis::write(&genesis)?;
    let to_usize = |from: Option<u64>, flag: &str| -> Result<Option<usize>, String> {
        from.map(|from| usize::try_from(from).map_err(|_| format!("{flag} is too large"))).transpose()
    };
    let aggregate = to_usize(args.aggregate_votes_from, "--aggregate-votes-from")?;
    let forward = to_usize(args.forward_to_leaders_from, "--forward-to-leaders-from")?;
    if aggregate.is_some() || forward.is_some() {
        for path in &configs {
            let mut config = crate::node::config::NodeConfig::load(path)?;
            config.consensus.aggregate_votes_from = aggregate;
            config.consensus.forward_to_leaders_from = forward;
            std::fs::write(path, toml::to_string_pretty(&config)?)?;
        }
    }
    let aggregate_votes_from = args.aggregate_votes_from;
    let forward_to_leaders_from = args.forward_to_leaders_from;
    let exe = std::env::current_exe()?;
    let mut validators = Vec::new();
    for (index, config) in configs.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("node-{index}.log")))?;
        let child = Command::new(&exe)
            .arg("node")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let [peer, ingress, rpc, metrics] = ports(base_port, index as u32);
        println!(
            "validator {index} pid {} peer {peer} ingress {ingress} rpc http://{rpc} metrics http://{metrics}/metrics data {}",
            child.id(),
            dir.join(format!("data-{index}")).display()
        );
        validators.push(Validator { child, rpc: RpcClient::new(&format!("http://{rpc}")), ingress });
    }
    // A devnet stopped by a signal (a script's SIGINT or SIGTERM to this process alone, not
    // to its process group) takes its nodes with it instead of leaving them running.
    let pids: Vec<u32> = validators.iter().map(|validator| validator.child.id()).collect();
    let (armed, signalled) = stop_nodes_on_signal(pids)?;
    let result = drive(args, &dir, &mut validators, accounts).map(|mut report| {
        report["aggregate_votes_from"] = json!(aggregate_votes_from);
        report["forward_to_leaders_from"] = json!(forward_to_leaders_from);
        report["accounts"] = json!(total_accounts);
        // What the validators sent each other over the whole run (consensus messages and
        // forwarded transactions), read off their metrics before they stop.
        if let Some((frames, bytes)) = peer_traffic(base_port, args.validators) {
            let height = report["finalized_height"].as_f64().unwrap_or(0.0);
            report["peer_frames_sent"] = json!(frames);
            report["peer_bytes_sent"] = json!(bytes);
            if height > 0.0 {
                report["messages_per_block"] = json!((frames / height).round());
                report["bytes_per_block"] = json!((bytes / height).round());
            }
        }
        report
    });
    // From here this thread stops and reaps the nodes; the watcher must not touch their pids.
    armed.store(false, Ordering::SeqCst);
    for validator in &mut validators {
        terminate(&mut validator.child);
    }
    if signalled.load(Ordering::SeqCst) {
        // The run was cut short by a signal: whatever it made of its nodes going away is not
        // a result.
        eprintln!("\ndevnet: stopped by a signal");
        std::process::exit(130);
    }
    let report = result?;
    let text = render_report(&report);
    print!("{text}");
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
        println!("report written to {}", path.display());
    }
    if let Some(out) = &args.report_dir {
        let path = out.join("report.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
        println!("report written to {}", path.display());
        for plot in plot_report(out, &report)? {
            println!("plot written to {}", plot.display());
        }
    }
    if args.compare_sim {
        let out = args.report_dir.clone().unwrap_or_else(|| crate::cli::compare_sim::default_out(&dir));
        crate::cli::compare_sim::compare(&report, &args.costs, &out)?;
    }
    println!("data directories kept in {}", dir.display());
    Ok(())
}

fn drive(
    args: &DevnetArgs,
    dir: &Path,
    validators: &mut [Validator],
    load: Accounts,
) -> Result<Value, Box<dyn std::error::Error>> {
    wait_ready(validators, load.count + load.filler)?;
    let mut nonces = vec![0u64; load.count as usize];

    // The ceiling: raw batch verification on this machine, now, on transactions like the load.
    let sample = presign(
        Accounts { chain_id: 1, load_seed: 99, count: 1024, filler: 0 },
        16_384,
        &mut vec![0; 1024],
        1,
    );
    crate::bench::pipeline::verify_ceiling_secs(&sample[..1024], 128);
    let ceiling_per_s = (0..3)
        .map(|_| sample.len() as f64 / crate::bench::pipeline::verify_ceiling_secs(&sample, 128))
        .fold(0.0, f64::max);

    let ingress: Vec<SocketAddr> = validators.iter().map(|v| v.ingress).collect();
    let rpc: Vec<RpcClient> = validators.iter().map(|v| v.rpc.clone()).collect();
    let tracker = validators[0].rpc.clone();
    // With --report-dir every validator is followed, each by a thread of its own.
    let also: Vec<RpcClient> = if args.report_dir.is_some() { rpc[1..].to_vec() } else { Vec::new() };
    let live = Live::default();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (chosen, search) = std::thread::scope(|scope| -> Result<(PhaseReport, Vec<Value>), String> {
        scope.spawn(|| progress(&live, &stop, start));
        let phase = |txns: &[tessera_components::Txn], rate: f64, drain: Duration| {
            run_phase(txns, rate, Via::Ingress, &ingress, &rpc, &tracker, &also, drain, &live)
        };
        let outcome = (|| {
            let mut search = Vec::new();
            match args.rate {
                Some(rate) => {
                    let txns = presign(load, (rate * args.duration as f64) as usize, &mut nonces, 1);
                    let phase = phase(&txns, rate, Duration::from_secs(10))?;
                    Ok((phase, search))
                }
                None => {
                    // Step search: each step a few seconds; stop at the first step that does not
                    // keep up (commits under 95% of sends, or p99 over one second).
                    let step_secs = (args.duration / 6).clamp(2, 10) as f64;
                    let mut rate = 1000.0;
                    let mut best: Option<PhaseReport> = None;
                    let deadline = Instant::now() + Duration::from_secs(args.duration);
                    while Instant::now() + Duration::from_secs_f64(step_secs) <= deadline {
                        let txns = presign(load, (rate * step_secs) as usize, &mut nonces, 1);
                        let phase = phase(&txns, rate, Duration::from_secs(3))?;
                        let kept_up = phase.committed as f64 >= 0.95 * phase.submitted as f64
                            && phase.percentile(0.99) <= 1000.0;
                        search.push(json!({"rate": rate, "committed": phase.committed, "submitted": phase.submitted, "p99_ms": phase.percentile(0.99), "kept_up": kept_up}));
                        if !kept_up {
                            break;
                        }
                        best = Some(phase);
                        rate *= 2.0;
                    }
                    best.map(|phase| (phase, search))
                        .ok_or_else(|| "the devnet did not sustain even the first search step".to_string())
                }
            }
        })();
        stop.store(true, Ordering::Relaxed);
        outcome
    })?;
    let (agree, checked_height, compared) = agreement(validators);
    let validators_n = validators.len() as f64;
    let mut report = json!({
        "validators": validators.len(),
        "duration_s": chosen.duration_s,
        "rate": chosen.rate,
        "submitted": chosen.submitted,
        "committed": chosen.committed,
        "finalized_tps": chosen.finalized_tps.round(),
        "latency_ms": chosen.latency_json(),
        "blocks_pushed": chosen.blocks_pushed,
        "blocks_fetched": chosen.blocks_fetched,
        "finalized_height": checked_height,
        "agreement": agree,
        "agreement_validators": compared,
        "verify_ceiling_per_s": ceiling_per_s.round(),
        "ratio_to_ceiling": ((chosen.finalized_tps * validators_n / ceiling_per_s) * 1000.0).round() / 1000.0,
        "rate_searched": args.rate.is_none(),
        "search": search,
        "data_dir": dir.display().to_string(),
    });
    if args.report_dir.is_some() {
        report["per_validator"] = per_validator_json(&chosen.per_node);
    }
    if args.compare_sim {
        report["latency_cdf_ms"] = json!(
            crate::cli::compare_sim::cdf(&chosen.latency_ms, 1.0)
                .iter()
                .map(|(ms, q)| [*ms, *q])
                .collect::<Vec<_>>()
        );
    }
    Ok(report)
}

/// Per validator, one row per second of the chosen phase: transactions finalized in that
/// second (`finalized_tps`) and the latency percentiles of those transactions (0 when none).
fn per_validator_json(per_node: &[Vec<Second>]) -> Value {
    let rows = |seconds: &[Second]| -> Vec<Value> {
        seconds
            .iter()
            .enumerate()
            .map(|(t, second)| {
                let q = |q: f64| {
                    if second.latency_ms.is_empty() { 0 } else { second.latency_ms.value_at_quantile(q) }
                };
                json!({"t_s": t, "finalized_tps": second.finalized, "latency_p50_ms": q(0.5), "latency_p90_ms": q(0.9), "latency_p99_ms": q(0.99)})
            })
            .collect()
    };
    Value::Array(
        per_node
            .iter()
            .enumerate()
            .map(|(index, seconds)| json!({"validator": index, "series": rows(seconds)}))
            .collect(),
    )
}

/// Writes `finalized_tps.svg` (a curve per validator) and `latency.svg` (p50 and p99 per
/// validator) from the report's `per_validator` series into `out`; returns their paths.
fn plot_report(out: &Path, report: &Value) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let nodes = report["per_validator"].as_array().cloned().unwrap_or_default();
    let points = |node: &Value, key: &str| -> Vec<(f64, f64)> {
        node["series"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| Some((row["t_s"].as_f64()?, row[key].as_f64()?)))
            .collect()
    };
    let names: Vec<String> = (0..nodes.len()).map(|index| format!("validator {index}")).collect();
    let colour = |index: usize| crate::plot::COLOURS[index % crate::plot::COLOURS.len()];
    let tps: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(index, node)| (names[index].as_str(), points(node, "finalized_tps"), colour(index)))
        .collect();
    let offered = report["rate"].as_f64().unwrap_or(0.0);
    let throughput = out.join("finalized_tps.svg");
    crate::plot::lines(
        &throughput,
        &format!("devnet: finalized transactions per second (offered {offered:.0}/s)"),
        "seconds since the load started",
        "transactions / s",
        &tps,
    )?;
    let p50: Vec<String> = names.iter().map(|name| format!("{name} p50")).collect();
    let p99: Vec<String> = names.iter().map(|name| format!("{name} p99")).collect();
    let mut curves = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        curves.push((p50[index].as_str(), points(node, "latency_p50_ms"), colour(index)));
        curves.push((p99[index].as_str(), points(node, "latency_p99_ms"), colour(index)));
    }
    let latency = out.join("latency.svg");
    crate::plot::lines(
        &latency,
        "devnet: intended send → finalized latency, per second of finalization",
        "seconds since the load started",
        "ms",
        &curves,
    )?;
    Ok(vec![throughput, latency])
}

fn render_report(report: &Value) -> String {
    let latency = &report["latency_ms"];
    format!(
        "\n== devnet report ==\nvalidators            {}\noffered rate          {} txn/s{}\nsubmitted             {}\ncommitted             {}\nfinalized_tps         {}\nlatency_ms p50/p99/p999/max  {} / {} / {} / {}\nfinalized_height      {}\nagreement             {} ({} validators compared)\nverify_ceiling_per_s  {}\nratio_to_ceiling      {}\n",
        report["validators"],
        report["rate"],
        if report["rate_searched"] == true { " (highest sustained rate found by search)" } else { "" },
        report["submitted"],
        report["committed"],
        report["finalized_tps"],
        latency["p50"],
        latency["p99"],
        latency["p999"],
        latency["max"],
        report["finalized_height"],
        report["agreement"],
        report["agreement_validators"],
        report["verify_ceiling_per_s"],
        report["ratio_to_ceiling"],
    )
}

#[cfg(test)]
mod tests {
    use super::sampled_heights;

    #[test]
    fn sampled_heights_cover_short_chains_whole_and_long_ones_evenly_to_the_top() {
        assert_eq!(sampled_heights(0, 64), Vec::<u64>::new());
        assert_eq!(sampled_heights(5, 64), vec![1, 2, 3, 4, 5]);
        assert_eq!(sampled_heights(64, 64), (1..=64).collect::<Vec<_>>());
        let long = sampled_heights(12_345, 64);
        assert_eq!(long.len(), 64);
        assert_eq!(long.last(), Some(&12_345));
        assert!(long[0] >= 1);
        assert!(long.windows(2).all(|pair| pair[0] < pair[1]));
        // Evenly spread: no gap more than one step plus rounding.
        assert!(long.windows(2).all(|pair| pair[1] - pair[0] <= 12_345 / 64 + 1));
    }
}
