//! `tessera genesis`: a genesis file, one key file and one node config per validator.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Args;
use ed25519_dalek::SigningKey;
use tessera_systems::workload::signing_key;

use crate::node::config::NodeConfig;
use crate::node::genesis::{Genesis, GenesisAccount, GenesisValidator};
use crate::node::key::KeyFile;

/// Arguments of `tessera genesis`.
#[derive(Debug, Args)]
pub struct GenesisArgs {
    /// Number of validators (n = 3f + 1 tolerates f faults: 4, 7, 10, …).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub validators: u32,
    /// Directory to write into (created; existing files are never overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Chain id.
    #[arg(long, default_value_t = 1)]
    pub chain_id: u32,
    /// Load accounts to fund, with keys derived from --load-seed (devnets only: anyone who
    /// knows the seed can spend them).
    #[arg(long, default_value_t = 1024)]
    pub accounts: u64,
    /// Seed of the funded load accounts' keys.
    #[arg(long, default_value_t = 1)]
    pub load_seed: u64,
    /// Balance of each funded account.
    #[arg(long, default_value_t = 1 << 50)]
    pub balance: u64,
    /// First port; validator i uses base + 4i (peer), +1 (ingress), +2 (RPC), +3 (metrics);
    /// full nodes take the next ports after the validators', four each.
    #[arg(long, default_value_t = 27000)]
    pub base_port: u16,
    /// Full (non-validating) nodes to write configs for (`full-<i>.toml`): each follows the
    /// validators, serves the chain over its own RPC and forwards transactions.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub full_nodes: u32,
}

/// The ports of validator `index` at `base`.
pub fn ports(base: u16, index: u32) -> [SocketAddr; 4] {
    let first = base as u32 + 4 * index;
    let at = |offset: u32| SocketAddr::from((Ipv4Addr::LOCALHOST, (first + offset) as u16));
    [at(0), at(1), at(2), at(3)]
}

/// Writes `text` to a new file; refuses to overwrite.
fn create(path: &Path, text: &str, secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|error| std::io::Error::new(error.kind(), format!("{}: {error}", path.display())))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Writes the files; returns the config paths.
///
/// # Errors
/// Bad arguments, or files that cannot be written (or already exist).
pub fn write(args: &GenesisArgs) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    if u32::from(args.base_port) + 4 * (args.validators + args.full_nodes) > u32::from(u16::MAX) {
        return Err("--base-port too high for this many nodes".into());
    }
    std::fs::create_dir_all(&args.out)?;
    let keys: Vec<SigningKey> = (0..args.validators)
        .map(|_| {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map(|()| SigningKey::from_bytes(&seed))
        })
        .collect::<Result<_, _>>()
        .map_err(|error| format!("operating system randomness unavailable: {error}"))?;
    let genesis = Genesis {
        chain_id: args.chain_id,
        load_seed: Some(args.load_seed),
        validators: keys
            .iter()
            .map(|k| GenesisValidator { public_key: hex::encode(k.verifying_key().to_bytes()) })
            .collect(),
        accounts: (0..args.accounts)
            .map(|i| GenesisAccount {
                address: hex::encode(signing_key(args.load_seed, i).verifying_key().to_bytes()),
                balance: args.balance,
            })
            .collect(),
    };
    create(&args.out.join("genesis.toml"), &toml::to_string_pretty(&genesis)?, false)?;
    let peers: Vec<SocketAddr> = (0..args.validators).map(|i| ports(args.base_port, i)[0]).collect();
    let mut configs = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let index = index as u32;
        let key_text = serde_json::to_string_pretty(&KeyFile::new(key))? + "\n";
        create(&args.out.join(format!("validator-{index}.key")), &key_text, true)?;
        let [_, ingress, rpc, metrics] = ports(args.base_port, index);
        let config = NodeConfig::validator_preset(index, peers.clone(), ingress, rpc, metrics);
        let path = args.out.join(format!("node-{index}.toml"));
        create(&path, &toml::to_string_pretty(&config)?, false)?;
        configs.push(path);
    }
    for full in 0..args.full_nodes {
        let [listen, ingress, rpc, metrics] = ports(args.base_port, args.validators + full);
        let name = format!("full-{full}");
        let config = NodeConfig::full_preset(&name, peers.clone(), listen, ingress, rpc, metrics);
        let path = args.out.join(format!("{name}.toml"));
        create(&path, &toml::to_string_pretty(&config)?, false)?;
        configs.push(path);
    }
    Ok(configs)
}

/// Runs `tessera genesis`.
///
/// # Errors
/// See [`write`].
pub fn run(args: &GenesisArgs) -> Result<(), Box<dyn std::error::Error>> {
    let configs = write(args)?;
    println!("wrote {}", args.out.join("genesis.toml").display());
    for (index, config) in configs.iter().enumerate() {
        match index.checked_sub(args.validators as usize) {
            None => println!("validator {index}: tessera node --config {}", config.display()),
            Some(full) => println!("full node {full}: tessera node --config {}", config.display()),
        }
    }
    Ok(())
}
