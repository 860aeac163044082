"""Print the tracker's size as a browser downloads it (gzip -9) and fail past the budget."""

from __future__ import annotations

import gzip
import pathlib
import sys

BUDGET = 1536  # bytes gzipped; Plausible's classic script is ~750, Umami and GoatCounter ~2,200
TRACKER = pathlib.Path(__file__).resolve().parent.parent / "analytics" / "static" / "tracker.js"


def gzipped_size(path: pathlib.Path = TRACKER) -> tuple[int, int]:
    raw = path.read_bytes()
    return len(raw), len(gzip.compress(raw, compresslevel=9, mtime=0))


if __name__ == "__main__":
    raw, packed = gzipped_size()
    print(f"tracker.js: {raw} bytes, {packed} bytes gzipped (budget {BUDGET})")
    sys.exit(0 if packed <= BUDGET else 1)
