"""mathlora: difficulty-stratified LoRA fine-tuning for math, with retention checks."""

import os as _os

__version__ = "0.1.0"

# oneDNN (torch's CPU kernels for bf16 matmuls) keeps every primitive it builds for a new shape in two caches of
# 1024 entries each (oneDNN's own and ideep's, ~0.3-1.2 MB an entry); packed rows and generation give ever-new
# shapes, so a bf16 run on a CPU grew by 50-85 MB a step (SmolLM2-135M, OOM-killed at step 279) and the eviction
# churn fragmented the heap further. 64 entries hold a step's working set (every layer of a micro-batch shares
# its shapes) at no measured speed cost. Both are read at torch's first bf16 matmul, so they are set here, before
# any mathlora code runs one; a value already in the environment wins.
for _name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
    _os.environ.setdefault(_name, "64")
