"""Helpers shared by the task tests: the real datasets' folder and a JSON Lines writer."""

from __future__ import annotations

import json
from pathlib import Path

#: The real datasets beside the repo (present on development machines and CI, absent on a fresh clone).
SHARED_DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def write_jsonl(path: Path, rows: list[dict]) -> str:
    """Write rows as JSON Lines and return the path as a string (what the loaders take)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)
