//! The command line as users and scripts drive it: real processes, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera")).args(args).output().expect("run tessera")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes the Wycheproof vectors as JSON Lines; returns the path and each line's expected verdict
/// under the rule (Wycheproof's, except the one named departure, tcId 151).
fn wycheproof_jsonl(dir: &Path) -> (PathBuf, Vec<bool>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("testdata/vectors/wycheproof_ed25519_test.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut lines = String::new();
    let mut expected = Vec::new();
    for group in json["testGroups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            let line = serde_json::json!({
                "tcId": test["tcId"], "pk": group["publicKey"]["pk"], "msg": test["msg"], "sig": test["sig"],
            });
            lines.push_str(&line.to_string());
            lines.push('\n');
            expected.push(test["result"] == "valid" || test["tcId"] == 151);
        }
    }
    let path = dir.join("wycheproof.jsonl");
    std::fs::write(&path, lines).unwrap();
    (path, expected)
}

#[test]
fn sigverify_known_answers_in_both_modes() {
    let dir = scratch("sigverify");
    let (input, expected) = wycheproof_jsonl(&dir);
    let input = input.to_str().unwrap();
    let single = tessera(&["sigverify", "--input", input]);
    assert!(single.status.success(), "{}", String::from_utf8_lossy(&single.stderr));
    let verdicts: Vec<bool> =
        String::from_utf8(single.stdout.clone()).unwrap().lines().map(|line| line == "accept").collect();
    assert_eq!(verdicts, expected);
    for batch_size in ["1", "7", "128"] {
        let batch = tessera(&["sigverify", "--input", input, "--mode", "batch", "--batch-size", batch_size]);
        assert!(batch.status.success());
        assert_eq!(batch.stdout, single.stdout, "batch size {batch_size} prints different verdicts");
    }
    let text = String::from_utf8(single.stdout).unwrap();
    assert!(text.lines().all(|line| line == "accept" || line.starts_with("reject ")));
    assert!(text.contains("reject bad_signature_length"));
    assert!(text.contains("reject s_not_canonical"));
}

