//! Config presets and validation: every refusal names its key.

use std::net::SocketAddr;

use super::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn write(text: &str) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("node.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("tessera-config-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn peers() -> Vec<SocketAddr> {
    (0..4).map(|i| addr(20000 + 4 * i)).collect()
}

#[test]
fn both_presets_load_back() {
    let validator = NodeConfig::validator_preset(1, peers(), addr(20005), addr(20006), addr(20007));
    let (_dir, path) = write(&toml::to_string(&validator).unwrap());
    let loaded = NodeConfig::load(&path).unwrap();
    assert_eq!((loaded.role, loaded.validator_index), (Role::Validator, Some(1)));
    let full = NodeConfig::full_preset("full-0", peers(), addr(20016), addr(20017), addr(20018), addr(20019));
    let text = toml::to_string(&full).unwrap();
    assert!(text.contains("role = \"full\"") && !text.contains("validator_index"), "{text}");
    let (_dir, path) = write(&text);
    let loaded = NodeConfig::load(&path).unwrap();
    assert_eq!((loaded.role, loaded.validator_index, loaded.key_file), (Role::Full, None, None));
}

fn refusal(text: &str) -> String {
    let (_dir, path) = write(text);
    NodeConfig::load(&path).expect_err("refused").to_string()
}

#[test]
fn refusals_name_the_key() {
    let validator =
        toml::to_string(&NodeConfig::validator_preset(1, peers(), addr(20005), addr(20006), addr(20007)))
            .unwrap();
    let full = toml::to_string(&NodeConfig::full_preset(
        "f",
        peers(),
        addr(20016),
        addr(20017),
        addr(20018),
        addr(20019),
    ))
    .unwrap();
    let cases: Vec<(String, &str)> = vec![
        (validator.replace("validator_index = 1", "validator_index = 9"), "validator_index"),
        (validator.replace("validator_index = 1\n", ""), "validator_index"),
        (validator.replace("key_file = \"validator-1.key\"\n", ""), "key_file"),
        (full.replace("role = \"full\"", "role = \"full\"\nvalidator_index = 0"), "validator_index"),
        (validator.replace("role = \"validator\"", "role = \"observer\""), "role"),
        (validator.replace("cores = 1", "cores = 0"), "network.cores"),
        (validator.replace("127.0.0.1:20006", "127.0.0.1:20005"), "is used twice"),
        (format!("{validator}\nsurprise = 1\n"), "surprise"),
        // Values whose nanosecond arithmetic overflowed u64, or whose deadline overflowed Instant.
        (
            validator.replace("view_timeout_ms = 1000", "view_timeout_ms = 1000000000000000"),
            "consensus.view_timeout_ms",
        ),
        (
            validator.replace("block_interval_ms = 50", "block_interval_ms = 1000000000000000"),
            "consensus.block_interval_ms",
        ),
        (validator.replace("ban_secs = 60", "ban_secs = 1000000000000000"), "network.ban_secs"),
        (
            validator.replace("follower_sync_bytes_per_sec = 8388608", "follower_sync_bytes_per_sec = 65536"),
            "network.follower_sync_bytes_per_sec",
        ),
        (
            validator.replace("connections_per_address_max = 32", "connections_per_address_max = 0"),
            "rpc.connections_per_address_max",
        ),
        (
            validator.replace("connections_per_address_max = 4", "connections_per_address_max = 70000"),
            "metrics.connections_per_address_max",
        ),
        // Each was taken as it was: a key a full node never uses, a validator listed twice,
        // a validator listening where nobody dials it, and a store in the config's directory.
        (full.replace("role = \"full\"", "role = \"full\"\nkey_file = \"k.key\""), "key_file"),
        (validator.replace("\"127.0.0.1:20008\"", "\"127.0.0.1:20000\""), "network.peers"),
        (validator.replace("listen = \"127.0.0.1:20004\"", "listen = \"127.0.0.1:20099\""), "network.listen"),
        (validator.replace("data_dir = \"data-1\"", "data_dir = \"\""), "data_dir"),
    ];
    for (text, key) in cases {
        let error = refusal(&text);
        assert!(error.contains(key), "expected the error to name {key}: {error}");
    }
    // Listening on every interface at its port is reaching its entry.
    let everywhere = validator.replace("listen = \"127.0.0.1:20004\"", "listen = \"0.0.0.0:20004\"");
    assert_ne!(everywhere, validator);
    let (_dir, path) = write(&everywhere);
    NodeConfig::load(&path).expect("0.0.0.0 at its port");
}

/// Files named on the command line or in a config are read only when they are regular files
/// within their bound. Before, `tessera node --config /dev/zero` (or a genesis or `sigverify`
/// input naming it) grew by gigabytes a second until the kernel stopped it, and a key file
/// that was a FIFO held the node at its start forever.
#[test]
fn an_input_file_is_a_regular_file_within_its_bound() {
    let (dir, small) = write("a = 1\n");
    assert_eq!(crate::read_input_file(&small, 6).unwrap(), "a = 1\n");
    let refused = crate::read_input_file(&small, 5).unwrap_err().to_string();
    assert!(refused.contains("larger than 5 bytes"), "{refused}");
    let fifo = dir.0.join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in [fifo.as_path(), Path::new("/dev/zero"), dir.0.as_path()] {
        let refused = crate::read_input_file(path, 1 << 20).unwrap_err().to_string();
        assert!(refused.contains("not a regular file"), "{}: {refused}", path.display());
    }
    // The loaders all read through it.
    assert!(NodeConfig::load(Path::new("/dev/zero")).is_err());
    assert!(crate::node::genesis::Genesis::load(Path::new("/dev/zero")).is_err());
    assert!(crate::node::load_key(&fifo).is_err());
    assert!(crate::sim::scenario::Scenario::load(Path::new("/dev/zero")).is_err());
}

/// A key file others may read (or its group write) is refused, with the command that mends
/// it: it was used as it was, mode 0666 included.
#[test]
fn a_key_file_others_may_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let (_dir, path) = write(&serde_json::to_string(&crate::node::key::KeyFile::new(&key)).unwrap());
    for mode in [0o644, 0o666, 0o604, 0o660, 0o602] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let error = crate::node::load_key(&path).unwrap_err();
        assert!(error.contains("chmod 600"), "{mode:o}: {error}");
    }
    // The owner's alone, or readable by a group the node runs in (the systemd layout).
    for mode in [0o600, 0o400, 0o640] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(crate::node::load_key(&path).unwrap().to_bytes(), key.to_bytes(), "{mode:o}");
    }
}
