#!/usr/bin/env bash
# Run fedmarket on Flower's deployment engine on this machine: one SuperLink (TLS, SuperNode
# authentication) and N SuperNodes, each given only its own retailer's raw export.
#
#   scripts/run_deployment.sh N [OUT_DIR]
#
# OUT_DIR (default runs/deploy-<UTC time>) receives:
#   certs/            private CA, SuperLink certificate/key, supernodes/supernode-<i>.key|.pub
#   raw/retailer_XX/  synthetic raw exports, one directory per retailer (unless RAW_DIR is set)
#   keys/             one pseudonym key per retailer (0600, outside the data)
#   superlink/        state.db, superlink.log            supernode-<i>/  supernode.log
#   cli/              the flwr CLI's config (FLWR_HOME) with the TLS connection
#   run/              the run directory: config.json, rounds.csv, federated.json,
#                     summary.json, report.md, checkpoints/ (no centralised reference)
#
# Environment (all optional):
#   PORT=39501            SuperLink port (Fleet, Control and Runtime APIs share it)
#   ROUNDS=3              num-server-rounds
#   RUN_CONFIG="..."      extra --run-config overrides, e.g. "model='lstm' dp='none'"
#   APP=scripts/secagg_app       run the SecAgg+ variant (secure aggregation) instead of the main app
#   RAW_DIR=DIR           existing exports, one sub-directory per retailer (the first N are used)
#   CUSTOMERS=2000 DAYS=120 SEED=0   size of the synthetic retailers
#   PYTHON_BIN=.venv/bin  where fedmarket, flwr, flower-superlink, flower-supernode live
#   TIMEOUT=1800          seconds before the whole run is abandoned
#
# Every process started here is stopped on exit; the exit status is non-zero if any step,
# the run or the results failed.
set -euo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 && $# -le 2 && "$1" =~ ^[0-9]+$ && "$1" -ge 1 ]] || usage
N=$1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${2:-$REPO/runs/deploy-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
PORT=${PORT:-39501}
ROUNDS=${ROUNDS:-3}
TIMEOUT=${TIMEOUT:-1800}
BIN=${PYTHON_BIN:-$REPO/.venv/bin}
[[ -x "$BIN/flower-superlink" ]] || BIN=$(dirname "$(command -v flower-superlink || echo /nonexistent/x)")
for tool in fedmarket flwr flower-superlink flower-supernode; do
  [[ -x "$BIN/$tool" ]] || { echo "error: $tool not found in $BIN (set PYTHON_BIN or pip install -e .)" >&2; exit 2; }
done
[[ -e "$OUT/run/summary.json" ]] && { echo "error: $OUT already holds a finished run; choose another OUT_DIR" >&2; exit 2; }

export PATH="$BIN:$PATH" FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
FED=fedmarket-deploy
PIDS=()
log() { printf '[deploy %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

stop_all() {
  local status=$?
  trap - EXIT INT TERM
  local pid kids=()
  for pid in "${PIDS[@]}"; do  # the SuperExec helpers each component spawned, by parent id
    kids+=($(pgrep -P "$pid" 2>/dev/null || true))
  done
  for pid in "${PIDS[@]}" "${kids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 20); do
    local alive=0
    for pid in "${PIDS[@]}" "${kids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.5
  done
  for pid in "${PIDS[@]}" "${kids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [[ ${#PIDS[@]} -gt 0 ]] && log "stopped SuperLink and SuperNodes"
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# 1. Certificates and SuperNode keys (kept if OUT_DIR already has them).
log "certificates and SuperNode keys in $OUT/certs"
fedmarket certs --out "$OUT/certs" --hosts "${SUPERLINK_HOSTS:-localhost}" --nodes "$N" >/dev/null

# 2. One raw export per retailer.
if [[ -n "${RAW_DIR:-}" ]]; then
  mapfile -t EXPORTS < <(find "$RAW_DIR" -mindepth 1 -maxdepth 1 -type d ! -name '.*' ! -name '*.fedmarket' | sort | head -n "$N")
  [[ ${#EXPORTS[@]} -eq $N ]] || { echo "error: $RAW_DIR has ${#EXPORTS[@]} retailer directories, need $N" >&2; exit 2; }
else
  if [[ ! -f "$OUT/raw/synth.json" ]]; then
    log "synthesising $N retailers into $OUT/raw"
    fedmarket data synth --out "$OUT/raw" --retailers "$N" --customers "${CUSTOMERS:-2000}" \
      --days "${DAYS:-120}" --seed "${SEED:-0}" >/dev/null
  fi
  mapfile -t EXPORTS < <(find "$OUT/raw" -mindepth 1 -maxdepth 1 -type d ! -name '*.fedmarket' | sort)
fi
mkdir -p "$OUT/keys" && chmod 700 "$OUT/keys"
for i in $(seq 0 $((N - 1))); do
  [[ -f "$OUT/keys/retailer-$i.key" ]] || "$BIN/python" -c \
    "import sys; from fedmarket.data.protect.keys import create_key_file; create_key_file(sys.argv[1], 'hmac')" \
    "$OUT/keys/retailer-$i.key"
done

# 3. SuperLink: TLS on one port, only registered SuperNodes may connect.
mkdir -p "$OUT/superlink" "$OUT/cli"
rm -f "$OUT/superlink/state.db"
log "starting SuperLink on 127.0.0.1:$PORT (TLS, SuperNode authentication)"
FLWR_HOME="$OUT/superlink/flwr-home" flower-superlink \
  --ssl-ca-certfile "$OUT/certs/ca.crt" --ssl-certfile "$OUT/certs/server.crt" \
  --ssl-keyfile "$OUT/certs/server.key" --enable-supernode-auth \
  --host "${BIND_HOST:-127.0.0.1}" --port "$PORT" --database "$OUT/superlink/state.db" \
  --disable-runtime-dependency-installation >"$OUT/superlink/superlink.log" 2>&1 &
PIDS+=($!)
cat >"$OUT/cli/config.toml" <<EOF
[superlink]
default = "$FED"

[superlink.$FED]
address = "127.0.0.1:$PORT"
root-certificates = "$OUT/certs/ca.crt"
EOF
export FLWR_HOME="$OUT/cli"

# 4. Register each SuperNode's public key (retries until the SuperLink answers).
for i in $(seq 0 $((N - 1))); do
  for attempt in $(seq 1 60); do
    if flwr supernode register "$OUT/certs/supernodes/supernode-$i.pub" "$FED" --name "retailer-$i" \
      >>"$OUT/cli/register.log" 2>&1; then break; fi
    kill -0 "${PIDS[0]}" 2>/dev/null || { echo "error: SuperLink exited; see $OUT/superlink/superlink.log" >&2; exit 1; }
    [[ $attempt == 60 ]] && { echo "error: could not register supernode-$i; see $OUT/cli/register.log" >&2; exit 1; }
    sleep 1
  done
done
log "registered $N SuperNode keys"

# 5. SuperNodes, each with only its own retailer's export and pseudonym key. They share this
#    machine's cores, so each ClientApp gets an equal share of torch threads.
THREADS=$(( $(nproc) / N )); [[ $THREADS -ge 1 ]] || THREADS=1
for i in $(seq 0 $((N - 1))); do
  mkdir -p "$OUT/supernode-$i"
  OMP_NUM_THREADS=$THREADS FLWR_HOME="$OUT/supernode-$i/flwr-home" flower-supernode \
    --superlink "127.0.0.1:$PORT" --root-certificates "$OUT/certs/ca.crt" \
    --auth-supernode-private-key "$OUT/certs/supernodes/supernode-$i.key" \
    --port $((PORT + 10 + i)) \
    --node-config "partition-id=$i num-partitions=$N data-path=\"${EXPORTS[$i]}\" key-file=\"$OUT/keys/retailer-$i.key\"" \
    >"$OUT/supernode-$i/supernode.log" 2>&1 &
  PIDS+=($!)
done
log "started $N SuperNodes; exports: ${EXPORTS[*]}"

# 6. The run: same ServerApp/ClientApp as the simulation, streamed until it ends.
APP=${APP:-.}
log "flwr run $APP $FED (results in $OUT/run)"
cd "$REPO"
set +e
timeout "$TIMEOUT" flwr run "$APP" "$FED" --stream \
  --run-config "num-server-rounds=$ROUNDS out-dir='$OUT/run' ${RUN_CONFIG:-}" 2>&1 | tee "$OUT/flwr-run.log"
RC=${PIPESTATUS[0]}
set -e

# 7. Success means: flwr run succeeded, the run finished and summary.json was written.
STATUS=$(flwr ls "$FED" --format json 2>/dev/null | "$BIN/python" -c \
  'import json,sys; runs=json.load(sys.stdin).get("runs",[]); print(runs[-1]["status"] if runs else "none")' \
  2>/dev/null || echo unknown)
log "flwr run exit status $RC; run status: $STATUS"
for pid in "${PIDS[@]:1}"; do
  kill -0 "$pid" 2>/dev/null || log "warning: SuperNode process $pid had exited (see supernode-*/supernode.log)"
done
if [[ $RC -ne 0 || ! -s "$OUT/run/summary.json" || "$STATUS" != *finished:completed* ]]; then
  echo "error: the deployment run failed (flwr run status $RC, run status $STATUS); logs in $OUT" >&2
  exit 1
fi
log "done: $OUT/run/summary.json"
