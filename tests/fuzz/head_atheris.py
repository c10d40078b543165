"""Coverage-guided fuzzing of the request-head checks with atheris (libFuzzer).

    .venv/bin/python tests/fuzz/head_atheris.py -runs=1000000 -dict=tests/fuzz/http.dict

The same properties as tests/proxy/test_head_fuzz.py (hypothesis), on any
bytes: only ClientProtocolError or Refused escape; the answer is the same
whether the bytes come whole or split at a point the input chooses; a head
the checks accept, h11 reads with the same method, target and headers. A
failure raises, and libFuzzer writes the input to crash-<sha1>: make it a
regression test. tests/proxy/test_head_atheris.py runs this, bounded, in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

with atheris.instrument_imports():
    import h11

    import proxy._head  # noqa: F401 - instrumented for coverage
    from tests.proxy.test_head_fuzz import decide  # the same split-and-decide as the hypothesis test


def one_input(raw: bytes) -> None:
    if not raw:
        return
    cut, data = raw[0], raw[1:]
    whole = decide(data, [])
    split = decide(data, [cut])
    assert whole == split, (data, cut, whole, split)
    if whole[0] == "ok":
        head = whole[1]
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(head.encode())  # type: ignore[attr-defined]
        event = conn.next_event()
        assert type(event) is h11.Request, (data, event)
        assert (event.method, event.target) == (head.method, head.target), data  # type: ignore[attr-defined]
        assert list(event.headers) == head.headers, data  # type: ignore[attr-defined]


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
