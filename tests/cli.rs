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
