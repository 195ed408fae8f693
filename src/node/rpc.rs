//! JSON-RPC 2.0 over HTTP (tiny_http), answered by the node loop.
//!
//! The HTTP thread parses and checks requests; anything that needs node state becomes a
//! [`Query`] sent to the node loop, which answers between ticks. A bad request gets its
//! JSON-RPC error and changes nothing.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_components::Txn;
use tessera_components::constants::TXN_SIZE;

/// A question for the node loop.
#[derive(Debug)]
pub enum Query {
    /// Heights, peers, mempool.
    Status,
    /// A finalized block.
    Block(u64),
    /// Up to `count` finalized blocks from `from`: height, hash and transaction ids only.
    BlockRange(u64, u64),
    /// An account.
    Account([u8; 32]),
    /// A transaction's fate.
    Transaction([u8; 32]),
    /// Submit a transaction.
    Submit(Box<Txn>),
}

/// A query with the channel its answer goes back on.
#[derive(Debug)]
pub struct Request {
    /// The question.
    pub query: Query,
    /// Where the answer goes: a result, or (code, message).
    pub reply: flume::Sender<Result<Value, (i64, String)>>,
}

/// JSON-RPC error codes.
pub mod code {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The node could not do it right now (inbox full, shutting down).
    pub const SERVER_BUSY: i64 = -32000;
}

/// Most blocks one `tessera_getBlockRange` returns.
pub const BLOCK_RANGE_MAX: u64 = 256;

/// Most requests in one batch.
const BATCH_MAX: usize = 256;

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn hex32(value: &Value) -> Option<[u8; 32]> {
    hex::decode(value.as_str()?.trim_start_matches("0x")).ok()?.try_into().ok()
}

fn first_param(params: &Value) -> Option<&Value> {
    match params {
        Value::Array(items) => items.first(),
        Value::Object(map) => map.values().next(),
        _ => None,
    }
}

