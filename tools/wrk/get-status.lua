-- wrk script: every request is a JSON-RPC tessera_getStatus call.
--   wrk -t2 -c50 -d15s --latency -s tools/wrk/get-status.lua http://127.0.0.1:38002/
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tessera_getStatus","params":[]}'
wrk.headers["Content-Type"] = "application/json"
