#!/usr/bin/env bash
# Cross-language interop tests: starts a mediastore server binary on a free
# loopback port with a fresh data dir, then runs the Python suite and the
# Node suite against it, and last a second server with mutual TLS
# (certificates from the openssl command line) for the Python mTLS suite.
#
#   bash tests/interop/run.sh PATH_TO_MEDIASTORE_BINARY
#
# Needs python3 (3.9+) with venv, node 20+ with npm, and openssl. Installs into
# .venv-interop/ and tests/interop/node/node_modules/ (both git-ignored) the
# first time; later runs reuse them. MEDIASTORE_DATABASE_URL, if set, is
# passed to the server (e.g. a PostgreSQL database); otherwise the server
# uses SQLite in the temp data dir.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: bash tests/interop/run.sh PATH_TO_MEDIASTORE_BINARY" >&2
  exit 2
fi
BIN=$(realpath "$1")
if [ ! -x "$BIN" ]; then
  echo "run.sh: $1 is not an executable file" >&2
  exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
VENV="$ROOT/.venv-interop"
PY_DIR=tests/interop/python
GEN="$PY_DIR/gen"
NODE_DIR=tests/interop/node

# --- Python: venv, pinned packages (skipped when already installed), stubs.
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
REQ_SUM=$(sha256sum "$PY_DIR/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)" != "$REQ_SUM" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PY_DIR/requirements.txt"
  echo "$REQ_SUM" > "$VENV/.requirements.sha256"
fi
rm -rf "$GEN"
mkdir -p "$GEN"
"$VENV/bin/python" -m grpc_tools.protoc -I proto --python_out="$GEN" --pyi_out="$GEN" \
  --grpc_python_out="$GEN" proto/mediastore/v1/*.proto

# --- Node: packages from package-lock.json when node_modules is missing.
if [ ! -d "$NODE_DIR/node_modules" ]; then
  (cd "$NODE_DIR" && npm install --no-audit --no-fund)
fi

# --- Server: a free port, a temp data dir, cleaned up however we exit.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mediastore-interop.XXXXXX")
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
ADDR="127.0.0.1:$PORT"
MEDIASTORE_ALLOWED_TYPES='*' "$BIN" --listen "$ADDR" --data-dir "$TMP/data" serve \
  > "$TMP/server.log" 2>&1 &
SERVER_PID=$!

server_log() {
  echo "---- server log (last 50 lines) ----" >&2
  tail -n 50 "$TMP/server.log" >&2 || true
}

# Ready when grpc.health.v1.Health/Check answers SERVING (30 s at most).
if ! MEDIASTORE_ADDR="$ADDR" SERVER_PID="$SERVER_PID" "$VENV/bin/python" - <<'PY'
import os, sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

addr, pid = os.environ["MEDIASTORE_ADDR"], int(os.environ["SERVER_PID"])
end = time.monotonic() + 30
with grpc.insecure_channel(addr) as ch:
    stub = health_pb2_grpc.HealthStub(ch)
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit("run.sh: the server exited before it was ready")
        try:
            r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            if r.status == health_pb2.HealthCheckResponse.SERVING:
                sys.exit(0)
        except grpc.RpcError:
            pass
        time.sleep(0.1)
sys.exit("run.sh: the server did not report SERVING within 30 s")
PY
then
  server_log
  exit 1
fi
echo "run.sh: mediastore serving on $ADDR (data in $TMP/data)"

export MEDIASTORE_ADDR="$ADDR"
# The admin key the server's first start wrote.
MEDIASTORE_KEY=$(cat "$TMP/data/admin.key")
export MEDIASTORE_KEY
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "==== Python suite ===="
t0=$(now)
py_rc=0
MEDIASTORE_PY_GEN="$ROOT/$GEN" "$VENV/bin/python" "$PY_DIR/test_interop.py" || py_rc=$?
py_time=$(elapsed "$t0" "$(now)")

echo "==== Node suite ===="
t0=$(now)
node_rc=0
node --test "$NODE_DIR/interop.test.js" || node_rc=$?
node_time=$(elapsed "$t0" "$(now)")

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "run.sh: the server died during the tests" >&2
  server_log
  exit 1
fi
if [ "$py_rc" -ne 0 ] || [ "$node_rc" -ne 0 ]; then
  server_log
fi

# --- Mutual TLS: certificates made by the openssl command line, a second
# server with TLS on the same database, gRPC Python as the client.
echo "==== Python mutual TLS suite ===="
TLS="$TMP/tls"
mkdir -p "$TLS"
new_ca() { # NAME COMMON_NAME
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$TLS/$1.key" -out "$TLS/$1.pem" -subj "/CN=$2" 2>/dev/null
}
new_cert() { # NAME CA SUBJECT EXTENSIONS
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TLS/$1.key" -out "$TLS/$1.csr" -subj "$3" 2>/dev/null
  printf '%b\n' "$4" > "$TLS/$1.ext"
  openssl x509 -req -in "$TLS/$1.csr" -CA "$TLS/$2.pem" -CAkey "$TLS/$2.key" \
    -CAcreateserial -days 2 -extfile "$TLS/$1.ext" -out "$TLS/$1.pem" 2>/dev/null
}
new_ca ca "Interop CA"
new_ca other-ca "Other CA"
new_cert server ca "/CN=mediastore" "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth"
new_cert client ca "/O=Acme/OU=Media/CN=python-client" "extendedKeyUsage=clientAuth"
new_cert stranger ca "/O=Acme/CN=stranger" "extendedKeyUsage=clientAuth"
new_cert foreign other-ca "/O=Acme/OU=Media/CN=python-client" "extendedKeyUsage=clientAuth"
# The subject as the README tells operators to read it.
openssl x509 -in "$TLS/client.pem" -noout -subject -nameopt RFC2253 \
  | sed 's/^subject=//' > "$TLS/client.subject"
cat > "$TLS/principals.json" <<JSON
{"principals": [{"subject": "$(cat "$TLS/client.subject")", "tenant": "default",
  "role": "interop", "scopes": ["media:read", "uploads:write"]}]}
JSON
TLS_PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
TLS_ADDR="127.0.0.1:$TLS_PORT"
TLS_DB=()
if [ -n "${MEDIASTORE_DATABASE_URL:-}" ]; then
  TLS_DB=(--database-url "$MEDIASTORE_DATABASE_URL")
else
  TLS_DB=(--database-url "sqlite://$TMP/data/mediastore.db")
fi
MEDIASTORE_ALLOWED_TYPES='*' "$BIN" --listen "$TLS_ADDR" --data-dir "$TMP/data-tls" \
  "${TLS_DB[@]}" --tls-cert "$TLS/server.pem" --tls-key "$TLS/server.key" \
  --tls-client-ca "$TLS/ca.pem" --tls-principals "$TLS/principals.json" serve \
  > "$TMP/server-tls.log" 2>&1 &
TLS_PID=$!
tls_rc=0
if ! MEDIASTORE_TLS_ADDR="$TLS_ADDR" MEDIASTORE_TLS_DIR="$TLS" "$VENV/bin/python" - <<'PY'
import os, sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

d = os.environ["MEDIASTORE_TLS_DIR"]
read = lambda n: open(os.path.join(d, n), "rb").read()
creds = grpc.ssl_channel_credentials(read("ca.pem"), read("client.key"), read("client.pem"))
opts = [("grpc.ssl_target_name_override", "localhost")]
end = time.monotonic() + 30
with grpc.secure_channel(os.environ["MEDIASTORE_TLS_ADDR"], creds, options=opts) as ch:
    while time.monotonic() < end:
        try:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
            sys.exit(0)
        except grpc.RpcError:
            time.sleep(0.1)
sys.exit("run.sh: the TLS server did not answer within 30 s")
PY
then
  tls_rc=1
else
  MEDIASTORE_PY_GEN="$ROOT/$GEN" MEDIASTORE_TLS_ADDR="$TLS_ADDR" MEDIASTORE_TLS_DIR="$TLS" \
    "$VENV/bin/python" "$PY_DIR/test_mtls.py" || tls_rc=$?
fi
kill -TERM "$TLS_PID" 2>/dev/null || true
wait "$TLS_PID" 2>/dev/null || true
if [ "$tls_rc" -ne 0 ]; then
  echo "---- TLS server log (last 50 lines) ----" >&2
  tail -n 50 "$TMP/server-tls.log" >&2 || true
fi

py_word=$([ "$py_rc" -eq 0 ] && echo passed || echo FAILED)
node_word=$([ "$node_rc" -eq 0 ] && echo passed || echo FAILED)
tls_word=$([ "$tls_rc" -eq 0 ] && echo passed || echo FAILED)
echo "run.sh: python suite $py_word (${py_time} s), node suite $node_word (${node_time} s), mutual TLS suite $tls_word"
[ "$py_rc" -eq 0 ] && [ "$node_rc" -eq 0 ] && [ "$tls_rc" -eq 0 ]
