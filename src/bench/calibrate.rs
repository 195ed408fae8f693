//! `tessera bench calibrate`: measures, with the node's own code on this machine, what each
//! unit of work in the simulator's cost model takes ([`crate::sim::costs::CostTable`]), and
//! writes the table a scenario names with `validators.costs`.
//!
//! Every entry is a median over rounds. Per-block and per-transaction parts come from timing
//! the same work at two block sizes: the slope is the per-transaction cost, the rest at the
//! small size the per-block cost. Signature costs are on one core (the simulator spreads them
//! over a host's cores itself).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use tessera_components::{Block, BlockFields, Hash, Txn, TxnId, TxnSignature};
use tessera_systems::kernels::sigverify::{
    VerifyItem, curve_backend, stand_in_signature, verify_many, verify_single,
};
use tessera_systems::mempool::Mempool;
use tessera_systems::prefilter::check_body;
use tessera_systems::workload::{TransferSpec, transfers};
use tessera_systems::{ChainTip, Ledger, Pipeline, PipelineConfig, Stages};

use super::median;
use crate::sim::costs::{CostFile, CostTable, Measured};

/// Arguments of `tessera bench calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Where to write the cost table (TOML); without it, the table is printed only.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Rounds of each measurement (the median is kept).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// The small and large block sizes the per-block and per-transaction parts are fitted
    /// from.
    #[arg(long, value_delimiter = ',', default_values_t = [64usize, 2048])]
    block_txns: Vec<usize>,
    /// Directory for the persistence measurement, on the disk the nodes write to (default: the
    /// current directory, where `tessera devnet` puts its data).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Median wall nanoseconds of `work` over `rounds` rounds, each divided by `units`.
fn per_unit(rounds: usize, units: usize, mut work: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_nanos() as f64 / units.max(1) as f64
        })
        .collect();
    median(&mut samples)
}

/// (per block, per transaction) from the per-round nanoseconds at two block sizes.
fn fit((small, small_ns): (usize, f64), (large, large_ns): (usize, f64)) -> (f64, f64) {
    let per_txn = ((large_ns - small_ns) / (large - small) as f64).max(0.0);
    ((small_ns - per_txn * small as f64).max(0.0), per_txn)
}

fn one_core<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, Box<dyn std::error::Error>> {
    Ok(rayon::ThreadPoolBuilder::new().num_threads(1).build()?.install(work))
}

