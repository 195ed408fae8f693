//! Real `tessera node` processes on loopback: agreement, crash and restart, hostile input.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_components::TxnBody;
use tessera_components::wire::{Frame, encode};
use tessera_systems::workload::{sign, signing_key};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

struct Cluster {
    dir: PathBuf,
    base: u16,
    nodes: Vec<Option<Child>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn port(base: u16, index: u32, offset: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], (u32::from(base) + 4 * index + offset) as u16))
}

fn free_base(start: u16) -> u16 {
    'search: for base in (start..start + 2000).step_by(40) {
        for i in 0..20 {
            if std::net::TcpListener::bind(("127.0.0.1", base + i)).is_err() {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no free ports near {start}");
}

/// A JSON-RPC call that may find the node not (yet) answering: `None` then, never a panic, so
/// the waits that poll a starting node leave the output to the failure that matters.
fn try_rpc(base: u16, index: u32, method: &str, params: Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
    let (status, text) = try_http_post(port(base, index, 2), &body).ok()?;
    (status == 200).then(|| serde_json::from_str(&text).ok()).flatten()
}

fn rpc(base: u16, index: u32, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
    let (status, text) = http_post(port(base, index, 2), &body);
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("JSON-RPC response")
}

/// A raw HTTP/1.1 POST; returns (status, body).
fn http_post(addr: SocketAddr, body: &str) -> (u16, String) {
    try_http_post(addr, body).expect("connect rpc")
}

fn http_raw(addr: SocketAddr, request: &str) -> (u16, String) {
    try_http_raw(addr, request).expect("connect rpc")
}

fn try_http_post(addr: SocketAddr, body: &str) -> std::io::Result<(u16, String)> {
    try_http_raw(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn try_http_raw(addr: SocketAddr, request: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Ok((status, body))
}

/// Sends a POST's headers declaring `length` bytes and 1 KiB of the body, then returns the status
/// of the response that arrives before the rest is sent.
fn status_before_body(addr: SocketAddr, length: usize) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("connect rpc");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&[b'x'; 1024]).unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 256];
    while !response.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => response.extend_from_slice(&buffer[..read]),
        }
    }
    let line = String::from_utf8_lossy(&response);
    line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn height(base: u16, index: u32) -> u64 {
    rpc(base, index, "tessera_getStatus", json!([]))["result"]["height"].as_u64().unwrap_or(0)
}

fn start_node(dir: &Path, index: u32) -> Child {
    start_config(dir, &format!("node-{index}"))
}

fn start_config(dir: &Path, name: &str) -> Child {
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log"))).unwrap();
    Command::new(BIN)
        .args(["node", "--config"])
        .arg(dir.join(format!("{name}.toml")))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn node")
}

