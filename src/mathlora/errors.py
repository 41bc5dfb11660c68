"""User-facing errors: the CLI prints their message on one line and exits non-zero (no traceback)."""


class MathloraError(Exception):
    """A problem the user can fix (bad input, bad option, missing file). Message is one clear line."""