#[test]
fn sigverify_malformed_lines_exit_2_naming_the_line() {
    let dir = scratch("sigverify-bad");
    let good = r#"{"pk":"00","msg":"","sig":"00"}"#;
    for (bad, what) in [
        ("not json", "line 2"),
        (r#"{"pk":"00","msg":""}"#, "line 2"),
        (r#"{"pk":"0g","msg":"","sig":"00"}"#, "line 2: field pk"),
    ] {
        let path = dir.join("input.jsonl");
        std::fs::write(&path, format!("{good}\n{bad}\n")).unwrap();
        let out = tessera(&["sigverify", "--input", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(what), "{bad}");
        assert!(out.stdout.is_empty(), "nothing printed before the input is known good");
    }
    // Wrong lengths are verdicts, not errors.
    let path = dir.join("lengths.jsonl");
    std::fs::write(&path, format!("{good}\n")).unwrap();
    let out = tessera(&["sigverify", "--input", path.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "reject bad_key_length\n");
}

#[test]
fn keygen_writes_a_private_key_file_once() {
    let dir = scratch("keygen");
    let path = dir.join("node.key");
    let out = tessera(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(key["public_key"].as_str().unwrap().len(), 64);
    assert_eq!(key["secret_key"].as_str().unwrap().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let again = tessera(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(!again.status.success(), "an existing key file must never be overwritten");
    let after: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(after, key);
}

#[test]
fn bench_overrides_are_checked_before_any_work() {
    for (setting, why) in
        [("bogus=1", "unknown key"), ("sigverify_batch=maybe", "true or false"), ("nokey", "KEY=VALUE")]
    {
        let out = tessera(&["bench", "pipeline", "--set", setting]);
        assert_eq!(out.status.code(), Some(2), "{setting}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{setting}");
    }
}

#[test]
fn help_lists_every_real_subcommand() {
    let out = tessera(&["--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    for command in ["keygen", "sigverify", "bench"] {
        assert!(text.contains(command), "--help lacks {command}");
    }
    assert!(!text.to_lowercase().contains("not implemented"));
}

/// The budgets file of `bench --check` defaults to a path relative to the working directory,
/// not to the tree the binary was built in; a missing one is refused before any work, naming
/// the flag that picks another.
#[test]
fn bench_budgets_default_is_relative_to_the_working_directory() {
    let out = tessera(&["bench", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("[default: benches/budgets.toml]"), "{help}");
    assert!(!help.contains(env!("CARGO_MANIFEST_DIR")), "a build-tree path in --help: {help}");
    let dir = scratch("budgets");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["bench", "--check", "--quick"])
        .current_dir(&dir)
        .output()
        .expect("run tessera");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--budgets") && err.contains("benches/budgets.toml"), "{err}");
}

/// `bench sim`'s default scenarios are relative to the working directory too; run elsewhere it
/// is refused with exit 2, naming the flag that picks the files.
#[test]
fn bench_sim_default_scenarios_are_relative_to_the_working_directory() {
    let dir = scratch("bench-sim");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["bench", "sim", "--virtual-s", "1"])
        .current_dir(&dir)
        .output()
        .expect("run tessera");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--scenario") && err.contains("tools/scenarios/lan-4.toml"), "{err}");
    assert!(!err.contains(env!("CARGO_MANIFEST_DIR")), "a build-tree path: {err}");
}

/// n validators must be 3f + 1 (1, 4, 7, …): any other count is refused, naming the rule,
/// before anything is written.
#[test]
fn genesis_refuses_a_validator_count_that_is_not_3f_plus_1() {
    let dir = scratch("genesis-count");
    for n in ["2", "3", "5", "6", "8"] {
        let out_dir = dir.join(n);
        let out =
            tessera(&["genesis", "--validators", n, "--accounts", "4", "--out", out_dir.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{n}: {err}");
        assert!(err.contains("3f + 1") && err.contains("1, 4, 7"), "{n}: {err}");
        assert!(!out_dir.exists(), "{n}: a refused genesis wrote {}", out_dir.display());
    }
    for n in ["1", "4", "7"] {
        let out_dir = dir.join(n);
        let out =
            tessera(&["genesis", "--validators", n, "--accounts", "4", "--out", out_dir.to_str().unwrap()]);
        assert!(out.status.success(), "{n}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Balances that would sum past 2^64 - 1 are refused before anything is written (a node would
/// refuse that genesis: fees could fill the u64 burned counter); by default the balance is
/// lowered to fit, so ten million accounts work.
#[test]
fn genesis_refuses_balances_past_a_u64_supply() {
    let dir = scratch("genesis-supply");
    let out_dir = dir.join("over");
    let out = tessera(&[
        "genesis",
        "--validators",
        "1",
        "--accounts",
        "4",
        "--balance",
        "18446744073709551615",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("more than 2^64 - 1"), "{err}");
    assert!(!out_dir.exists(), "a refused genesis wrote {}", out_dir.display());
}

/// A negative, zero or non-finite `--rate` is a range error naming the flag, not an unknown
/// argument; nothing is created.
#[test]
fn devnet_and_loadgen_rates_get_a_range_error() {
    let dir = scratch("devnet-rate");
    let data = dir.join("net");
    for rate in ["-5", "-0.5", "0", "nan", "inf"] {
        for command in ["devnet", "loadgen"] {
            let mut args = vec![command, "--rate", rate, "--duration", "1"];
            match command {
                "devnet" => args.extend(["--data-dir", data.to_str().unwrap()]),
                _ => args.extend(["--target", "127.0.0.1:1", "--genesis", "genesis.toml"]),
            }
            let out = tessera(&args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} --rate {rate}: {err}");
            assert!(!err.contains("unexpected argument"), "{command} --rate {rate}: {err}");
            assert!(err.contains("--rate") && err.contains("positive"), "{command} --rate {rate}: {err}");
            assert!(!data.exists(), "{command} --rate {rate} created {}", data.display());
        }
    }
}

/// A node whose port is taken refuses to start before it creates its data directory.
#[test]
fn a_node_on_a_busy_port_creates_no_data_directory() {
    let dir = scratch("busy-port");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    // Validator 0's RPC port is base + 2.
    let base = (port - 2).to_string();
    let out = tessera(
        &["genesis", "--validators", "1", "--accounts", "4", "--base-port", &base, "--out"]
            .into_iter()
            .chain([dir.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = tessera(&["node", "--config", dir.join("node-0.toml").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on a busy port: {err}");
    // Ours, or (when another process happens to hold one) another of the node's four ports.
    let named =
        (port - 2..port + 2).any(|taken| err.contains(&format!("cannot listen on 127.0.0.1:{taken}:")));
    assert!(named, "{err}");
    assert!(!dir.join("data-0").exists(), "a node that did not start created its data directory");
    drop(busy);
}

/// Every command exits 2 for an input file that does not exist (1 is for a run that failed).
#[test]
fn a_missing_input_file_exits_2_from_every_command() {
    let missing = scratch("missing").join("no-such-file");
    let missing = missing.to_str().unwrap();
    let loadgen =
        ["loadgen", "--target", "127.0.0.1:1", "--rate", "1", "--duration", "1", "--genesis", missing];
    let commands: [&[&str]; 6] = [
        &["node", "--config", missing],
        &["sigverify", "--input", missing],
        &["sim", "--scenario", missing],
        &loadgen,
        &["inspect", missing],
        &["bench", "--check", "--budgets", missing],
    ];
    for args in commands {
        let out = tessera(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("no-such-file"), "{args:?}: {err}");
    }
}

/// A sharded swarm with the planted bug: each shard runs its part and records its failures,
/// and the merge lists every failing seed with the command that reproduces it; a missing
/// shard or one given twice is refused.
#[test]
fn swarm_shards_merge_into_one_report_of_every_failing_seed() {
    let dir = scratch("shards");
    let summary = |k: u64| dir.join(format!("shard-{k}.json"));
    let mut failed = Vec::new();
    for k in 0..2 {
        let shard = format!("{k}/2");
        let path = summary(k).display().to_string();
        let out = tessera(&[
            "sim",
            "--swarm",
            "--seeds",
            "29..32",
            "--planted-amnesia",
            "--shard",
            &shard,
            "--summary",
            &path,
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            (json["seeds_run"].clone(), json["shards"].clone()),
            (serde_json::json!(2), serde_json::json!([k]))
        );
        let seeds: Vec<u64> =
            json["failed"].as_array().unwrap().iter().map(|f| f["seed"].as_u64().unwrap()).collect();
        assert!(
            seeds.iter().all(|seed| (seed - 29) % 2 == k),
            "shard {shard} ran a seed of another: {seeds:?}"
        );
        assert!(out.status.success(), "a shard with a summary exits 0; --merge judges: {text}");
        failed.extend(seeds);
    }
    assert!(!failed.is_empty(), "the planted bug went unseen in seeds 29..32");
    failed.sort_unstable();
    let merged = dir.join("merged.json");
    let (a, b, m) =
        (summary(0).display().to_string(), summary(1).display().to_string(), merged.display().to_string());
    let out = tessera(&["sim", "--merge", &a, &b, "--summary", &m]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("of 4 seeds passed (29..32, 2 shards, planted amnesia)"), "{text}");
    for seed in &failed {
        assert!(
            text.contains(&format!(
                "reproduce: tessera sim --swarm --seeds {seed}..{seed} --planted-amnesia"
            )),
            "{text}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    let seeds: Vec<u64> =
        json["failed"].as_array().unwrap().iter().map(|f| f["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, failed);
    for args in [vec![a.as_str()], vec![a.as_str(), a.as_str()]] {
        let out = tessera(&[&["sim", "--merge"][..], &args].concat());
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `attack --source` that names no local address is a clear error before any traffic; a
/// malformed one is refused by the parser.
#[test]
fn attack_source_must_be_a_local_address() {
    let out = tessera(&["attack", "--rpc", "http://127.0.0.1:9", "--source", "192.0.2.1", "--duration", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--source 192.0.2.1: not a local address"), "{err}");
    let out = tessera(&["attack", "--rpc", "http://127.0.0.1:9", "--source", "nowhere"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--source"), "{err}");
    // A local address of the other family than a target's: refused before any traffic.
    let out = tessera(&["attack", "--rpc", "http://[::1]:9", "--source", "127.0.0.1", "--duration", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--source 127.0.0.1 cannot reach [::1]:9: one is IPv4, the other IPv6"), "{err}");
}
