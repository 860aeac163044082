"""Event names shared by the tracker, the legacy contracts and the stats layer.

List analytics come from two sources: the benefits recorder's records (`show`, `showDetails`) and
the tracker's list events (`impression`, `item_click`). The stats layer counts both.
"""

from __future__ import annotations

PAGEVIEW = "pageview"
SHOW_NAMES = ("show", "impression")  # an item of a list was seen
DETAIL_NAMES = ("showDetails", "item_click")  # an item of a list was opened