/// Node `index`'s header at `height`, once it has finalized that height: a proof taken from
/// another node's tip may name a height this node reaches a moment later.
fn header_at(base: u16, index: u32, height: u64) -> Value {
    let mut header = Value::Null;
    wait_until(&format!("node {index} to reach height {height}"), Duration::from_secs(20), || {
        header = rpc(base, index, "tessera_getBlockByHeight", json!([height]))["result"].clone();
        !header.is_null()
    });
    header
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cluster(name: &str, start_port: u16) -> Cluster {
    let dir = std::env::temp_dir().join(format!("tessera-node-{}-{name}", std::process::id()));
    let mut start = start_port;
    // A port found free can be taken before a node binds it (by an outgoing connection of
    // another test, where the ephemeral range is wide): a node that exits for that is retried
    // on other ports, up to twice. Any other exit fails the wait below.
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&dir);
        let base = free_base(start);
        let out = Command::new(BIN)
            .args(["genesis", "--validators", "4", "--full-nodes", "1", "--accounts", "32"])
            .args(["--base-port", &base.to_string(), "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let nodes = (0..4).map(|i| Some(start_node(&dir, i))).collect();
        let mut cluster = Cluster { dir: dir.clone(), base, nodes };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(0..4).all(|i| {
            try_rpc(base, i, "tessera_getStatus", json!([])).is_some_and(|s| s["result"]["peers"] == 3)
        }) {
            if cluster.port_taken() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for four connected validators\n{}",
                cluster.state()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if !cluster.port_taken() {
            return cluster;
        }
        eprintln!(
            "a port of {base}..{} was taken before its node bound it; retrying\n{}",
            base + 20,
            cluster.state()
        );
        start = base + 40;
    }
    panic!("three port ranges from {start_port} were each taken before the nodes bound them");
}

impl Cluster {
    /// Whether a node exited because its port was in use.
    fn port_taken(&mut self) -> bool {
        (0..self.nodes.len()).any(|i| {
            let exited =
                self.nodes[i].as_mut().is_some_and(|child| child.try_wait().ok().flatten().is_some());
            exited && self.log(i).contains("Address already in use")
        })
    }

    /// The name of node `i`'s config and log: the four validators, then full nodes.
    fn name(i: usize) -> String {
        if i < 4 { format!("node-{i}") } else { format!("full-{}", i - 4) }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", Cluster::name(i)))).unwrap_or_default()
    }

    /// Each node's status (or exit) and the tail of its log: what a failed wait prints.
    fn state(&mut self) -> String {
        let mut out = String::new();
        for i in 0..self.nodes.len() {
            let exited = self.nodes[i].as_mut().and_then(|child| child.try_wait().ok().flatten());
            let status = try_rpc(self.base, i as u32, "tessera_getStatus", json!([]));
            let name = Cluster::name(i);
            let log = self.log(i);
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            out += &format!("--- {name}: exited {exited:?}, status {status:?}\n");
            for line in tail.iter().rev() {
                out += &format!("    {line}\n");
            }
        }
        out
    }
}

fn transfer(account: u64, nonce: u64) -> tessera_components::Txn {
    let key = signing_key(1, account);
    let recipient = signing_key(1, account + 100).verifying_key().to_bytes();
    sign(
        &key,
        TxnBody {
            chain_id: 1,
            reserved: 0,
            sender: key.verifying_key().to_bytes(),
            recipient,
            amount: 5,
            fee: 1,
            nonce,
        },
    )
}

#[test]
fn four_nodes_finalize_the_same_blocks_with_the_transactions() {
    let mut cluster = cluster("agree", 21000);
    let base = cluster.base;
    // A full node (index 4 in the port plan) follows the four validators.
    cluster.nodes.push(Some(start_config(&cluster.dir, "full-0")));
    // 40 transfers through the binary ingress of node 0, 40 through JSON-RPC on node 1.
    let ingress: Vec<_> = (0..40).map(|i| transfer(i % 8, i / 8)).collect();
    let mut stream = TcpStream::connect(port(base, 0, 1)).unwrap();
    stream.write_all(&encode(&Frame::Txns(ingress.clone()))).unwrap();
    let via_rpc: Vec<_> = (0..40).map(|i| transfer(8 + i % 8, i / 8)).collect();
    for txn in &via_rpc {
        let reply = rpc(base, 1, "tessera_sendTransaction", json!([hex::encode(bytemuck::bytes_of(txn))]));
        assert_eq!(reply["result"], json!(txn.id().0.to_hex()), "{reply}");
    }
    wait_until("the full node's RPC", Duration::from_secs(20), || {
        try_rpc(base, 4, "tessera_getStatus", json!([])).is_some()
    });
    // Eight more through the full node, which forwards them to the validators.
    let via_full: Vec<_> = (0..8).map(|i| transfer(16 + i, 0)).collect();
    for txn in &via_full {
        let reply = rpc(base, 4, "tessera_sendTransaction", json!([hex::encode(bytemuck::bytes_of(txn))]));
        assert_eq!(reply["result"], json!(txn.id().0.to_hex()), "{reply}");
    }
    let all: Vec<_> = ingress.iter().chain(&via_rpc).chain(&via_full).collect();
    wait_until("all 88 transfers committed", Duration::from_secs(30), || {
        all.iter().all(|txn| {
            rpc(base, 2, "tessera_getTransaction", json!([txn.id().0.to_hex()]))["result"]["status"]
                == "committed"
        })
    });
    // Node 2 saw every transfer committed; the others may be a block behind it. Count the
    // blocks only up to a height every validator (and the full node) has reached, and that
    // holds the last of the transfers.
    let last = all
        .iter()
        .map(|txn| {
            rpc(base, 2, "tessera_getTransaction", json!([txn.id().0.to_hex()]))["result"]["height"]
                .as_u64()
                .expect("a committed transfer has a height")
        })
        .max()
        .unwrap();
    wait_until("every validator reaches the last transfer's block", Duration::from_secs(30), || {
        (0..4).all(|i| height(base, i) >= last)
    });
    let low = (0..4).map(|i| height(base, i)).min().unwrap();
    wait_until("the full node follows", Duration::from_secs(30), || height(base, 4) >= low);
    let full_status = rpc(base, 4, "tessera_getStatus", json!([]));
    assert_eq!(full_status["result"]["role"], "full", "{full_status}");
    let mut seen = 0;
    for h in 1..=low {
        let blocks: Vec<Value> =
            (0..5).map(|i| rpc(base, i, "tessera_getBlockByHeight", json!([h]))["result"].clone()).collect();
        assert!(
            blocks.iter().all(|b| b["hash"] == blocks[0]["hash"]),
            "validators and the full node disagree at height {h}"
        );
        seen += blocks[0]["transactions"].as_array().map_or(0, Vec::len);
    }
    assert!(seen >= 88, "blocks hold {seen} transactions");
    for txn in &via_full {
        let fate = rpc(base, 4, "tessera_getTransaction", json!([txn.id().0.to_hex()]));
        assert_eq!(fate["result"]["status"], "committed", "{fate}");
    }
    let account = rpc(
        base,
        3,
        "tessera_getAccount",
        json!([hex::encode(signing_key(1, 100).verifying_key().to_bytes())]),
    );
    // Account 100 (not funded at genesis) received five transfers of 5 from account 0.
    assert_eq!(account["result"]["balance"], json!(25), "{account}");
    account_proofs_verify_offline(base);
    dashboard_metrics_exist(base);
}

/// An account proof from one node verifies offline against the state root of the block it
/// names, as another node serves that block; a tampered proof, or another root, is refused.
fn account_proofs_verify_offline(base: u16) {
    let address = hex::encode(signing_key(1, 100).verifying_key().to_bytes());
    let reply = rpc(base, 3, "tessera_getAccount", json!([address, {"proof": true}]));
    let proof = &reply["result"]["proof"];
    assert_eq!(proof["balance"], json!(25), "{reply}");
    let height = proof["height"].as_u64().expect("a height");
    let header = header_at(base, 0, height);
    let root = header["state_root"].as_str().expect("a state root").to_owned();
    assert_eq!(proof["state_root"].as_str(), Some(root.as_str()), "{reply} vs {header}");
    let verify = |proof: &Value, root: &str| {
        let dir = std::env::temp_dir().join(format!("tessera-proof-{}", std::process::id()));
        std::fs::write(&dir, serde_json::to_vec(proof).unwrap()).unwrap();
        let out =
            Command::new(BIN).arg("verify-proof").arg(&dir).args(["--state-root", root]).output().unwrap();
        let _ = std::fs::remove_file(&dir);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = verify(&reply, &root);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("holds balance 25"), "{text}");
    let mut tampered = reply.clone();
    tampered["result"]["proof"]["balance"] = json!(26);
    let (code, text) = verify(&tampered, &root);
    assert_eq!(code, Some(1), "a tampered proof: {text}");
    let (code, text) = verify(&reply, &"00".repeat(32));
    assert_eq!(code, Some(1), "another root: {text}");
    let (code, text) = verify(&json!({"proof": {"siblings": "no"}}), &root);
    assert_eq!(code, Some(2), "malformed input: {text}");
    // Checked only against the root it names, a proof proves nothing: a root is required.
    let path = std::env::temp_dir().join(format!("tessera-proof-noroot-{}", std::process::id()));
    std::fs::write(&path, serde_json::to_vec(&reply).unwrap()).unwrap();
    let out = Command::new(BIN).arg("verify-proof").arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2), "no --state-root");
    // An address with no account gets a proof of its absence, which verifies offline against
    // node 0's root (when the tip has not moved; else against the root the proof names, taken
    // from node 3's own header at that height), and fails for an address that has one.
    let none = rpc(base, 3, "tessera_getAccount", json!(["ee".repeat(32), {"proof": true}]));
    assert_eq!(none["result"]["exists"], json!(false), "{none}");
    let absence = &none["result"]["proof"];
    assert_eq!(absence["absent"], json!(true), "{none}");
    let height = absence["height"].as_u64().unwrap();
    let absent_root = header_at(base, 0, height)["state_root"].as_str().expect("a state root").to_owned();
    let (code, text) = verify(&none, &absent_root);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("has no account"), "{text}");
    let mut moved = none.clone();
    moved["result"]["proof"]["address"] = reply["result"]["proof"]["address"].clone();
    let (code, text) = verify(&moved, &absent_root);
    assert_eq!(code, Some(1), "an absence proof moved to an address with an account: {text}");
}

