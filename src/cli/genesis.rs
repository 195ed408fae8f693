//! `tessera genesis`: a genesis file, one key file and one node config per validator.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Args;
use ed25519_dalek::SigningKey;

use crate::node::config::NodeConfig;
use crate::node::genesis::{FILLER_ACCOUNTS_MAX, Genesis, GenesisValidator, LOAD_ACCOUNTS_MAX};
use crate::node::key::KeyFile;

/// Arguments of `tessera genesis`.
#[derive(Debug, Args)]
pub struct GenesisArgs {
    /// Number of validators: n = 3f + 1 tolerates f faults (1, 4, 7, 10, …); other counts are
    /// refused (docs/consensus.md).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub validators: u32,
    /// Directory to write into (created; existing files are never overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Chain id.
    #[arg(long, default_value_t = 1)]
    pub chain_id: u32,
    /// Accounts to fund (up to 100,000,000), all derived from --load-seed so the genesis file
    /// stays a few lines: the first --signing-accounts of them are load accounts whose keys
    /// derive from the seed (`tessera loadgen` signs for them; devnets only: anyone who knows
    /// the seed can spend them), the rest receive-only filler accounts whose addresses are a
    /// hash of the seed (nobody holds their keys), which make the state large.
    #[arg(long, default_value_t = 1024)]
    pub accounts: u64,
    /// How many of --accounts are load accounts with keys; each node derives their public
    /// keys at start (a scalar multiplication each), so at most 1048576.
    #[arg(long, default_value_t = 65_536)]
    pub signing_accounts: u64,
    /// Seed of the funded load accounts' keys.
    #[arg(long, default_value_t = 1)]
    pub load_seed: u64,
    /// Balance of each funded account [default: 2^50, or less when that many accounts of it
    /// would sum past 2^64 - 1, which genesis refuses].
    #[arg(long)]
    pub balance: Option<u64>,
    /// First port; validator i uses base + 4i (peer), +1 (ingress), +2 (RPC), +3 (metrics);
    /// full nodes take the next ports after the validators', four each.
    #[arg(long, default_value_t = 27000)]
    pub base_port: u16,
    /// Full (non-validating) nodes to write configs for (`full-<i>.toml`): each follows the
    /// validators, serves the chain over its own RPC and forwards transactions.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub full_nodes: u32,
    /// The validators' machines, one address or name each, in validator order
    /// (`--hosts 10.0.0.1,10.0.0.2,…`; names are resolved now and written as addresses).
    /// Validator i listens on its host's address; validators that share a host take ports
    /// base + 4k for the k-th of them there. Without it every node is on 127.0.0.1.
    #[arg(long, value_delimiter = ',', value_name = "HOST,...")]
    pub hosts: Vec<String>,
    /// The same, read from a file: one host per line (blank lines and `#` comments skipped).
    #[arg(long, value_name = "FILE", conflicts_with = "hosts")]
    pub hosts_file: Option<PathBuf>,
    /// With --hosts: the full nodes' machines, one per full node, in order.
    #[arg(long, value_delimiter = ',', value_name = "HOST,...")]
    pub full_node_hosts: Vec<String>,
}

/// Where each node listens: its host's address and its four ports.
struct Layout {
    validators: Vec<[SocketAddr; 4]>,
    full_nodes: Vec<[SocketAddr; 4]>,
}

/// Resolves `host` (an address or a name) to one IP address.
fn resolve(host: &str) -> Result<IpAddr, String> {
    use std::net::ToSocketAddrs;
    let host = host.trim();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    (host, 0u16)
        .to_socket_addrs()
        .map_err(|error| format!("--hosts: cannot resolve {host:?}: {error}"))?
        .map(|address| address.ip())
        .next()
        .ok_or_else(|| format!("--hosts: {host:?} resolves to no address"))
}

/// Every node's addresses: on loopback at base + 4i without hosts; else on each node's host,
/// at base + 4k for the k-th node placed on that host.
fn layout(args: &GenesisArgs, hosts: &[String]) -> Result<Layout, String> {
    if hosts.is_empty() {
        if !args.full_node_hosts.is_empty() {
            return Err("--full-node-hosts needs --hosts".into());
        }
        return Ok(Layout {
            validators: (0..args.validators).map(|i| ports(args.base_port, i)).collect(),
            full_nodes: (0..args.full_nodes).map(|j| ports(args.base_port, args.validators + j)).collect(),
        });
    }
    if hosts.len() != args.validators as usize {
        return Err(format!(
            "--hosts lists {} hosts for {} validators; give one per validator",
            hosts.len(),
            args.validators
        ));
    }
    if args.full_node_hosts.len() != args.full_nodes as usize {
        return Err(format!(
            "--full-node-hosts lists {} hosts for {} full nodes; give one per full node",
            args.full_node_hosts.len(),
            args.full_nodes
        ));
    }
    let mut placed: std::collections::HashMap<IpAddr, u32> = std::collections::HashMap::new();
    let mut place = |host: &str| -> Result<[SocketAddr; 4], String> {
        let ip = resolve(host)?;
        let slot = placed.entry(ip).or_insert(0);
        let [peer, ingress, rpc, metrics] = ports(args.base_port, *slot);
        *slot += 1;
        Ok([peer, ingress, rpc, metrics].map(|address| SocketAddr::new(ip, address.port())))
    };
    let validators = hosts.iter().map(|host| place(host)).collect::<Result<_, _>>()?;
    let full_nodes = args.full_node_hosts.iter().map(|host| place(host)).collect::<Result<_, _>>()?;
    Ok(Layout { validators, full_nodes })
}

