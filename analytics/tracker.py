"""The tracker as browsers download it: minified from the readable source, gzipped, cached.

`static/tracker.js` is the reviewed source. calmjs.parse (pure Python: no Node, no download)
parses it as ES5 and prints it with local names shortened; a few meaning-preserving rewrites of
the tree come first (one `var` statement per run of them, no braces around a lone statement in
an `if`, `!0`/`!1` for booleans, short number spellings). The result is built once per process,
again only when the source file changes, and served as is or gzipped; `bench/tracker_size.py`
measures these same bytes.
"""

from __future__ import annotations

import hashlib
import pathlib
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

SOURCE = pathlib.Path(__file__).resolve().parent / "static" / "tracker.js"
# Bytes gzipped. 1,536 until the retry queue (sessionStorage, backoff, limits: about 200 bytes);
# Plausible's classic script is ~750, Umami and GoatCounter ~2,200.
BUDGET = 1728

_lock = threading.Lock()


@dataclass(frozen=True)
class TrackerBuild:
    """One build of the tracker: the bytes served, in both encodings, and their ETag."""

    source_size: int
    minified: bytes
    gzipped: bytes
    etag: str


def _short_number(text: str) -> str:
    """'0.5' -> '.5', '5000' -> '5e3'; anything else unchanged."""
    if re.fullmatch(r"0\.\d+", text):
        return text[1:]
    match = re.fullmatch(r"([1-9]\d*?)(0{3,})", text)
    return f"{match[1]}e{len(match[2])}" if match else text


def _merge_vars(statements: list) -> None:
    """`var a = 1; var b = 2;` -> `var a = 1, b = 2;` (same meaning, fewer bytes)."""
    from calmjs.parse import asttypes

    merged: list = []
    for node in statements:
        if isinstance(node, asttypes.VarStatement) and merged:
            last = merged[-1]
            if isinstance(last, asttypes.VarStatement):
                last._children_list.extend(node._children_list)
                continue
        merged.append(node)
    statements[:] = merged


def _unbrace(node) -> None:
    """`if (a) { b(); }` -> `if (a) b();`, except where dropping braces could change meaning."""
    from calmjs.parse import asttypes

    for branch in ("consequent", "alternative"):
        block = getattr(node, branch)
        if not isinstance(block, asttypes.Block) or len(block._children_list) != 1:
            continue
        only = block._children_list[0]
        if isinstance(only, asttypes.FuncDecl):
            continue  # a function declaration is not a statement on its own in ES5
        if branch == "consequent" and isinstance(only, asttypes.If) and node.alternative:
            continue  # the else would attach to the inner if
        setattr(node, branch, only)


def _rewrite(tree):
    """Apply the size rewrites to every node of a parsed program."""
    from calmjs.parse import asttypes

    pending, seen = [tree], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, asttypes.Program | asttypes.Block):
            _merge_vars(node._children_list)
        elif isinstance(node, asttypes.FuncBase):
            _merge_vars(node.elements)
        elif isinstance(node, asttypes.If):
            _unbrace(node)
        elif isinstance(node, asttypes.Boolean):
            # Safe wherever a boolean literal is not followed by `.`, `[` or `(`: never in ES5
            # code that makes sense.
            node.value = "!0" if node.value == "true" else "!1"
        elif isinstance(node, asttypes.Number):
            node.value = _short_number(node.value)
        pending.extend(child for child in node.children() if child is not None)
    return tree


def minify(source: str) -> str:
    """Minify ES5 source: drop comments and spaces, shorten local names (globals stay)."""
    from calmjs.parse import es5
    from calmjs.parse.unparsers.es5 import minify_print

    return minify_print(
        _rewrite(es5(source)),
        obfuscate=True,
        obfuscate_globals=False,
        shadow_funcname=True,
        drop_semi=True,
    )


def gzip_bytes(data: bytes) -> bytes:
    """The smallest gzip we can make, the same bytes for the same input (no mtime, no name):
    zopfli's exhaustive deflate (about 2 % under zlib -9 here: every visitor downloads it, and
    it is built once per process) read by every gzip decoder."""
    import zopfli.gzip

    return zopfli.gzip.compress(data, numiterations=100)

@lru_cache(maxsize=4)
def _build(path: str, mtime_ns: int, size: int) -> TrackerBuild:
    source = pathlib.Path(path).read_bytes()
    minified = minify(source.decode("utf-8")).encode("utf-8")
    return TrackerBuild(
        source_size=len(source),
        minified=minified,
        gzipped=gzip_bytes(minified),
        etag=hashlib.blake2b(minified, digest_size=12).hexdigest(),
    )


def tracker_build(path: pathlib.Path = SOURCE) -> TrackerBuild:
    """The current build of the tracker; rebuilt only when the source file has changed."""
    stat = path.stat()
    with _lock:  # parsing is not thread-safe in ply; build once even under concurrent requests
        return _build(str(path), stat.st_mtime_ns, stat.st_size)
