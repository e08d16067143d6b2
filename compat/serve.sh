# Sourced by the compat scripts: builds `lakeport` and starts `lakeport serve` on a fresh data
# directory (embedded default, or what LAKEPORT__* variables say), stopped and removed on exit.
#   start_lakeport <port> <token>     sets $data (the data directory) and $pid; the Query
#                                     Service's wire endpoint listens on <port>+1
#                                     (exported as LAKEPORT_QUERY_PORT)
start_lakeport() {
  local port=$1 token=$2
  # CI names the binary its test build made (LAKEPORT_BIN); a `cargo build -p lakeport`
  # there would resolve other features and compile much of the workspace again.
  local binary=${LAKEPORT_BIN:-}
  if [ -z "$binary" ]; then
    cargo build --quiet -p lakeport
    binary=./target/debug/lakeport
  fi
  data=$(mktemp -d)
  export LAKEPORT_QUERY_PORT=$((port + 1))
  LAKEPORT__QUERY__LISTEN="127.0.0.1:$LAKEPORT_QUERY_PORT" "$binary" serve --listen "127.0.0.1:$port" --data-dir "$data" --token "$token" > "$data/server.log" 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"' EXIT
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null && return 0
    sleep 0.1
  done
  echo "lakeport serve did not answer /health on port $port within 10 s:" >&2
  cat "$data/server.log" >&2
  return 1
}
