"""Print the tracker's size as a browser downloads it (gzip -9) and fail past the budget.

It measures the bytes `GET /tracker.js` serves (`analytics.tracker.tracker_build`: the readable
source minified, then gzipped), not an estimate.
"""

from __future__ import annotations

import sys

from analytics.tracker import BUDGET, SOURCE, gzip_bytes, tracker_build


def gzipped_size() -> tuple[int, int]:
    """(minified bytes, gzipped bytes) of the tracker as served."""
    build = tracker_build()
    return len(build.minified), len(build.gzipped)


if __name__ == "__main__":
    raw, packed = gzipped_size()
    print(f"tracker.js: {raw} bytes, {packed} bytes gzipped (budget {BUDGET})")
    source = SOURCE.read_bytes()
    print(
        f"  readable source: {len(source)} bytes, {len(gzip_bytes(source))} gzipped; "
        "anchors: Plausible classic ~750, Umami and GoatCounter ~2,200 gzipped"
    )
    sys.exit(0 if packed <= BUDGET else 1)