/// Turns one request object into a query, or the error to answer with.
fn parse_call(call: &Value) -> Result<(Value, Query), Value> {
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    let Some(object) = call.as_object() else {
        return Err(error(Value::Null, code::INVALID_REQUEST, "request must be an object"));
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(error(id, code::INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let Some(method) = object.get("method").and_then(Value::as_str) else {
        return Err(error(id, code::INVALID_REQUEST, "method must be a string"));
    };
    let params = object.get("params").cloned().unwrap_or(Value::Array(Vec::new()));
    let bad = |what: &str| error(id.clone(), code::INVALID_PARAMS, what);
    let query = match method {
        "tessera_getStatus" => Query::Status,
        "tessera_getBlockRange" => {
            let numbers = params.as_array().map(|items| items.iter().map(Value::as_u64).collect::<Vec<_>>());
            let (from, count) = match numbers.as_deref() {
                Some([Some(from), Some(count)]) if (1..=BLOCK_RANGE_MAX).contains(count) => (*from, *count),
                _ => return Err(bad(&format!("expected [from_height, count (1..={BLOCK_RANGE_MAX})]"))),
            };
            Query::BlockRange(from, count)
        }
        "tessera_getBlockByHeight" => {
            let height =
                first_param(&params).and_then(Value::as_u64).ok_or_else(|| bad("expected [height]"))?;
            Query::Block(height)
        }
        "tessera_getAccount" => Query::Account(
            first_param(&params).and_then(hex32).ok_or_else(|| bad("expected [address: 64 hex digits]"))?,
        ),
        "tessera_getTransaction" => Query::Transaction(
            first_param(&params).and_then(hex32).ok_or_else(|| bad("expected [id: 64 hex digits]"))?,
        ),
        "tessera_sendTransaction" => {
            let text = first_param(&params)
                .and_then(Value::as_str)
                .ok_or_else(|| bad("expected [transaction hex]"))?;
            let bytes =
                hex::decode(text.trim_start_matches("0x")).map_err(|_| bad("transaction is not hex"))?;
            if bytes.len() != TXN_SIZE {
                return Err(bad(&format!("transaction must be {TXN_SIZE} bytes, got {}", bytes.len())));
            }
            Query::Submit(Box::new(bytemuck::pod_read_unaligned(&bytes)))
        }
        _ => return Err(error(id, code::METHOD_NOT_FOUND, &format!("unknown method {method}"))),
    };
    Ok((id, query))
}

fn answer(call: Result<(Value, Query), Value>, node: &flume::Sender<Request>) -> Value {
    let (id, query) = match call {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let (reply, answer) = flume::bounded(1);
    if node.send(Request { query, reply }).is_err() {
        return error(id, code::SERVER_BUSY, "node is shutting down");
    }
    match answer.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(result)) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Ok(Err((code, message))) => error(id, code, &message),
        Err(_) => error(id, code::SERVER_BUSY, "node did not answer in time"),
    }
}

/// One call of a request body: its id and query, or the error response to answer it with.
pub type ParsedCall = Result<(Value, Query), Value>;

/// A request body, parsed and checked without touching node state.
#[derive(Debug)]
pub enum ParsedBody {
    /// A single call.
    Single(ParsedCall),
    /// A batch of 1 to 256 calls, answered as an array in the same order.
    Batch(Vec<ParsedCall>),
}

/// Parses a raw request body: JSON, batch limits, and each call's method and parameters.
///
/// # Errors
/// The response for a body that is not JSON (-32700), or an empty or oversized batch (-32600).
pub fn parse_body(body: &[u8]) -> Result<ParsedBody, Value> {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => return Err(error(Value::Null, code::PARSE_ERROR, "request body is not JSON")),
    };
    match &parsed {
        Value::Array(calls) if calls.is_empty() => {
            Err(error(Value::Null, code::INVALID_REQUEST, "empty batch"))
        }
        Value::Array(calls) if calls.len() > BATCH_MAX => {
            Err(error(Value::Null, code::INVALID_REQUEST, &format!("batch larger than {BATCH_MAX}")))
        }
        Value::Array(calls) => Ok(ParsedBody::Batch(calls.iter().map(parse_call).collect())),
        call => Ok(ParsedBody::Single(parse_call(call))),
    }
}

/// The JSON-RPC response body for a raw request body.
pub fn handle_body(body: &[u8], node: &flume::Sender<Request>) -> Value {
    match parse_body(body) {
        Err(response) => response,
        Ok(ParsedBody::Single(call)) => answer(call, node),
        Ok(ParsedBody::Batch(calls)) => {
            Value::Array(calls.into_iter().map(|call| answer(call, node)).collect())
        }
    }
}

/// Fuzz harness for request bodies: [`parse_body`] never panics, every error is a JSON-RPC 2.0
/// error object with one of the four request-error codes and the request's id (null when there
/// is none to echo), a batch holds 1 to 256 calls, and every accepted call's parameters are
/// within their documented ranges. Run by `cargo test` on seeded inputs and by
/// `fuzz/fuzz_targets/rpc_body.rs`.
pub fn fuzz_body(data: &[u8]) {
    let check_error = |response: &Value, id: Option<&Value>| {
        assert_eq!(response["jsonrpc"], "2.0");
        let error_code = response["error"]["code"].as_i64().expect("an error has a numeric code");
        assert!(
            [code::PARSE_ERROR, code::INVALID_REQUEST, code::METHOD_NOT_FOUND, code::INVALID_PARAMS]
                .contains(&error_code),
            "unexpected error code {error_code}"
        );
        assert!(response["error"]["message"].is_string());
        if let Some(id) = id {
            assert_eq!(&response["id"], id, "error does not echo the request id");
        }
    };
    let calls: Vec<Value> = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Array(calls)) => calls,
        Ok(call) => vec![call],
        Err(_) => Vec::new(),
    };
    let parsed = match parse_body(data) {
        Err(response) => {
            check_error(&response, Some(&Value::Null));
            return;
        }
        Ok(ParsedBody::Single(call)) => vec![call],
        Ok(ParsedBody::Batch(parsed)) => {
            assert!((1..=BATCH_MAX).contains(&parsed.len()), "batch of {}", parsed.len());
            parsed
        }
    };
    assert_eq!(parsed.len(), calls.len(), "one parse per call");
    for (call, request) in parsed.iter().zip(&calls) {
        let id = request.as_object().map(|object| object.get("id").cloned().unwrap_or(Value::Null));
        match call {
            Err(response) => check_error(response, Some(id.as_ref().unwrap_or(&Value::Null))),
            Ok((echo, query)) => {
                assert_eq!(Some(echo), id.as_ref(), "a call's id is echoed");
                if let Query::BlockRange(_, count) = query {
                    assert!((1..=BLOCK_RANGE_MAX).contains(count));
                }
            }
        }
    }
}