/// Runs the suite.
///
/// # Errors
/// Bad arguments, a measurement that fails, or an unwritable output.
pub fn run(args: &CalibrateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let [small, large] = args.block_txns[..] else {
        return Err(crate::InputError("--block-txns takes two sizes, small,large".into()).into());
    };
    if small == 0 || large <= small || large > 65_536 || args.rounds == 0 {
        return Err(
            crate::InputError("--block-txns needs 0 < small < large <= 65536; --rounds > 0".into()).into()
        );
    }
    let rounds = args.rounds;
    let config = PipelineConfig::default();
    let workload = transfers(TransferSpec {
        seed: 7,
        chain_id: config.chain_id,
        senders: large as u64,
        per_sender: 1,
        balance: 1 << 40,
        fee_min: 1,
    });
    let txns: Vec<Txn> = workload.txns.clone();
    let ids: Vec<TxnId> = txns.iter().map(Txn::id).collect();
    let ledger = Ledger::from_genesis(&workload.genesis)?;
    eprintln!("calibrate: signatures ({}) ...", curve_backend());

    // Signatures, on one core.
    let items: Vec<VerifyItem<'_>> = txns.iter().map(VerifyItem::of_txn).collect();
    let singles = &items[..items.len().min(512)];
    let verify_single_ns = one_core(|| {
        per_unit(rounds, singles.len(), || {
            assert!(singles.iter().all(verify_single), "workload signatures are valid");
        })
    })?;
    let verify_batch_ns = one_core(|| {
        let mut verdicts = vec![false; items.len()];
        per_unit(rounds, items.len(), || verify_many(&items, &mut verdicts, config.sigverify_batch_size))
    })?;

    // Admission: ingest, prefilter, (stand-in) check and dedup through the node's schedule,
    // then the mempool insert; the stand-in check itself is taken out.
    eprintln!("calibrate: admission ...");
    let stand_in: Vec<Txn> = txns
        .iter()
        .map(|txn| Txn { body: txn.body, signature: TxnSignature(stand_in_signature(&txn.body)) })
        .collect();
    let stand_in_config = PipelineConfig { sigverify_stand_in: true, ..config.clone() };
    let through_dedup = per_unit(rounds, stand_in.len(), || {
        let tip = ChainTip::genesis(&ledger);
        let mut pipeline =
            Pipeline::with_stages(stand_in_config.clone(), ledger.clone(), tip, Stages::ThroughDedup)
                .expect("a pipeline over a valid ledger");
        super::drive_until_idle(&mut pipeline, &stand_in);
        assert_eq!(pipeline.counters().admitted, stand_in.len() as u64, "every transfer admitted");
    });
    let stand_in_check = per_unit(rounds, stand_in.len(), || {
        assert!(stand_in.iter().all(|txn| txn.signature.0 == stand_in_signature(&txn.body)));
    });
    let fill = |mempool: &mut Mempool| {
        for (txn, id) in txns.iter().zip(&ids) {
            let sender = ledger.account(&txn.body.sender).copied();
            mempool.insert(*txn, *id, sender).expect("a fresh transfer is admitted");
        }
    };
    let insert = per_unit(rounds, txns.len(), || {
        let mut mempool = Mempool::new(txns.len() * 2, usize::MAX / 2);
        fill(&mut mempool);
    });
    let admit_txn_ns = (through_dedup - stand_in_check).max(0.0) + insert;

    // Packing, from a full mempool each round (filling it is not timed).
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let mut mempool = Mempool::new(txns.len() * 2, usize::MAX / 2);
            fill(&mut mempool);
            let start = Instant::now();
            let packed = mempool.pack(&ledger, large, usize::MAX / 2);
            let ns = start.elapsed().as_nanos() as f64 / large as f64;
            assert_eq!(packed.len(), large);
            ns
        })
        .collect();
    let pack_txn_ns = median(&mut samples);

    // Execution, building, validation and commit, at two block sizes.
    eprintln!("calibrate: blocks ...");
    let block_of = |n: usize| {
        let fields = BlockFields {
            height: 1,
            view: 0,
            timestamp_ms: 0,
            proposer: 0,
            parent: Hash::ZERO,
            state_root: Hash::ZERO,
        };
        Block::assemble(fields, txns[..n].to_vec(), &ids[..n])
    };
    let mut build = Vec::new();
    let mut validate = Vec::new();
    let mut commit = Vec::new();
    for n in [small, large] {
        build.push((
            n,
            per_unit(rounds, 1, || {
                let block = block_of(n);
                let (_, sealed) = tessera_systems::execute::execute_speculative(&ledger, block, &ids[..n]);
                assert_eq!(sealed.outcomes.len(), n);
            }),
        ));
        let block = block_of(n);
        validate.push((
            n,
            per_unit(rounds, 1, || {
                let relaxed = PipelineConfig { nonce_window: u64::MAX, ..config.clone() };
                let stateless = Ledger::default();
                assert!(block.txns.iter().all(|txn| check_body(&txn.body, &relaxed, &stateless).is_ok()));
                let ids: Vec<TxnId> = block.txns.iter().map(Txn::id).collect();
                assert_eq!(Block::compute_txn_root(&block.txns), block.header.txn_root);
                assert_eq!(ids.len(), n);
            }),
        ));
        let (delta, _) = tessera_systems::execute::execute_speculative(&ledger, block.clone(), &ids[..n]);
        // Each round commits to a fresh copy of the ledger; only the commit is timed.
        let mut samples: Vec<f64> = (0..rounds)
            .map(|_| {
                let mut committed = ledger.clone();
                let delta = delta.clone();
                let start = Instant::now();
                committed.commit(delta);
                start.elapsed().as_nanos() as f64
            })
            .collect();
        commit.push((n, median(&mut samples)));
    }
    let (execute_block, execute_txn_ns) = fit(build[0], build[1]);
    let (validate_checks_block, validate_txn_ns) = fit(validate[0], validate[1]);
    let (commit_block_ns, commit_txn_ns) = fit(commit[0], commit[1]);

    // Persistence through the node's store, fsync included.
    eprintln!("calibrate: persistence ...");
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let root = base.join(format!("tessera-calibrate-{}", std::process::id()));
    let persist_blocks = 16u64;
    let mut persist = Vec::new();
    for n in [small, large] {
        let mut samples = Vec::new();
        for round in 0..rounds.min(3) {
            let dir = root.join(format!("{n}-{round}"));
            let (seconds, _) = super::storage::persist(&dir, persist_blocks, n)?;
            samples.push(seconds * 1e9 / persist_blocks as f64);
        }
        persist.push((n, median(&mut samples)));
    }
    let _ = std::fs::remove_dir_all(&root);
    let (persist_block_ns, persist_txn_ns) = fit(persist[0], persist[1]);

    // The tick's fixed cost: an idle validator-shaped schedule with nothing to do.
    let tick_ns = {
        let mut pipeline = Pipeline::new(config.clone(), ledger.clone())?;
        per_unit(rounds, 2000, || {
            for _ in 0..2000 {
                pipeline.tick(0);
            }
        })
    };

    // Consensus messages: four stand-in validators with no load, through the simulator.
    eprintln!("calibrate: consensus messages ...");
    let message_ns = message_cost(rounds.min(3), tick_ns)?;

    let costs = CostTable {
        verify_single_ns,
        verify_batch_ns,
        admit_txn_ns,
        pack_txn_ns,
        execute_txn_ns,
        build_block_ns: execute_block,
        validate_block_ns: execute_block + validate_checks_block,
        validate_txn_ns,
        persist_block_ns,
        persist_txn_ns,
        commit_block_ns,
        commit_txn_ns,
        message_ns,
        tick_ns,
    };
    costs.validate()?;
    let costs = costs.rounded();
    let file = CostFile {
        measured: Some(Measured {
            command: "tessera bench calibrate".into(),
            backend: curve_backend().into(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }),
        costs,
    };
    let text = format!(
        "# Virtual CPU nanoseconds per unit of work, measured by `tessera bench calibrate` with the\n\
         # node's own code. Name this file in a scenario: [validators] costs = \"FILE\".\n{}",
        toml::to_string(&file)?
    );
    for (name, value) in file.costs.entries() {
        println!("{name:<20} {value:>12.0} ns");
    }
    if let Some(out) = &args.out {
        std::fs::write(out, text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

/// Nanoseconds per consensus message handled: a 4-validator network with stand-in signatures
/// and no load, simulated for 10 virtual seconds, its wall time less the ticks' fixed cost,
/// over the messages the validators handled. The simulator's own event handling is counted
/// in, so this errs high.
fn message_cost(rounds: usize, tick_ns: f64) -> Result<f64, Box<dyn std::error::Error>> {
    let text = r#"
        name = "calibrate-messages"
        duration_s = 10.0
        [validators]
        count = 4
        block_interval_ms = 20
        sigverify = "stand-in"
        [network]
        latency_ms = [[0.2]]
        [[network.regions]]
        name = "lan"
        share = 1.0
        upload_mbps = 1000.0
        download_mbps = 1000.0
    "#;
    let scenario = crate::sim::scenario::Scenario::parse(text)?;
    let mut samples = Vec::new();
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        let sim = crate::sim::engine::run(scenario.clone(), 1, |_, _| {})?;
        let wall = start.elapsed().as_nanos() as f64;
        let (ticks, work) = sim.work_done();
        if work.consensus_messages == 0 {
            return Err("the calibration network handled no consensus message".into());
        }
        samples.push(((wall - ticks as f64 * tick_ns) / work.consensus_messages as f64).max(0.0));
    }
    Ok(median(&mut samples))
}
