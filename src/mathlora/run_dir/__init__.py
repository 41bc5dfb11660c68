"""The run folder's machinery, one module per job:

* ``atomic``: atomic writes and the one JSON writer (``write_json_atomic``, ``json_text``);
* ``hashing``: ``file_sha256`` (used everywhere a file is hashed), ``digest`` (the one fingerprint hash) and a stage's ``fingerprint``;
* ``artifacts``: what verifies an output later (size and hash, or a format footer) and the check;
* ``guards``: the run lock, output folders mathlora may replace, links out of the run folder, temp cleanup;
* ``manifest``: ``Manifest``, the only reader and writer of ``manifest.json``.

The atomic writers are also importable from here (``from mathlora.run_dir import write_json_atomic``).
"""

from mathlora.run_dir.atomic import atomic_path, write_json_atomic, write_text_atomic

__all__ = ["atomic_path", "write_json_atomic", "write_text_atomic"]
