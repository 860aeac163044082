"""Build `analytics/static/world.json`, the country shapes the Overview's map is drawn from.

    pip install pyshp  # only this script needs it
    pip download geopandas==0.14.4 --no-deps -d /tmp/gp && unzip -o /tmp/gp/*.whl \\
        'geopandas/datasets/naturalearth_lowres/*' -d /tmp/gp
    python scripts/build_world_map.py \\
        /tmp/gp/geopandas/datasets/naturalearth_lowres/naturalearth_lowres

The shapes are Natural Earth's 1:110m Admin 0 countries (public domain), as geopandas 0.14
shipped them. Each country is keyed by its ISO 3166-1 alpha-2 code (the code `events.country`
holds), its rings flattened to [lon, lat, lon, lat, ...] and rounded to 0.1 degree: about 100 kB,
served as a static file, cached, and drawn by the browser (static/map.js). The file is committed,
so neither the app nor its users need this script or a network.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pycountry
import shapefile  # pyshp

OUT = Path(__file__).resolve().parent.parent / "analytics" / "static" / "world.json"
UNCODED = {"Kosovo": "XK"}  # Natural Earth gives -99; XK is the code in common use (and GeoLite2)


def alpha_2(name: str, alpha_3: str) -> str | None:
    if alpha_3 == "-99":
        return UNCODED.get(name)
    found = pycountry.countries.get(alpha_3=alpha_3)
    return found.alpha_2 if found else None


def rings(shape: shapefile.Shape) -> list[list[float]]:
    starts = [*shape.parts, len(shape.points)]
    out = []
    for begin, end in zip(starts, starts[1:], strict=False):
        flat: list[float] = []
        last = None
        for lon, lat in shape.points[begin:end]:
            point = (round(lon, 1), round(lat, 1))
            if point != last:
                flat.extend(point)
                last = point
        if len(flat) >= 8:  # at least a triangle, closed
            out.append(flat)
    return out


def main(source: str) -> None:
    reader = shapefile.Reader(source, encoding="iso-8859-1")
    world: dict[str, list[list[float]]] = {}
    for record, shape in zip(reader.records(), reader.shapes(), strict=True):
        code = alpha_2(record["name"], record["iso_a3"])
        if code is None:
            print(f"skipped {record['name']} ({record['iso_a3']}): no ISO 3166 code")
            continue
        world.setdefault(code, []).extend(rings(shape))
    OUT.write_text(json.dumps(world, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"{len(world)} countries, {OUT.stat().st_size:,} bytes -> {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
