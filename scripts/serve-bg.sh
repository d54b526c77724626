# Sourced by the scripts that test a running server (fuzz-api.sh, conformance.sh, the framework
# tests): `start_quiver` reuses the debug binary the workspace's tests build (the same features,
# so after `cargo test --workspace` nothing is compiled again), serves a fresh data folder on a
# free port, waits until it listens, and stops it and removes the folder when the script exits.
# Sets QUIVER_URL, QUIVER_PID and QUIVER_DATA (QUIVER_DATA.log is free for the caller's log).
start_quiver() {
  cargo test --workspace --locked --no-run --quiet 2> /dev/null || cargo test --workspace --locked --no-run
  QUIVER_DATA=$(mktemp -d)
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  target/debug/quiver --data-dir "$QUIVER_DATA" serve --port "$port" > "$QUIVER_DATA.out" 2> "$QUIVER_DATA.err" &
  QUIVER_PID=$!
  trap 'kill -TERM $QUIVER_PID 2>/dev/null || true; rm -rf "$QUIVER_DATA" "$QUIVER_DATA.out" "$QUIVER_DATA.err" "$QUIVER_DATA.log"' EXIT
  for _ in $(seq 1 200); do
    grep -q "quiver serving on" "$QUIVER_DATA.out" && break
    kill -0 "$QUIVER_PID" 2> /dev/null || break
    sleep 0.05
  done
  grep -q "quiver serving on" "$QUIVER_DATA.out" || { echo "error: quiver serve did not start: $(cat "$QUIVER_DATA.err")" >&2; exit 1; }
  QUIVER_URL="http://127.0.0.1:$port"
}
