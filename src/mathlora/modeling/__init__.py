"""Model plumbing: model specs and loading (one pad rule), templates, adapters, the calculator logits processor, the runtime, version shims, trackers, an OpenAI-compatible client."""
