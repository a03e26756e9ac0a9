#!/usr/bin/env bash
# Start a Ray cluster on the nodes of a batch job, run `regenerate --ray` on it, stop it.
# Used by slurm_ray.sh and pbs_ray.sh; runs on the job's first node, which becomes the head:
#
#   NODES="node1 node2 node3" LAUNCH="ssh" builder_scripts/ray_cluster.sh SOURCE OUT_DIR [regenerate options]
#
# NODES: the job's hosts, head first.  LAUNCH: how to run a command on another node (an srun
# prefix under SLURM, `pbsdsh -h` under PBS, ssh); the head's own `ray start` runs here.
# CPUS_PER_NODE / GPUS_PER_NODE: what each node's raylet offers (default: what Ray detects).
# RAY_PORT: the head's port (default 6379; not in Ray's worker port range 10002-19999, which
# `ray start` refuses).  The head is waited for until its port answers; should `ray start` exit
# first, its error is printed at once (exit 1).  The driver (this script's python) reads the images
# and writes OUT_DIR: both must be on a filesystem the head node sees (the workers see only
# request bytes; with --ray-data they read SOURCE too, so put it on the shared filesystem).
# Every node must run the same environment (PYTHON, a shared venv) and, with Ray token
# authentication, share ~/.ray/auth_token (a shared home) or RAY_AUTH_TOKEN.  Rerun the job to resume.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: NODES='head worker...' [LAUNCH=ssh] builder_scripts/ray_cluster.sh SOURCE OUT_DIR [regenerate options]" >&2
  exit 2
fi
: "${NODES:?NODES must list the hosts of the job, head first}"
read -r -a nodes <<< "$NODES"
python=${PYTHON:-python}
ray_bin=${RAY:-}
if [ -z "$ray_bin" ]; then ray_bin="$(dirname "$(command -v "$python")")/ray"; fi
port=${RAY_PORT:-6379}
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  echo "ray_cluster.sh: RAY_PORT=$port is not a port number (1-65535)" >&2
  exit 2
fi
if [ "$port" -ge 10002 ] && [ "$port" -le 19999 ]; then
  echo "ray_cluster.sh: RAY_PORT=$port is inside Ray's worker port range 10002-19999 (ray start would refuse it): use another, e.g. 6379" >&2
  exit 2
fi
head_ip=${HEAD_IP:-}
if [ -z "$head_ip" ]; then head_ip=$(hostname --ip-address | awk '{print $1}'); fi
resources=()
if [ -n "${CPUS_PER_NODE:-}" ]; then resources+=(--num-cpus "$CPUS_PER_NODE"); fi
if [ -n "${GPUS_PER_NODE:-}" ]; then resources+=(--num-gpus "$GPUS_PER_NODE"); fi

# Token authentication (Ray >= 2.52): a head that finds a token (~/.ray/auth_token) turns it on,
# but a worker or a driver given an explicit address uses the token only with RAY_AUTH_MODE=token:
# make the mode explicit for every process (RAY_AUTH_MODE=disabled opts out), with a token made if
# none exists.  Older Rays ignore the mode.
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
if [ "$RAY_AUTH_MODE" = token ] && [ -z "${RAY_AUTH_TOKEN:-}" ] && "$ray_bin" get-auth-token --help >/dev/null 2>&1; then
  "$ray_bin" get-auth-token --generate >/dev/null
fi

pids=()
head_log=$(mktemp "${TMPDIR:-/tmp}/ray-head.XXXXXX")
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -f "$head_log"; }
trap stop EXIT

"$ray_bin" start --head --block --node-ip-address "$head_ip" --port "$port" --include-dashboard false "${resources[@]}" \
  >"$head_log" 2>&1 &
head_pid=$!
pids+=("$head_pid")
# the head is up once its port answers; `ray start` exiting before that means it failed: say why now
wait_s=${RAY_WAIT_S:-300}
waited=0
until (exec 3<>"/dev/tcp/$head_ip/$port") 2>/dev/null; do
  if ! kill -0 "$head_pid" 2>/dev/null; then
    head_status=0
    wait "$head_pid" || head_status=$?
    echo "ray_cluster.sh: the Ray head did not start (ray start exited with status $head_status); its last lines:" >&2
    tail -n 15 "$head_log" >&2
    exit 1
  fi
  if [ "$waited" -ge "$wait_s" ]; then
    echo "ray_cluster.sh: the Ray head is not answering on $head_ip:$port after $wait_s s; its last lines:" >&2
    tail -n 15 "$head_log" >&2
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
for node in "${nodes[@]:1}"; do
  ${LAUNCH:-ssh} "$node" env RAY_AUTH_MODE="$RAY_AUTH_MODE" "$ray_bin" start --block --address "$head_ip:$port" "${resources[@]}" &
  pids+=($!)
done

# every node joined (or give up after RAY_WAIT_S seconds; `timeout` too, as a ray.init() that
# cannot authenticate retries forever)
status=0
timeout --kill-after 10 "$((wait_s + 30))" "$python" - "$head_ip:$port" "${#nodes[@]}" "$wait_s" <<'PY' || status=$?
import sys, time
import ray
address, wanted, patience = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + patience
while True:
    try:
        ray.init(address=address, logging_level="ERROR")
        break
    except (ConnectionError, RuntimeError):
        if time.monotonic() > deadline:
            sys.exit(f"no Ray head at {address} after {patience:g} s")
        time.sleep(2)
while (alive := sum(node["Alive"] for node in ray.nodes())) < wanted:
    if time.monotonic() > deadline:
        sys.exit(f"only {alive} of {wanted} Ray nodes joined after {patience:g} s")
    time.sleep(2)
print(f"Ray cluster at {address}: {alive} nodes, {ray.cluster_resources()}")
PY
if [ "$status" -ge 124 ]; then
  echo "ray_cluster.sh: could not join the Ray cluster at $head_ip:$port in $((wait_s + 30)) s (RAY_AUTH_MODE=$RAY_AUTH_MODE:" \
    "every node and the driver need the same mode and token)" >&2
fi
if [ "$status" -ne 0 ]; then exit "$status"; fi

source_dir=$1
out_dir=$2
shift 2
"$python" -m imagenet_think.regenerate "$source_dir" "$out_dir" --ray "$head_ip:$port" --no-progress "$@"
