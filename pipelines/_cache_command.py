"""``featurize cache``: inspect, clear or shrink the embedding cache."""

from __future__ import annotations

from featurize import EmbeddingCache
from pipelines._options import UsageError, UserError


def add_cache_command(command) -> None:
    """Declare ``featurize cache`` (``command`` adds a sub-command)."""
    cache = command(
        "cache", cache_command, help="inspect, clear or shrink the embedding cache"
    )
    cache.add_argument("action", choices=("info", "clear", "shrink"))
    cache.add_argument(
        "--older-than", default=None, metavar="AGE",
        help="with clear: entries older than AGE (30d, 12h, 45m)",
    )  # fmt: skip
    cache.add_argument(
        "--stale", action="store_true",
        help="with clear: only the configurations this installation can no longer "
        "produce (marked in `cache info`)",
    )  # fmt: skip
    cache.add_argument(
        "--max-bytes", default=None, metavar="SIZE",
        help="with shrink: evict least recently used entries down to SIZE (2GB, "
        "500MiB; default: the cap, $FEATURIZE_CACHE_MAX_BYTES or 10GiB)",
    )  # fmt: skip
    cache.add_argument(
        "--dir", default=None, help="cache folder (default: the default)"
    )


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """Seconds in an age like ``30d``, ``12h``, ``45m``, ``90s`` or ``2w``."""
    number, unit = text[:-1], text[-1:].lower()
    try:
        if unit not in _UNITS:
            raise ValueError
        return float(number) * _UNITS[unit]
    except ValueError:
        raise UsageError(
            f"--older-than must be a number and a unit (s, m, h, d, w), like 30d; "
            f"received {text!r}."
        ) from None


def cache_command(args) -> int:
    """``featurize cache info|clear|shrink``."""
    cache = EmbeddingCache(args.dir)
    if args.dir is not None and not cache.path.exists():
        # Opening it would create a database where the user mistyped a path.
        raise UserError(
            f"--dir {args.dir!r} holds no embedding cache ({cache.path.name} is not "
            f"there); `featurize cache info` without --dir shows the default one."
        )
    if args.stale and (args.action != "clear" or args.older_than is not None):
        raise UsageError("--stale goes with `cache clear`, without --older-than.")
    if args.max_bytes is not None and args.action != "shrink":
        raise UsageError("--max-bytes goes with `cache shrink`.")
    if args.action == "clear":
        if args.stale:
            deleted = cache.clear_stale()
        else:
            age = None if args.older_than is None else parse_age(args.older_than)
            deleted = cache.clear(older_than=age)
        print(f"deleted {deleted} cached embeddings from {cache.path}")
        return 0
    if args.action == "shrink":
        limit = "cap" if args.max_bytes is None else args.max_bytes
        evicted = cache.shrink(limit)
        print(f"evicted {evicted} least recently used embeddings from {cache.path}")
        return 0
    info = cache.info()
    size = cache.path.stat().st_size if cache.path.exists() else 0
    cap = (
        "no cap"
        if cache.max_bytes is None
        else f"cap {cache.max_bytes / 2**20:.0f} MiB"
    )
    print(f"cache: {cache.path} ({size / 2**20:.1f} MiB, {cap}; "
          f"{int(info.entries.sum())} embeddings in {len(info)} configurations, "
          f"{int((info.stale != '').sum())} stale)")  # fmt: skip
    if len(info):
        shown = info.drop(columns="namespace")
        shown["stale"] = shown["stale"].where(shown["stale"] != "", "-")
        print(shown.to_string(index=False))
    return 0
