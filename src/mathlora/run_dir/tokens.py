"""The tokens artifact's conventions, shared by the tokenize stage that writes it and the trainer and
exporters that read it: the label of a position that is not learned, and the file names."""

IGNORE = -100  # the label of a prompt or padding position: no loss (PyTorch's cross-entropy ignore_index)
TOKENS_FILE = "tokens.parquet"
STATS_FILE = "stats.json"
