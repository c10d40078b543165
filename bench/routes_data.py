# Seeded, realistic inputs for the route table benchmarks.
#
# Routes look like the gateway's: mostly /owner/image (two segments), some
# single-segment images (/nginx) and a few deeper label routes (/a/b/c).
# The path mix is fixed per size: 70% hits below a route (with a query
# string now and then), 20% misses, 10% deep paths below a hit.

from __future__ import annotations

import random

SEED = 20261127
MIX_SIZE = 1000


def _word(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(rng.randint(3, 10)))


def make_routes(count: int, seed: int = SEED) -> dict[str, int]:
    rng = random.Random(seed)
    owners = [_word(rng) for _ in range(max(1, count // 20))]
    routes: dict[str, int] = {}
    while len(routes) < count:
        kind = rng.random()
        if kind < 0.85:
            key = f"/{rng.choice(owners)}/{_word(rng)}"
        elif kind < 0.95:
            key = f"/{_word(rng)}"
        else:
            key = f"/{rng.choice(owners)}/{_word(rng)}/{_word(rng)}"
        routes.setdefault(key, len(routes))
    return routes


def make_paths(routes: dict[str, int], seed: int = SEED) -> list[bytes]:
    rng = random.Random(seed + 1)
    keys = list(routes)
    paths = []
    for _ in range(MIX_SIZE):
        kind = rng.random()
        key = rng.choice(keys)
        if kind < 0.7:
            tail = rng.choice(["", "/", "/items", "/items/42", "/v1/users?page=2&sort=name"])
            path = key + tail
        elif kind < 0.9:
            path = f"/{_word(rng)}/{_word(rng)}/x"
        else:
            path = key + "".join(f"/{_word(rng)}" for _ in range(8)) + "?q=1"
        paths.append(path.encode())
    return paths


class FirstSegmentDict:
    """The yardstick: a dict keyed by the first path segment, nothing more."""

    def __init__(self, routes: dict[str, int]) -> None:
        self._by_first = {key.split("/", 2)[1].encode(): (key, value) for key, value in routes.items()}

    def lookup(self, path: bytes) -> tuple[str, int] | None:
        return self._by_first.get(path.split(b"/", 2)[1])
