#!/usr/bin/env bash
# On a machine with network access, before a GPU session: fill .whl/ with the wheels bench/gpu_suite.sh may
# need on the GPU image (which has torch, transformers, peft, accelerate, pyarrow, matplotlib, tensorboard and
# triton but not these), and .bench_data/realistic/ with competition-style tokens (SmolLM2's tokenizer:
# ~94 tokens per record, ~30% learnable) so the GPU machine needs no tokenizer download.
#   bash bench/gpu_prep.sh        # then carry .whl and .bench_data to the GPU machine
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
mkdir -p .whl
pure="pydantic==2.14.4 annotated-types typing-inspection typing-extensions liger-kernel==0.8.5 gguf==0.19.0
      httpx==0.28.1 httpcore==1.0.9 h11 anyio sniffio idna certifi rich markdown-it-py mdurl pygments"
# shellcheck disable=SC2086
"$PY" -m pip download --no-deps --only-binary=:all: -d .whl -q $pure
for v in 3.10 3.11 3.12 3.13; do  # pydantic-core is compiled: one wheel per Python version
  "$PY" -m pip download --no-deps --only-binary=:all: -d .whl -q --python-version "$v" \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 pydantic-core==2.50.5
done
PYTHONPATH="$PWD/src" "$PY" - <<'PYEOF'
import shutil, sys
from pathlib import Path
sys.path.insert(0, "bench")
import gpu_common
out = Path(".bench_data/realistic")
shutil.rmtree(out, ignore_errors=True)
print(gpu_common.realistic(out, 4096, 256, tokenizer="smollm2-135m-instruct"))
shutil.rmtree(Path(".bench_data/realistic_src"), ignore_errors=True)
PYEOF
ls -la .whl .bench_data/realistic
du -sh .whl .bench_data