/// Serves JSON-RPC until the process ends.
///
/// # Errors
/// The port cannot be bound.
pub fn serve(
    address: std::net::SocketAddr,
    body_limit: usize,
    limits: tiny_http::ConnectionLimits,
    node: flume::Sender<Request>,
) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
    let server = Arc::new(
        tiny_http::Server::http_limited(address, limits)
            .map_err(|error| format!("cannot listen on {address}: {error}"))?,
    );
    let mut threads = Vec::new();
    for worker in 0..2 {
        let server = server.clone();
        let node = node.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("tessera-rpc-{worker}"))
                .spawn(move || {
                    for mut request in server.incoming_requests() {
                        let json = tiny_http::Header::from_bytes("Content-Type", "application/json")
                            .expect("static header");
                        if *request.method() != tiny_http::Method::Post {
                            let _ = request.respond(
                                tiny_http::Response::from_string("{\"error\":\"use POST\"}\n")
                                    .with_status_code(405)
                                    .with_header(json),
                            );
                            continue;
                        }
                        // The body must come with its length, and not behind `Expect`: then
                        // tiny_http reads it on the connection's own thread (see
                        // vendor/tiny_http), and a client trickling it cannot hold one of these
                        // two threads.
                        let expects = request.headers().iter().any(|h| h.field.equiv("Expect"));
                        if request.body_length().is_none()
                            && request.headers().iter().any(|h| h.field.equiv("Transfer-Encoding"))
                            || expects
                        {
                            let _ = request.respond(
                                tiny_http::Response::from_string("send the body with a Content-Length\n")
                                    .with_status_code(411),
                            );
                            continue;
                        }
                        if request.body_length().is_some_and(|length| length > body_limit) {
                            let _ = request.respond(
                                tiny_http::Response::from_string("request body too large\n")
                                    .with_status_code(413),
                            );
                            continue;
                        }
                        // Read at most one byte past the limit: a chunked body that runs over is
                        // refused without being buffered whole.
                        let mut body = Vec::new();
                        let read = request.as_reader().take(body_limit as u64 + 1).read_to_end(&mut body);
                        if read.is_err() {
                            continue;
                        }
                        if body.len() > body_limit {
                            let _ = request.respond(
                                tiny_http::Response::from_string("request body too large\n")
                                    .with_status_code(413),
                            );
                            continue;
                        }
                        let response = handle_body(&body, &node);
                        let _ = request.respond(
                            tiny_http::Response::from_string(response.to_string()).with_header(json),
                        );
                    }
                })
                .expect("spawn rpc thread"),
        );
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use super::{Query, Request, serve};

    /// A server on a free port below 32768 whose node answers every status query.
    fn server() -> SocketAddr {
        let addr = (30900..31000)
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .find(|addr| std::net::TcpListener::bind(addr).is_ok())
            .expect("a free port");
        let (node, queries) = flume::bounded::<Request>(16);
        std::thread::spawn(move || {
            for request in queries.iter() {
                if let Query::Status = request.query {
                    let _ = request.reply.send(Ok(serde_json::json!({"height": 1})));
                }
            }
        });
        serve(addr, 1 << 20, limits(8), node).expect("serve");
        addr
    }

    fn limits(max_open: usize) -> tiny_http::ConnectionLimits {
        tiny_http::ConnectionLimits {
            max_open,
            idle_timeout: Duration::from_secs(1),
            stats: std::sync::Arc::default(),
        }
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(request).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    }

    fn status(addr: SocketAddr) -> String {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getStatus","params":[]}"#;
        exchange(
            addr,
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    }

    /// Regression: tiny_http 0.12.0 drained an unread body into a buffer of the declared size,
    /// so this one request aborted the whole process; and two clients trickling bodies held
    /// both request threads, so nobody else got an answer.
    #[test]
    fn huge_declared_bodies_and_trickled_bodies_do_not_stop_rpc() {
        let addr = server();
        let huge = exchange(
            addr,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\nConnection: close\r\n\r\n{\"jsonrpc\"",
        );
        assert!(huge.starts_with("HTTP/1.1 413"), "{huge}");
        let chunked = exchange(
            addr,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\n{\r\n",
        );
        assert!(chunked.starts_with("HTTP/1.1 411"), "{chunked}");
        // Four slow clients, each one byte into a body of 1000.
        let slow: Vec<TcpStream> = (0..4)
            .map(|_| {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{").unwrap();
                stream
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let start = Instant::now();
        let answer = status(addr);
        assert!(answer.contains("\"height\":1"), "{answer}");
        assert!(start.elapsed() < Duration::from_secs(2), "answered after {:?}", start.elapsed());
        drop(slow);
    }

    /// Regression: every connection got a thread for as long as its client kept it open, with
    /// no cap and no timeout, so idle connections alone grew threads without bound.
    #[test]
    fn connections_past_the_cap_are_refused_and_idle_ones_time_out() {
        let addr = server();
        let idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(300));
        let refused = status(addr);
        assert!(refused.is_empty(), "a ninth connection was served: {refused}");
        let start = Instant::now();
        for mut stream in idle {
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).expect("the server closes an idle connection");
        }
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "idle connections closed after {:?}",
            start.elapsed()
        );
        // Their slots come back once each connection's thread is done.
        let served = (0..20).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            status(addr).contains("\"height\":1")
        });
        assert!(served, "no slot came back after the idle connections closed");
    }

    /// A client trickling its request headers a byte at a time is closed at the deadline for
    /// the whole request, not kept for as long as bytes keep coming.
    #[test]
    fn a_trickled_request_is_closed_at_its_deadline() {
        let addr = server();
        let mut stream = TcpStream::connect(addr).unwrap();
        let start = Instant::now();
        let closed = b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle().take(100).any(|byte| {
            std::thread::sleep(Duration::from_millis(100));
            stream.write_all(&[*byte]).is_err()
        });
        assert!(closed, "still open after {:?}", start.elapsed());
        assert!(start.elapsed() < Duration::from_secs(4), "closed after {:?}", start.elapsed());
    }

    /// A client that pipelines requests has one buffered at a time: the next is read only when
    /// the previous one is answered, and all are answered in order.
    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let addr = server();
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getStatus","params":[]}"#;
        let one = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        let last = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let request = one.repeat(15) + &last;
        let response = exchange(addr, request.as_bytes());
        assert_eq!(response.matches("HTTP/1.1 200").count(), 16, "{response}");
    }

    use tessera_components::fuzz::{FuzzSeeds, fuzz_corpus};

    use super::*;

    /// Bodies a client sends, good and bad, for the seeded run to mutate.
    pub(crate) fn sample_bodies() -> Vec<Vec<u8>> {
        let txn = "00".repeat(TXN_SIZE);
        let address = "ab".repeat(32);
        [
            r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getStatus"}"#.to_string(),
            r#"{"jsonrpc":"2.0","id":"a","method":"tessera_getBlockByHeight","params":[3]}"#.to_string(),
            r#"{"jsonrpc":"2.0","id":2,"method":"tessera_getBlockRange","params":[1,256]}"#.to_string(),
            format!(r#"{{"jsonrpc":"2.0","id":3,"method":"tessera_getAccount","params":{{"address":"0x{address}"}}}}"#),
            format!(r#"[{{"jsonrpc":"2.0","id":4,"method":"tessera_sendTransaction","params":["{txn}"]}},{{"jsonrpc":"2.0","method":"tessera_getTransaction","params":["{address}"]}},7]"#),
            r#"{"jsonrpc":"1.0","id":null,"method":"nope"}"#.to_string(),
            "[]".to_string(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect()
    }

    #[test]
    fn parse_body_keeps_the_error_codes() {
        let code_of = |body: &str| match parse_body(body.as_bytes()) {
            Err(response) => response["error"]["code"].as_i64(),
            Ok(ParsedBody::Single(Err(response))) => response["error"]["code"].as_i64(),
            Ok(_) => None,
        };
        assert_eq!(code_of("{"), Some(code::PARSE_ERROR));
        assert_eq!(code_of("[]"), Some(code::INVALID_REQUEST));
        assert_eq!(
            code_of(&format!("[{}]", vec!["1"; BATCH_MAX + 1].join(","))),
            Some(code::INVALID_REQUEST)
        );
        assert_eq!(code_of(r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#), Some(code::METHOD_NOT_FOUND));
        assert_eq!(
            code_of(r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getBlockRange","params":[1,0]}"#),
            Some(code::INVALID_PARAMS)
        );
        assert_eq!(code_of(r#"{"jsonrpc":"2.0","id":1,"method":"tessera_getStatus"}"#), None);
    }

    #[test]
    fn fuzz_body_survives_seeded_inputs() {
        let samples = sample_bodies();
        let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
        tessera_components::fuzz::fuzz_write_seeds("rpc_body", &refs);
        let mut seeds = FuzzSeeds::new(0x4a50);
        for round in 0..3000 {
            fuzz_body(&seeds.mutate(&samples[round % samples.len()]));
        }
        for input in samples.iter().chain(&fuzz_corpus("rpc_body")) {
            fuzz_body(input);
        }
    }
}
