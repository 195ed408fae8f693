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

fn answer(call: &Value, node: &flume::Sender<Request>) -> Value {
    let (id, query) = match parse_call(call) {
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

/// The JSON-RPC response body for a raw request body.
pub fn handle_body(body: &[u8], node: &flume::Sender<Request>) -> Value {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => return error(Value::Null, code::PARSE_ERROR, "request body is not JSON"),
    };
    match &parsed {
        Value::Array(calls) if calls.is_empty() => error(Value::Null, code::INVALID_REQUEST, "empty batch"),
        Value::Array(calls) if calls.len() > BATCH_MAX => {
            error(Value::Null, code::INVALID_REQUEST, &format!("batch larger than {BATCH_MAX}"))
        }
        Value::Array(calls) => Value::Array(calls.iter().map(|call| answer(call, node)).collect()),
        call => answer(call, node),
    }
}

/// Serves JSON-RPC until the process ends.
///
/// # Errors
/// The port cannot be bound.
pub fn serve(
    address: std::net::SocketAddr,
    body_limit: usize,
    node: flume::Sender<Request>,
) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
    let server = Arc::new(
        tiny_http::Server::http(address).map_err(|error| format!("cannot listen on {address}: {error}"))?,
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