/// The hosts given by --hosts or --hosts-file.
fn hosts(args: &GenesisArgs) -> Result<Vec<String>, String> {
    let Some(file) = &args.hosts_file else { return Ok(args.hosts.clone()) };
    let text = crate::read_input_file(file, crate::SMALL_FILE_BYTES_MAX)
        .map_err(|error| format!("--hosts-file {}: {error}", file.display()))?;
    Ok(text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
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

/// Refuses a validator count other than 3f + 1. With n validators, f = ⌊(n − 1)/3⌋ faults are
/// tolerated and a quorum is n − f; a count between two of the form 3f + 1 tolerates no more
/// faults than the smaller one but needs more validators to agree, so it is a mistake.
///
/// # Errors
/// [`crate::InputError`] naming the rule and the nearest valid counts.
fn check_validator_count(n: u32) -> Result<(), crate::InputError> {
    if n % 3 == 1 {
        return Ok(());
    }
    let below = n.checked_sub((n + 2) % 3).filter(|below| *below >= 1).unwrap_or(1);
    Err(crate::InputError(format!(
        "--validators {n}: the validator count must be 3f + 1 to tolerate f faults (1, 4, 7, 10, …); \
         {n} tolerates no more faults than {below}; use {below} or {}",
        below + 3
    )))
}

/// Writes the files; returns the config paths.
///
/// # Errors
/// Bad arguments, or files that cannot be written (or already exist).
pub fn write(args: &GenesisArgs) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    check_validator_count(args.validators)?;
    if args.accounts > FILLER_ACCOUNTS_MAX {
        return Err(crate::InputError(format!("--accounts must be at most {FILLER_ACCOUNTS_MAX}")).into());
    }
    if args.signing_accounts > LOAD_ACCOUNTS_MAX {
        return Err(
            crate::InputError(format!("--signing-accounts must be at most {LOAD_ACCOUNTS_MAX}")).into()
        );
    }
    if u32::from(args.base_port) + 4 * (args.validators + args.full_nodes) > u32::from(u16::MAX) {
        return Err("--base-port too high for this many nodes".into());
    }
    let layout = layout(args, &hosts(args)?)?;
    let keys: Vec<SigningKey> = (0..args.validators)
        .map(|_| {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map(|()| SigningKey::from_bytes(&seed))
        })
        .collect::<Result<_, _>>()
        .map_err(|error| format!("operating system randomness unavailable: {error}"))?;
    let load_accounts = args.accounts.min(args.signing_accounts);
    let balance =
        args.balance.unwrap_or(tessera_systems::workload::balance_within_supply(1 << 50, args.accounts));
    let genesis = Genesis {
        chain_id: args.chain_id,
        load_seed: Some(args.load_seed),
        load_accounts,
        load_balance: balance,
        filler_accounts: args.accounts - load_accounts,
        filler_balance: balance,
        validators: keys
            .iter()
            .map(|k| GenesisValidator { public_key: hex::encode(k.verifying_key().to_bytes()) })
            .collect(),
        accounts: Vec::new(),
    };
    // Checked as a node will load it (a supply past u64, say, from --balance), before anything
    // is written.
    let text = toml::to_string_pretty(&genesis)?;
    let path = args.out.join("genesis.toml");
    Genesis::from_toml(&text, &path).map_err(|error| crate::InputError(error.to_string()))?;
    // Every file is made in memory first, and none is written while any of them exists: a
    // run that found `node-2.toml` in place had written the genesis, three keys and two
    // configs before it failed, and the next run then refused the genesis it had left.
    let mut files: Vec<(PathBuf, String, bool)> = vec![(path, text, false)];
    let peers: Vec<SocketAddr> = layout.validators.iter().map(|ports| ports[0]).collect();
    let mut configs = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let index = index as u32;
        let key_text = serde_json::to_string_pretty(&KeyFile::new(key))? + "\n";
        files.push((args.out.join(format!("validator-{index}.key")), key_text, true));
        let [_, ingress, rpc, metrics] = layout.validators[index as usize];
        let config = NodeConfig::validator_preset(index, peers.clone(), ingress, rpc, metrics);
        let path = args.out.join(format!("node-{index}.toml"));
        files.push((path.clone(), toml::to_string_pretty(&config)?, false));
        configs.push(path);
    }
    for full in 0..args.full_nodes {
        let [listen, ingress, rpc, metrics] = layout.full_nodes[full as usize];
        let name = format!("full-{full}");
        let config = NodeConfig::full_preset(&name, peers.clone(), listen, ingress, rpc, metrics);
        let path = args.out.join(format!("{name}.toml"));
        files.push((path.clone(), toml::to_string_pretty(&config)?, false));
        configs.push(path);
    }
    if let Some((taken, ..)) = files.iter().find(|(path, ..)| path.symlink_metadata().is_ok()) {
        return Err(crate::InputError(format!(
            "{} already exists: tessera genesis writes into a directory without its files, and wrote nothing",
            taken.display()
        ))
        .into());
    }
    std::fs::create_dir_all(&args.out)?;
    for (written, (path, text, secret)) in files.iter().enumerate() {
        if let Err(error) = create(path, text, *secret) {
            // Another writer got there first, or the disk failed: take back what was written.
            for (path, ..) in &files[..written] {
                let _ = std::fs::remove_file(path);
            }
            return Err(error.into());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(validators: u32, hosts: &[&str], full_hosts: &[&str]) -> GenesisArgs {
        GenesisArgs {
            validators,
            out: PathBuf::from("unused"),
            chain_id: 1,
            accounts: 1,
            signing_accounts: 1,
            load_seed: 1,
            balance: Some(1),
            base_port: 26000,
            full_nodes: full_hosts.len() as u32,
            hosts: hosts.iter().map(|host| (*host).to_owned()).collect(),
            hosts_file: None,
            full_node_hosts: full_hosts.iter().map(|host| (*host).to_owned()).collect(),
        }
    }

    #[test]
    fn hosts_place_each_node_on_its_address_and_sharing_nodes_on_further_ports() {
        let hosts = ["10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.3"];
        let layout = layout(&args(4, &hosts, &["10.0.0.1"]), &hosts.map(str::to_owned)).unwrap();
        let peer = |ports: &[SocketAddr; 4]| ports[0].to_string();
        let peers: Vec<String> = layout.validators.iter().map(peer).collect();
        assert_eq!(peers, ["10.0.0.1:26000", "10.0.0.2:26000", "10.0.0.2:26004", "10.0.0.3:26000"]);
        assert_eq!(layout.validators[2][3].to_string(), "10.0.0.2:26007");
        // The full node shares validator 0's host, so it takes the next four ports there.
        assert_eq!(peer(&layout.full_nodes[0]), "10.0.0.1:26004");
    }

    #[test]
    fn a_wrong_number_of_hosts_is_refused_by_name() {
        let two = ["10.0.0.1".to_owned(), "10.0.0.2".to_owned()];
        let error = layout(&args(4, &["10.0.0.1", "10.0.0.2"], &[]), &two).err().unwrap();
        assert!(error.contains("2 hosts for 4 validators"), "{error}");
        let mut no_hosts = args(4, &[], &["10.0.0.9"]);
        no_hosts.full_nodes = 1;
        assert!(layout(&no_hosts, &[]).err().unwrap().contains("--full-node-hosts needs --hosts"));
        let bad = ["no such host.invalid".to_owned()];
        assert!(
            layout(&args(1, &["no such host.invalid"], &[]), &bad).err().unwrap().contains("cannot resolve")
        );
    }

    /// A run that finds one of its files in place writes nothing: it wrote the genesis, three
    /// keys and two configs before failing on `node-2.toml`, and a second run then refused the
    /// genesis the first had left.
    #[test]
    fn a_genesis_that_would_overwrite_a_file_writes_nothing() {
        let out = std::env::temp_dir().join(format!("tessera-genesis-taken-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("node-2.toml"), "kept").unwrap();
        let error = write(&GenesisArgs { out: out.clone(), ..args(4, &[], &[]) }).unwrap_err().to_string();
        assert!(error.contains("node-2.toml already exists"), "{error}");
        let left: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["node-2.toml"], "only the file that was there");
        assert_eq!(std::fs::read_to_string(out.join("node-2.toml")).unwrap(), "kept");
        std::fs::remove_file(out.join("node-2.toml")).unwrap();
        assert_eq!(write(&GenesisArgs { out: out.clone(), ..args(4, &[], &[]) }).unwrap().len(), 4);
        std::fs::remove_dir_all(&out).unwrap();
    }
}
