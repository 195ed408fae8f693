//! JSON-RPC abuse over raw HTTP/1.1: malformed requests and oversized bodies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Kind, Limits, Pacer, Rng, Tally, Target};

/// Bytes of a response read at most.
const RESPONSE_MAX: u64 = 1 << 20;

/// Sends `request` on a fresh connection and reads the response until the server closes it;
/// returns (status, body). For the tool's own reads (positions, nonces, metrics): made from
/// the system's address, never `--source`, so the attack's own traffic does not crowd them
/// out of the node's per-address caps.
///
/// # Errors
/// Connection or I/O failure before any response.
pub fn raw(addr: SocketAddr, request: &[u8], timeout: Duration) -> std::io::Result<(u16, String)> {
    exchange(TcpStream::connect_timeout(&addr, timeout)?, request, timeout)
}

fn exchange(mut stream: TcpStream, request: &[u8], timeout: Duration) -> std::io::Result<(u16, String)> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request)?;
    read_response(&mut stream)
}

fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut response = Vec::new();
    let read = stream.take(RESPONSE_MAX).read_to_end(&mut response);
    if response.is_empty() {
        read?;
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response"));
    }
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    Ok((status, body))
}

/// One JSON-RPC call over a fresh connection; its `result`, or `None` on any failure.
pub fn call(rpc: SocketAddr, body: &str) -> Option<Value> {
    let (_, text) = raw(rpc, &post(body.as_bytes()), Duration::from_secs(2)).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    Some(value.get("result")?.clone())
}

/// JSON-RPC `calls` as one batch over one fresh connection: each call's `result`, in order
/// (`None` for one answered with an error), or `None` on any failure of the exchange. One
/// round trip and one timeout for all, where a call each could stall for a timeout each.
pub fn call_batch(rpc: SocketAddr, calls: &[String]) -> Option<Vec<Option<Value>>> {
    let body = format!("[{}]", calls.join(","));
    let (_, text) = raw(rpc, &post(body.as_bytes()), Duration::from_secs(2)).ok()?;
    let Value::Array(answers) = serde_json::from_str(&text).ok()? else { return None };
    (answers.len() == calls.len())
        .then(|| answers.into_iter().map(|answer| answer.get("result").cloned()).collect())
}

fn post(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The malformed requests, in turn.
fn malformed(case: u64, rng: &mut Rng) -> Vec<u8> {
    match case % 14 {
        0 => post(b"{not json"),
        1 => post(br#"{"jsonrpc":"2.0","id":1,"method":"no_such_method"}"#),
        2 => post(br#"{"jsonrpc":"2.0","id":1,"method":"tessera_getBlockByHeight","params":["x"]}"#),
        3 => post(br#"{"jsonrpc":"2.0","id":1,"method":"tessera_sendTransaction","params":["zz"]}"#),
        4 => post(br#"{"id":1,"method":"tessera_getStatus"}"#),
        5 => post(b"[]"),
        6 => {
            // A batch one over the node's maximum.
            let call = r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getStatus"}"#;
            post(format!("[{}]", vec![call; 257].join(",")).as_bytes())
        }
        7 => {
            // Deep nesting: far past any sane recursion limit.
            let mut body = vec![b'['; 100_000];
            body.extend(std::iter::repeat_n(b']', 100_000));
            post(&body)
        }
        8 => {
            let mut body = vec![0u8; 256];
            rng.fill(&mut body);
            post(&body)
        }
        9 => post(br#"{"jsonrpc":"2.0","id":1,"method":"tessera_getBlockRange","params":[0, 18446744073709551615]}"#),
        10 => b"GET / HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n".to_vec(),
        11 => b"NONSENSE\r\n\r\n".to_vec(),
        12 => {
            // A batch of the largest size, every call bad.
            let call = r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getAccount","params":["nothex"]}"#;
            post(format!("[{}]", vec![call; 256].join(",")).as_bytes())
        }
        _ => b"POST / HTTP/1.1\r\nHost: node\r\nContent-Length: -5\r\nConnection: close\r\n\r\n{}".to_vec(),
    }
}

/// Counts the response's HTTP status and JSON-RPC error codes.
fn record(tally: &mut Tally, status: u16, body: &str) {
    *tally.http_status.entry(status).or_default() += 1;
    let Ok(value) = serde_json::from_str::<Value>(body) else { return };
    let replies = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    for reply in replies {
        if let Some(code) = reply["error"]["code"].as_i64() {
            *tally.rpc_errors.entry(code).or_default() += 1;
        }
    }
}

/// Writes an oversized request: a body over any sane limit, declared, chunked, or only
/// promised. The node should answer 413 (or close) without buffering it.
fn oversized(addr: SocketAddr, case: u64, tally: &mut Tally) -> std::io::Result<()> {
    let mut stream = super::connect_from_source(&addr, Duration::from_secs(2))?;
    tally.connections += 1;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let filler = vec![b' '; 64 << 10];
    let body_bytes: usize = 3 << 20;
    let header = match case % 3 {
        0 => format!(
            "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: {body_bytes}\r\nConnection: close\r\n\r\n"
        ),
        1 => "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: 1099511627776\r\nConnection: close\r\n\r\n".to_owned(),
        _ => "POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_owned(),
    };
    stream.write_all(header.as_bytes())?;
    tally.requests += 1;
    tally.bytes += header.len() as u64;
    let mut sent = 0;
    // The body (or its chunks) until the node stops taking it.
    while sent < body_bytes {
        let written = if case % 3 == 2 {
            let chunk = format!("{:x}\r\n", filler.len());
            stream
                .write_all(chunk.as_bytes())
                .and_then(|()| stream.write_all(&filler))
                .and_then(|()| stream.write_all(b"\r\n"))
        } else {
            stream.write_all(&filler)
        };
        if written.is_err() {
            break;
        }
        sent += filler.len();
        tally.bytes += filler.len() as u64;
    }
    if case % 3 == 2 && sent >= body_bytes {
        let _ = stream.write_all(b"0\r\n\r\n");
    }
    match read_response(&mut stream) {
        Ok((status, body)) => record(tally, status, &body),
        Err(_) => tally.closed_by_node += 1,
    }
    Ok(())
}

/// Runs an RPC kind until `deadline`.
pub fn run(kind: Kind, target: &Target, limits: &Limits, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let Some(addr) = target.rpc else { return tally };
    let mut rng = Rng::new(limits.seed ^ 0x0072_7063);
    let mut pacer = Pacer::new(limits.connect_rate);
    let mut case = 0u64;
    while Instant::now() < deadline {
        pacer.wait(1);
        match kind {
            Kind::RpcOversized => {
                if oversized(addr, case, &mut tally).is_err() {
                    tally.connect_failures += 1;
                }
            }
            _ => {
                let request = malformed(case, &mut rng);
                tally.requests += 1;
                tally.bytes += request.len() as u64;
                let timeout = Duration::from_secs(5);
                // A connection that never opened (refused, timed out, or a local bind that
                // failed) is not one the node closed.
                match super::connect_from_source(&addr, timeout) {
                    Err(_) => tally.connect_failures += 1,
                    Ok(stream) => {
                        tally.connections += 1;
                        match exchange(stream, &request, timeout) {
                            Ok((status, body)) => record(&mut tally, status, &body),
                            Err(_) => tally.closed_by_node += 1,
                        }
                    }
                }
            }
        }
        case += 1;
    }
    tally
}