/// Every metric the Grafana dashboard queries is in a live node's exposition.
fn dashboard_metrics_exist(base: u16) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/grafana/tessera.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().iter())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 10, "the dashboard lost its queries");
    let (status, exposition) =
        http_raw(port(base, 0, 3), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let series: std::collections::BTreeSet<&str> = exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    for expr in &exprs {
        for (start, _) in expr.match_indices("tessera_") {
            let name: String =
                expr[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            assert!(
                series.contains(name.as_str()),
                "dashboard queries {name}, which the node does not export"
            );
        }
    }
}

#[test]
fn a_killed_node_restarts_and_catches_up() {
    let mut cluster = cluster("restart", 23000);
    let base = cluster.base;
    wait_until("a few blocks", Duration::from_secs(20), || height(base, 0) >= 5);
    let mut victim = cluster.nodes[3].take().unwrap();
    victim.kill().unwrap();
    victim.wait().unwrap();
    let at_kill = height(base, 0);
    // The killed node's data directory is sound (a torn tail at most) and replays to its roots.
    let inspect =
        Command::new(BIN).args(["inspect", "--replay"]).arg(cluster.dir.join("data-3")).output().unwrap();
    let report = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{report}{}", String::from_utf8_lossy(&inspect.stderr));
    assert!(report.lines().any(|line| line.starts_with("height ")), "{report}");
    wait_until("the other three keep finalizing", Duration::from_secs(30), || {
        height(base, 0) >= at_kill + 20
    });
    cluster.nodes[3] = Some(start_node(&cluster.dir, 3));
    let target = height(base, 0);
    wait_until("the restarted node catches up", Duration::from_secs(60), || {
        try_rpc(base, 3, "tessera_getStatus", json!([]))
            .and_then(|s| s["result"]["height"].as_u64())
            .is_some_and(|h| h >= target)
    });
    let h = target;
    let a = rpc(base, 0, "tessera_getBlockByHeight", json!([h]))["result"]["hash"].clone();
    let b = rpc(base, 3, "tessera_getBlockByHeight", json!([h]))["result"]["hash"].clone();
    assert_eq!(a, b);
}

#[test]
fn hostile_input_gets_clear_errors_and_changes_nothing() {
    let cluster = cluster("hostile", 25000);
    let base = cluster.base;
    let probe = hex::encode(signing_key(1, 3).verifying_key().to_bytes());
    let before = rpc(base, 0, "tessera_getAccount", json!([probe]))["result"].clone();

    // JSON-RPC: each failure has its code.
    let cases = [
        ("{not json", -32700),
        (r#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#, -32601),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getBlockByHeight","params":["x"]}"#, -32602),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tessera_sendTransaction","params":["abcd"]}"#, -32602),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getAccount","params":[]}"#, -32602),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getAccount","params":["00","x"]}"#, -32602),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getAccount","params":["0000000000000000000000000000000000000000000000000000000000000000",{"proof":1}]}"#,
            -32602,
        ),
        (r#"{"id":1,"method":"tessera_getStatus"}"#, -32600),
        ("[]", -32600),
    ];
    for (body, code) in cases {
        let (status, text) = http_post(port(base, 0, 2), body);
        assert_eq!(status, 200, "{body}");
        let reply: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(reply["error"]["code"], json!(code), "{body} -> {text}");
    }
    // A body over the limit is refused on its declared length, before any of it is read. The
    // client sends the headers and the first bytes of a 2 MiB body and reads the status line
    // while the rest is unsent: sending all of it would race the server's close, since a socket
    // closed with unread bytes queued is reset and the reset can discard the 413 in flight.
    assert_eq!(status_before_body(port(base, 0, 2), 2 << 20), 413);
    let (status, _) = http_raw(port(base, 0, 2), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 405);

    // A handshake trickled a byte a second: every read is within the 5 s read timeout, but
    // the whole handshake has a 5 s deadline, so the node closes the connection.
    let trickle = {
        let addr = port(base, 0, 0);
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            let hello = tessera_components::wire::Hello {
                chain_id: 1,
                protocol_version: tessera_components::wire::PROTOCOL_VERSION,
                noise: vec![0; 32],
            };
            let started = Instant::now();
            for byte in encode(&Frame::Hello(hello)) {
                if stream.write_all(&[byte]).is_err() || started.elapsed() > Duration::from_secs(9) {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            // Closed: end of stream or a reset, and well before the bytes ran out.
            let closed = match stream.read(&mut [0u8; 64]) {
                Ok(read) => read == 0,
                Err(error) => {
                    !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                }
            };
            (closed, started.elapsed())
        })
    };
    // Ingress: garbage, then a frame of the wrong kind.
    let mut stream = TcpStream::connect(port(base, 0, 1)).unwrap();
    let _ = stream.write_all(b"GET / HTTP/1.1\r\n\r\nthis is not a frame at all");
    let mut stream = TcpStream::connect(port(base, 0, 1)).unwrap();
    let _ = stream.write_all(&encode(&Frame::Consensus(tessera_components::ConsensusMessage::SyncRequest {
        from_height: 1,
    })));
    // Peer port: garbage instead of a handshake, and a handshake for another chain.
    let mut stream = TcpStream::connect(port(base, 0, 0)).unwrap();
    let _ = stream.write_all(&[0xff; 64]);
    let hello = tessera_components::wire::Hello {
        chain_id: 99,
        protocol_version: tessera_components::wire::PROTOCOL_VERSION,
        noise: vec![0; 32],
    };
    let mut stream = TcpStream::connect(port(base, 0, 0)).unwrap();
    let _ = stream.write_all(&encode(&Frame::Hello(hello)));
    // The handshake reflection: claim to be validator 1 to validator 0, with validator 1's
    // proof fetched over a full node's connection. Node 0 must refuse every attempt.
    let reflection = Command::new(BIN)
        .args(["attack", "--peer", &port(base, 0, 0).to_string(), "--chain-id", "1", "--node-index", "0"])
        .args(["--reflect-peer", &port(base, 1, 0).to_string(), "--reflect-index", "1"])
        .args(["--kind", "handshake-reflection", "--duration", "2", "--json"])
        .output()
        .expect("run the attack");
    assert!(reflection.status.success(), "{}", String::from_utf8_lossy(&reflection.stderr));
    let reflection: Value = serde_json::from_slice(&reflection.stdout).expect("attack JSON");
    let sent = &reflection["kinds"][0]["sent"];
    assert_eq!(sent["handshakes_completed"], json!(0), "a reflected proof was accepted: {reflection}");
    assert!(sent["closed_by_node"].as_u64().unwrap_or(0) >= 2, "{reflection}");
    // Validator 3 (this test holds its key) forwards batches of forged signatures over its
    // own link, from funded senders so that each would pass every cheap check. They are
    // refused on a spot check, not verified one by one in the pipeline.
    let forwarded = attack_as_validator_3(&cluster, 0, "forwarded-signature-spam");
    assert!(forwarded["kinds"][0]["sent"]["txns"].as_u64().unwrap_or(0) >= 1024, "{forwarded}");
    // One forgery among 255 good signatures per batch passes the spot check. Against node 1
    // (node 0 has banned validator 3 by now): each forgery its pipeline finds is charged to
    // validator 3, which is banned by index past the threshold, so only a handful are verified.
    // Without the charge, a forgery a batch, 78 a second at this rate, reached the pipeline
    // for as long as the attack ran.
    let diluted = attack_as_validator_3(&cluster, 1, "forwarded-diluted-forgeries");
    assert!(diluted["kinds"][0]["sent"]["txns"].as_u64().unwrap_or(0) >= 2048, "{diluted}");
    std::thread::sleep(Duration::from_millis(500));
    let (metrics_1, counter_1) = scrape(base, 1);
    let charged = counter_1("tessera_net_forwarded_forgeries_total");
    let verified = counter_1(r#"tessera_rejected_transactions_total{reason="bad_signature"}"#);
    assert!(verified <= 32, "{verified} diluted forgeries verified: the forwarder was not stopped");
    assert!(charged >= 1, "no forwarded forgery was charged: {metrics_1}");
    // Validator 3 sends node 2 sync responses of 64 made-up blocks, each certified by its own
    // vote alone: short of a quorum, they are dropped before any signature is checked. Before,
    // each response was verified whole (64 signatures), charged to nobody, every tick.
    let (_, counter_2) = scrape(base, 2);
    let verified_before = counter_2("tessera_consensus_signatures_verified_total");
    let dropped_before = counter_2("tessera_consensus_dropped_unverified_total");
    let sub_quorum = attack_as_validator_3(&cluster, 2, "sub-quorum-sync");
    let responses = sub_quorum["kinds"][0]["sent"]["consensus_messages"].as_u64().unwrap_or(0);
    assert!(responses >= 100, "{sub_quorum}");
    let (metrics_2, counter_2) = scrape(base, 2);
    let verified = counter_2("tessera_consensus_signatures_verified_total") - verified_before;
    let dropped = counter_2("tessera_consensus_dropped_unverified_total") - dropped_before;
    // The figures docs/adversarial.md quotes (`cargo test --test node hostile -- --nocapture`).
    eprintln!(
        "sub-quorum-sync: {responses} responses, {verified} signatures verified, {dropped} blocks dropped unverified"
    );
    assert!(
        verified < responses * 64 / 4,
        "{verified} signatures verified for {responses} sub-quorum responses of 64 blocks:\n{metrics_2}"
    );
    assert!(
        dropped >= responses * 64 / 2,
        "{dropped} dropped unverified of {responses} responses:\n{metrics_2}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let (closed, after) = trickle.join().unwrap();
    assert!(closed && after < Duration::from_secs(12), "trickled handshake open after {after:?}");

    let (metrics, counter) = scrape(base, 0);
    assert!(counter("tessera_net_malformed_frames_total") >= 2, "{metrics}");
    assert!(counter("tessera_net_handshake_failures_total") >= 3, "{metrics}");
    assert!(counter("tessera_net_connections_timed_out_total") >= 1, "{metrics}");
    assert!(counter("tessera_net_forwarded_batches_refused_total") >= 1, "{metrics}");
    let verified_bad = counter(r#"tessera_rejected_transactions_total{reason="bad_signature"}"#);
    assert!(verified_bad < 256, "{verified_bad} forged forwarded transactions verified one by one");

    // Still alive, still finalizing, nothing changed.
    let h = height(base, 0);
    wait_until("more blocks after the abuse", Duration::from_secs(20), || height(base, 0) > h + 3);
    assert_eq!(rpc(base, 0, "tessera_getAccount", json!([probe]))["result"], before);
}

/// Runs `tessera attack --kind KIND` for 2 s at 20,000 txn/s against node `node`, as validator
/// 3 (whose key the cluster's directory holds), and returns its JSON report.
fn attack_as_validator_3(cluster: &Cluster, node: u32, kind: &str) -> Value {
    let base = cluster.base;
    let out = Command::new(BIN)
        .args([
            "attack",
            "--peer",
            &port(base, node, 0).to_string(),
            "--rpc",
            &port(base, node, 2).to_string(),
        ])
        .args(["--chain-id", "1", "--node-index", &node.to_string(), "--validator-index", "3", "--key"])
        .arg(cluster.dir.join("validator-3.key"))
        .arg("--genesis")
        .arg(cluster.dir.join("genesis.toml"))
        .args(["--kind", kind, "--duration", "2", "--rate", "20000", "--json"])
        .output()
        .expect("run the attack");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("attack JSON")
}

/// Node `node`'s metrics exposition, and a reader of one sample by its series (0 if absent).
fn scrape(base: u16, node: u32) -> (String, impl Fn(&str) -> u64) {
    let (status, metrics) =
        http_raw(port(base, node, 3), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let text = metrics.clone();
    let counter = move |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (metrics, counter)
}

fn devnet(name: &str, start_port: u16, extra: &[&str]) -> (std::process::Child, PathBuf) {
    let dir = std::env::temp_dir().join(format!("tessera-devnet-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = free_base(start_port);
    let child = Command::new(BIN)
        .args(["devnet", "--validators", "4", "--base-port", &base.to_string(), "--data-dir"])
        .arg(dir.join("net"))
        .arg("--report-json")
        .arg(dir.join("report.json"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn devnet");
    (child, dir)
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).expect("report written"))
        .expect("report JSON")
}

#[test]
fn devnet_runs_and_reports_agreement() {
    let plots = std::env::temp_dir().join(format!("tessera-devnet-{}-plots", std::process::id()));
    let _ = std::fs::remove_dir_all(&plots);
    let (child, dir) = devnet(
        "plain",
        27400,
        // Past the 1,024 load accounts, filler accounts: every transfer goes to one of them.
        &["--duration", "3", "--rate", "400", "--accounts", "50000", "--report-dir", plots.to_str().unwrap()],
    );
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("validator ") && l.contains(" pid ")).count(),
        4,
        "{stdout}"
    );
    let report = report(&dir);
    assert_eq!(report["agreement"], json!(true), "{report}");
    assert_eq!(report["agreement_validators"], json!(4));
    assert_eq!(report["submitted"], json!(1200));
    assert_eq!(report["committed"], json!(1200), "{report}");
    assert_eq!(report["accounts"], json!(50000), "{report}");
    for key in ["p50", "p99", "p999", "max"] {
        assert!(report["latency_ms"][key].as_f64().is_some_and(|v| v > 0.0), "{key}: {report}");
    }
    assert!(report["verify_ceiling_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["ratio_to_ceiling"].as_f64().unwrap() > 0.0);
    // Finalization followed by pushed blocks, not by polling.
    assert!(report["blocks_pushed"].as_u64().unwrap() > 0, "{report}");
    // --report-dir: the same report with a series per validator, and its plots.
    let full =
        serde_json::from_str::<Value>(&std::fs::read_to_string(plots.join("report.json")).unwrap()).unwrap();
    assert_eq!(full["committed"], json!(1200), "{full}");
    let per_validator = full["per_validator"].as_array().expect("per_validator");
    assert_eq!(per_validator.len(), 4, "{full}");
    for (index, node) in per_validator.iter().enumerate() {
        assert_eq!(node["validator"], json!(index));
        let series = node["series"].as_array().unwrap();
        let finalized: u64 = series.iter().map(|row| row["finalized_tps"].as_u64().unwrap()).sum();
        // Validator 0 is the tracker, which waits for all of them; the others are read once
        // more after it stops, and may be a block behind.
        if index == 0 {
            assert_eq!(finalized, 1200, "{node}");
        } else {
            assert!(finalized > 0 && finalized <= 1200, "{node}");
        }
        assert!(series.iter().any(|row| row["latency_p99_ms"].as_u64().unwrap() > 0), "{node}");
    }
    for plot in ["finalized_tps.svg", "latency.svg"] {
        let svg = std::fs::read_to_string(plots.join(plot)).expect(plot);
        assert!(svg.contains("<svg") && svg.contains("validator 3"), "{plot}: {svg:.300}");
    }
    // A node's log file is plain text, and names its validator as an operator would.
    let log = std::fs::read_to_string(dir.join("net").join("node-0.log")).expect("node 0's log");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file: {log:.400}");
    assert!(log.contains("validator=0") && log.contains("role=validator"), "{log:.400}");
}

/// A SIGTERM to the devnet process alone (as a script or a service manager sends it), mid-run,
/// stops its node processes too, and the devnet exits with 130. Before, the nodes were left
/// running.
#[test]
fn a_signal_to_the_devnet_stops_its_nodes() {
    let (mut child, _dir) = devnet("signal", 29400, &["--duration", "60", "--rate", "100"]);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
    let validators = devnet_validators(&mut lines);
    let pids: Vec<i32> = validators.iter().map(|v| v.0).collect();
    let rpc: Option<SocketAddr> =
        validators[0].3.strip_prefix("http://").and_then(|addr| addr.trim_end_matches('/').parse().ok());
    let alive =
        |pid: i32| Command::new("kill").args(["-0", &pid.to_string()]).status().is_ok_and(|s| s.success());
    assert!(pids.iter().all(|pid| alive(*pid)));
    // Mid-run: once validator 0 has finalized a block.
    let rpc = rpc.expect("validator 0's RPC address");
    let status = r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getStatus"}"#;
    wait_until("validator 0 finalizes", Duration::from_secs(30), || {
        TcpStream::connect(rpc).is_ok()
            && serde_json::from_str::<Value>(&http_post(rpc, status).1)
                .is_ok_and(|v| v["result"]["height"].as_u64().unwrap_or(0) >= 1)
    });
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the devnet did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{status:?}");
    wait_until("every node process gone", Duration::from_secs(10), || pids.iter().all(|pid| !alive(*pid)));
}

#[test]
fn devnet_survives_a_killed_validator() {
    let (mut child, dir) = devnet("kill", 29000, &["--duration", "6", "--rate", "300"]);
    // Read the validator lines, then SIGKILL validator 3 mid-run.
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
    let pids: Vec<i32> = devnet_validators(&mut lines).iter().map(|v| v.0).collect();
    std::thread::sleep(Duration::from_secs(4));
    let killed = Command::new("kill").args(["-9", &pids[3].to_string()]).status().unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    let _ = lines.read_to_string(&mut rest);
    assert!(child.wait().unwrap().success(), "{rest}");
    let report = report(&dir);
    assert_eq!(report["agreement"], json!(true), "{report}");
    assert_eq!(report["agreement_validators"], json!(3), "{report}");
    assert!(report["finalized_height"].as_u64().unwrap() > 0);
}

/// Four namespaces on one bridge, one validator in each: what crosses the network is real
/// (veth, a bridge, and 2 ms of netem delay each way where `tc` is present).
struct Namespaces {
    tag: String,
    count: u32,
    children: Vec<Child>,
}

impl Namespaces {
    fn ns(&self, i: u32) -> String {
        format!("{}n{i}", self.tag)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for i in 0..self.count {
            let _ = ip(&["netns", "del", &self.ns(i)]);
        }
        let _ = ip(&["link", "del", &format!("{}br", self.tag)]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Builds the bridge and namespaces; `Err` says why this machine does not permit it.
fn namespaces(count: u32, subnet: &str) -> Result<Namespaces, String> {
    let tag = format!("tsr{}", std::process::id() % 100_000);
    let mut set = Namespaces { tag: tag.clone(), count: 0, children: Vec::new() };
    let bridge = format!("{tag}br");
    ip(&["link", "add", &bridge, "type", "bridge"])?;
    ip(&["addr", "add", &format!("{subnet}.254/24"), "dev", &bridge])?;
    ip(&["link", "set", &bridge, "up"])?;
    for i in 0..count {
        let ns = set.ns(i);
        ip(&["netns", "add", &ns])?;
        set.count = i + 1;
        let (outer, inner) = (format!("{tag}v{i}"), format!("{tag}p{i}"));
        ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner])?;
        ip(&["link", "set", &inner, "netns", &ns])?;
        ip(&["link", "set", &outer, "master", &bridge, "up"])?;
        ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("{subnet}.{}/24", i + 1), "dev", &inner])?;
        ip(&["netns", "exec", &ns, "ip", "link", "set", &inner, "up"])?;
        ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        // Best effort: a real link delay on each side's egress.
        let _ = Command::new("tc")
            .args(["qdisc", "add", "dev", &outer, "root", "netem", "delay", "2ms"])
            .output();
    }
    Ok(set)
}

#[test]
fn validators_in_separate_network_namespaces_agree() {
    let subnet = format!("10.{}.{}", 100 + std::process::id() % 100, std::process::id() / 100 % 250);
    let mut set = match namespaces(4, &subnet) {
        Ok(set) => set,
        Err(why) => {
            eprintln!("skipped: network namespaces are not permitted here ({why})");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("tessera-node-{}-netns", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = 24000u16;
    // The configs come from `genesis --hosts`, as on a multi-host deployment: validator i on
    // its namespace's address, each at the same four ports.
    let hosts: Vec<String> = (1..=4).map(|i| format!("{subnet}.{i}")).collect();
    let out = Command::new(BIN)
        .args(["genesis", "--validators", "4", "--accounts", "16", "--base-port", &base.to_string()])
        .args(["--hosts", &hosts.join(","), "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let addr = |i: u32, offset: u32| -> SocketAddr {
        format!("{subnet}.{}:{}", i + 1, u32::from(base) + offset).parse().unwrap()
    };
    let config = std::fs::read_to_string(dir.join("node-2.toml")).unwrap();
    assert!(config.contains(&format!("listen = \"{}\"", addr(2, 0))), "{config}");
    for i in 0..4 {
        let log = std::fs::File::create(dir.join(format!("node-{i}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &set.ns(i), BIN, "node", "--config"])
            .arg(dir.join(format!("node-{i}.toml")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn node in its namespace");
        set.children.push(child);
    }
    let try_call = |i: u32, method: &str, params: Value| -> Option<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let (status, text) = try_http_post(addr(i, 2), &body).ok()?;
        (status == 200).then(|| serde_json::from_str(&text).ok()).flatten()
    };
    let call = |i: u32, method: &str, params: Value| -> Value {
        try_call(i, method, params).expect("a JSON-RPC response")
    };
    let status = |i: u32| try_call(i, "tessera_getStatus", json!([])).map(|s| s["result"].clone());
    wait_until("four validators connected across namespaces", Duration::from_secs(30), || {
        (0..4).all(|i| status(i).is_some_and(|s| s["peers"] == 3))
    });
    let txns: Vec<_> = (0..16).map(|i| transfer(i % 4, i / 4)).collect();
    let mut stream = TcpStream::connect(addr(0, 1)).expect("ingress across the bridge");
    stream.write_all(&encode(&Frame::Txns(txns.clone()))).unwrap();
    wait_until(
        "the transfers committed on a validator in another namespace",
        Duration::from_secs(30),
        || {
            txns.iter().all(|txn| {
                call(3, "tessera_getTransaction", json!([txn.id().0.to_hex()]))["result"]["status"]
                    == "committed"
            })
        },
    );
    // The transfers can all land in block 1: wait for every validator to finalize another.
    let height = |i: u32| status(i).and_then(|s| s["height"].as_u64()).unwrap_or(0);
    wait_until("every validator past height 1", Duration::from_secs(30), || (0..4).all(|i| height(i) >= 2));
    let low = (0..4).map(|i| status(i).unwrap()["height"].as_u64().unwrap()).min().unwrap();
    assert!(low >= 2, "only {low} blocks finalized");
    for h in 1..=low {
        let hashes: Vec<Value> = (0..4)
            .map(|i| call(i, "tessera_getBlockByHeight", json!([h]))["result"]["hash"].clone())
            .collect();
        assert!(hashes.iter().all(|x| *x == hashes[0]), "namespaces disagree at height {h}: {hashes:?}");
    }
}

/// Peak resident set of a process, bytes (0 once it is gone).
fn rss_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// The `validator ...` lines a devnet prints first: (pid, peer, ingress, rpc URL, metrics URL).
fn devnet_validators(lines: &mut impl std::io::BufRead) -> Vec<(i32, String, String, String, String)> {
    let mut out = Vec::new();
    while out.len() < 4 {
        let mut line = String::new();
        assert!(lines.read_line(&mut line).unwrap() > 0, "devnet ended early");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"validator") && words.len() >= 12 {
            let after = |key: &str| words[words.iter().position(|w| *w == key).unwrap() + 1].to_owned();
            out.push((
                after("pid").parse().unwrap(),
                after("peer"),
                after("ingress"),
                after("rpc"),
                after("metrics"),
            ));
        }
    }
    out
}

/// The kinds the campaign runs at once: all that need no key, and `old-view-proposals`.
const CAMPAIGN_KINDS: &str = "malformed-frames,truncated-frames,oversized-frames,handshake-violations,\
connection-flood,slow-loris,slow-reader,bad-signature-spam,unfunded-fee-spam,garbage-after-handshake,\
follower-flood,sync-amplification,rpc-malformed,rpc-oversized,ws-subscribers,handshake-reflection,old-view-proposals";

/// The campaign: the same devnet and honest load twice, the second time with `tessera attack`
/// on validator 0's peer, ingress and RPC ports (every kind that needs no key and
/// `old-view-proposals` as validator 3, all at once).
/// Every node stays up, they agree, every honest transaction commits, no node's RSS passes
/// 1 GiB, and honest p99 stays within twice the quiet run's (plus 250 ms of slack for a small
/// shared machine; the figures are printed).
#[test]
fn devnet_under_attack_stays_up_agrees_and_keeps_latency() {
    const RATE: &str = "300";
    // The attacked devnet must outlive the attack (8 s from the first block, then the final
    // scrape): with 6 s of load it could shut down before that scrape on a loaded machine,
    // which read as "node not answering" (seen twice in 30 suite runs). It gets 4 s more load
    // than the quiet one, so its nodes are still up when the attack has ended.
    const SECS: &str = "10";
    const ATTACKED_SECS: &str = "14";
    let (quiet, quiet_dir) = devnet("campaign-quiet", 30000, &["--duration", SECS, "--rate", RATE]);
    assert!(quiet.wait_with_output().unwrap().status.success());
    let quiet = report(&quiet_dir);
    assert_eq!(quiet["agreement"], json!(true), "{quiet}");

    let (mut child, dir) = devnet("campaign-attack", 30200, &["--duration", ATTACKED_SECS, "--rate", RATE]);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
    let validators = devnet_validators(&mut lines);
    let (_, peer, ingress, rpc_url, metrics_url) = validators[0].clone();
    let rpc_addr: SocketAddr = rpc_url.trim_start_matches("http://").parse().unwrap();
    // Attack once the network is up and load is about to start.
    wait_until("validator 0 finalizes", Duration::from_secs(30), || {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tessera_getStatus", "params": []}).to_string();
        try_http_post(rpc_addr, &body)
            .ok()
            .and_then(|(_, text)| serde_json::from_str::<Value>(&text).ok())
            .and_then(|status| status["result"]["height"].as_u64())
            .is_some_and(|height| height >= 1)
    });
    let mut attack = Command::new(BIN)
        .args([
            "attack",
            "--peer",
            &peer,
            "--ingress",
            &ingress,
            "--rpc",
            &rpc_url,
            "--metrics",
            &metrics_url,
        ])
        // The public genesis: bad-signature spam from funded senders reaches verification.
        .arg("--genesis")
        .arg(dir.join("net").join("genesis.toml"))
        // Every kind that needs no key, and with validator 3's key (the one Byzantine validator
        // n = 4 tolerates) proposals for the views it led that the node has left. The other
        // Byzantine kinds are the swarm's and `hostile_input`'s business: a Byzantine leader
        // costs honest clients a view timeout, which no latency bound of 2x would survive.
        .args(["--kind", CAMPAIGN_KINDS])
        .arg("--key")
        .arg(dir.join("net").join("validator-3.key"))
        .args(["--validator-index", "3"])
        .args(["--reflect-peer", &validators[1].1, "--reflect-index", "1"])
        // The attacker is one address, the devnet's own clients (its load and the follower that
        // measures latency) another, as on a real network. On one address, the RPC port's
        // per-address cap would make the follower's new connections wait behind the
        // attacker's (a NAT shared with an attacker shares its fate).
        .args(["--source", "127.0.0.3"])
        .args(["--duration", "8", "--concurrent", "--json", "--max-connections", "64"])
        .args(["--connect-rate", "100", "--rate", "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn attack");
    let pids: Vec<i32> = validators.iter().map(|v| v.0).collect();
    let mut rss_max = vec![0u64; pids.len()];
    // Sampled while the attack runs, and once after it ended: every node outlived it. (Sampling
    // until the devnet exited, as this did before, raced the devnet's own shutdown of its
    // nodes at the end of the load: a node seen gone mid-shutdown read as one that died.)
    let mut gone = Vec::new();
    let attack_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attack_over = attack.try_wait().unwrap().is_some() || Instant::now() > attack_deadline;
        for (i, pid) in pids.iter().enumerate() {
            let rss = rss_bytes(*pid);
            if rss == 0 && !gone.contains(&i) {
                gone.push(i);
            }
            rss_max[i] = rss_max[i].max(rss);
        }
        if attack_over {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let alive_throughout = gone.is_empty();
    let attack = attack.wait_with_output().unwrap();
    let mut rest = String::new();
    let _ = lines.read_to_string(&mut rest);
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(attack.status.success(), "{}", String::from_utf8_lossy(&attack.stderr));
    let attacked: Value = serde_json::from_slice(&attack.stdout).expect("attack JSON");
    let under = report(&dir);

    let p99 = |r: &Value| r["latency_ms"]["p99"].as_f64().unwrap();
    let delta = &attacked["node_metrics_delta"];
    eprintln!(
        "campaign: quiet p99 {} ms, attacked p99 {} ms; RSS max {:?} MiB; node 0: malformed {} handshake failures {} bans {} disconnects {} spam batches refused {}",
        p99(&quiet),
        p99(&under),
        rss_max.iter().map(|r| r >> 20).collect::<Vec<_>>(),
        delta["tessera_net_malformed_frames_total"],
        delta["tessera_net_handshake_failures_total"],
        delta["tessera_net_peers_banned_total"],
        delta["tessera_net_disconnects_total"],
        delta["tessera_ingress_batches_refused_total"],
    );
    assert!(alive_throughout, "validators {gone:?} exited during the attack; the devnet printed:\n{rest}");
    assert_eq!(attacked["node_metrics_answering_at_end"], json!(true), "{attacked}");
    assert_eq!(under["agreement"], json!(true), "{under}");
    assert_eq!(under["agreement_validators"], json!(4), "{under}");
    assert_eq!(under["committed"], under["submitted"], "{under}");
    assert!(
        under["finalized_height"].as_u64().unwrap() > quiet["finalized_height"].as_u64().unwrap() / 2,
        "{under}"
    );
    assert!(rss_max.iter().all(|r| *r < 1 << 30), "RSS over 1 GiB: {rss_max:?}");
    // Twice the quiet p99, taken as at least 150 ms, plus 250 ms of slack for two shared
    // cores: the attack costs an absolute amount of CPU there, and since blocks execute into
    // deltas the quiet p99 fell from ~160 ms to ~75 ms while the attack's cost did not.
    let baseline = p99(&quiet).max(150.0);
    assert!(
        p99(&under) <= 2.0 * baseline + 250.0,
        "p99 {} under attack vs {} quiet",
        p99(&under),
        p99(&quiet)
    );
    // The attack reached the node and the node counted it: bad-signature spam lost its
    // connections to the ingress spot check, unfunded fee spam was refused for funds (before
    // verification: the pipeline verified only what it admitted), and none of it evicted an
    // honest transaction (every honest transaction committed, above).
    for counter in [
        "tessera_net_malformed_frames_total",
        "tessera_net_handshake_failures_total",
        "tessera_ingress_batches_refused_total",
        r#"tessera_rejected_transactions_total{reason="insufficient_funds"}"#,
        "tessera_rpc_websocket_notifications_total",
    ] {
        assert!(delta[counter].as_f64().unwrap_or(0.0) > 0.0, "{counter}: {attacked}");
    }
    // Every kind ran and sent something.
    let ran: Vec<&str> =
        attacked["kinds"].as_array().unwrap().iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(ran, CAMPAIGN_KINDS.split(',').collect::<Vec<_>>());
    for k in attacked["kinds"].as_array().unwrap() {
        let sent = &k["sent"];
        let total: u64 = ["frames", "consensus_messages", "requests", "txns", "connections"]
            .iter()
            .map(|field| sent[*field].as_u64().unwrap_or(0))
            .sum();
        assert!(total > 0, "{} sent nothing: {k}", k["kind"]);
    }
    // The Byzantine validator's old-view proposals were dropped before any signature work.
    let stale = "tessera_consensus_stale_proposals_total";
    assert!(delta[stale].as_f64().unwrap_or(0.0) > 0.0, "{stale}: {attacked}");
    let evicted = r#"tessera_rejected_transactions_total{reason="evicted"}"#;
    assert_eq!(delta[evicted].as_f64().unwrap_or(0.0), 0.0, "{attacked}");
    let count = |name: &str| delta[name].as_f64().unwrap_or(0.0);
    // Verdicts land a tick after verification, so the two may straddle a scrape.
    let unadmitted = count("tessera_pipeline_verified_total") - count("tessera_pipeline_admitted_total");
    assert!(unadmitted < 1000.0, "{unadmitted} verified transactions not admitted: {attacked}");
}

/// A one-validator chain of `accounts` in a fresh temporary directory named for `name`, its
/// ports from a free base at or after `start` (below the ephemeral range, 32768 and up here, as
/// the clusters' ports are: a port found free there was taken by another test's outgoing
/// connection before a restart bound it). Returns the directory and the base port.
fn one_validator_chain(name: &str, start: u16, accounts: u64) -> (PathBuf, u16) {
    let dir = std::env::temp_dir().join(format!("tessera-node-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = free_base(start);
    let out = Command::new(BIN)
        .args(["genesis", "--validators", "1", "--accounts", &accounts.to_string()])
        .args(["--base-port", &base.to_string(), "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (dir, base)
}

/// `node`'s exit status, once it exits within `timeout`; past it, the node is killed and the
/// test fails with `log()`.
fn exit_within(node: &mut Child, timeout: Duration, log: impl Fn() -> String) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = node.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > timeout {
            let _ = node.kill();
            let _ = node.wait();
            panic!("still running after {timeout:?}:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node told to stop (SIGTERM) while it opens a large data directory stops at once, as a
/// crash would stop it, and leaves nothing a restart cannot use: it used to finish building its
/// ledger first (seconds at millions of accounts, deaf to the signal), then exit 0.
#[test]
fn sigterm_while_a_node_starts_stops_it_at_once() {
    use std::os::unix::process::ExitStatusExt;
    let (dir, base) = one_validator_chain("sigterm-starting", 19_000, 2_000_000);
    let mut node = start_node(&dir, 0);
    let log = || std::fs::read_to_string(dir.join("node-0.log")).unwrap_or_default();
    wait_until("the node to open its data directory", Duration::from_secs(30), || {
        log().contains("opening data directory")
    });
    let killed = Command::new("kill").args(["-TERM", &node.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let sent = Instant::now();
    let status = exit_within(&mut node, Duration::from_secs(20), log);
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "{status:?}, stopped after {:?}:\n{}",
        sent.elapsed(),
        log()
    );
    assert!(!log().contains("node started"), "it finished starting first:\n{}", log());
    // A start cut short leaves a directory the next start opens.
    let mut again = start_node(&dir, 0);
    wait_until("the restarted node to answer", Duration::from_secs(60), || {
        try_rpc(base, 0, "tessera_getStatus", json!([])).is_some()
    });
    let _ = again.kill();
    let _ = again.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tessera attack --kind nonce-variant-spam` against a node that does not trust loopback, from
/// a loopback address that is not the validator's, so the attacker on its host is a stranger
/// with an address: of the thousands of freshly signed
/// variants it sends for its senders' next nonces, the node verifies about what it admits (one
/// body per sender and nonce a tick). With that rule removed from the prefilter, this run
/// verified 3,648 for 608 admitted.
#[test]
fn nonce_variant_spam_costs_verifications_only_for_what_is_admitted() {
    let (dir, base) = one_validator_chain("nonce-variants", 19_400, 1024);
    let config = dir.join("node-0.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("trust_loopback = true"), "{text}");
    std::fs::write(&config, text.replace("trust_loopback = true", "trust_loopback = false")).unwrap();
    let mut node = start_node(&dir, 0);
    wait_until("the node to answer", Duration::from_secs(30), || {
        try_rpc(base, 0, "tessera_getStatus", json!([])).is_some()
    });
    let out = Command::new(BIN)
        .args(["attack", "--kind", "nonce-variant-spam", "--duration", "6", "--json"])
        // Not the validator's own address (127.0.0.1), which is trusted as validators' are.
        .args(["--source", "127.0.0.2"])
        .args(["--ingress", &port(base, 0, 1).to_string()])
        .args(["--rpc", &format!("http://{}", port(base, 0, 2))])
        .arg("--genesis")
        .arg(dir.join("genesis.toml"))
        .output()
        .unwrap();
    let _ = node.kill();
    let _ = node.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kind = &report["kinds"][0];
    let delta = &kind["node_metrics_delta"];
    let count = |name: &str| delta[name].as_f64().unwrap_or(0.0);
    let (sent, verified, admitted) = (
        kind["sent"]["txns"].as_f64().unwrap_or(0.0),
        count("tessera_pipeline_verified_total"),
        count("tessera_pipeline_admitted_total"),
    );
    println!("nonce-variant spam: {sent} sent, {verified} verified, {admitted} admitted");
    assert!(sent >= 5_000.0, "{report}");
    assert!(admitted >= 16.0, "the attacker's senders got transfers in: {report}");
    // Past each sender's first two nonces: the attack follows the ledger's nonces over RPC.
    assert!(admitted > 2.0 * 16.0, "the attack read its senders' nonces as they moved: {report}");
    assert!(count(r#"tessera_rejected_transactions_total{reason="nonce_taken"}"#) > 0.0, "{report}");
    // Verdicts land a tick after verification, and a variant on its way when its nonce
    // commits is refused as stale after it: a little slack over what was admitted.
    assert!(verified <= admitted * 1.25 + 50.0, "{verified} verified for {admitted} admitted: {report}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tessera node` refuses a data directory whose tip no quorum signed: a block appended to a
/// copy of the directory with a made-up certificate passes every check of the store's own, and
/// the node used to start at it and serve it. The check is called at start
/// (`node::check_tip_signed`, whose own test covers its cases); this shows it is.
#[test]
fn a_node_refuses_to_start_at_a_tip_no_quorum_signed() {
    use tessera::storage::{Store, StoreConfig, drill};
    let (dir, _) = one_validator_chain("forged-tip", 19_500, 64);
    let genesis = tessera::node::genesis::Genesis::load(&dir.join("genesis.toml")).unwrap();
    {
        let (mut store, mut ledger, _) =
            Store::open(&dir.join("data-0"), &genesis.balances(), StoreConfig::default()).unwrap();
        // An empty block 1 on the genesis, with a commit certificate of the right shape for a
        // set of one (the validator's index) and a made-up signature.
        let (block, mut certificate) = drill::next_block(&mut ledger, store.tip_hash(), 1, 1, 0);
        certificate.signers.truncate(1);
        certificate.signatures.truncate(1);
        store.commit(&block, &certificate, &ledger).unwrap();
    }
    let mut node = start_node(&dir, 0);
    // A node that starts at the forged tip runs on: the wait fails.
    let log = || std::fs::read_to_string(dir.join("node-0.log")).unwrap_or_default();
    let status = exit_within(&mut node, Duration::from_secs(30), log);
    let log = log();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("does not verify") && log.contains("was not written by a node of this chain"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
