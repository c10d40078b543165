"""Coverage-guided fuzzing of the request-head checks with atheris (libFuzzer).

    .venv/bin/python tests/fuzz/head_atheris.py -runs=1000000 -dict=tests/fuzz/http.dict

The same properties as tests/proxy/protocol/test_head_fuzz.py (hypothesis), on any
bytes: only ClientProtocolError or Refused escape; the answer is the same
whether the bytes come whole or split at a point the input chooses; a head
the checks accept, h11 reads with the same method, target and headers; and
the compiled checks (proxy/protocol/_head_c.pyx) give the same answer, error text
included, as the specification (proxy/protocol/_head.py). A
failure raises, and libFuzzer writes the input to crash-<sha1>: make it a
regression test. tests/proxy/protocol/test_fuzz_atheris.py runs this, bounded, in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

with atheris.instrument_imports():
    import h11

    import proxy.protocol._head  # noqa: F401 - instrumented for coverage
    from tests.proxy.protocol.test_head_fuzz import LIMITS, decide  # the same split-and-decide as the hypothesis test

from proxy.protocol import _head_c  # the compiled twin: must agree with the specification on every input
from proxy._errors import ClientProtocolError


def outcome(check: object, head: bytes) -> tuple[str, object]:
    try:
        return ("ok", check(head, LIMITS))  # type: ignore[operator]
    except ClientProtocolError as error:
        return ("error", (error.status, error.detail))


def one_input(raw: bytes) -> None:
    if not raw:
        return
    cut, data = raw[0], raw[1:]
    whole = decide(data, [])
    split = decide(data, [cut])
    assert whole == split, (data, cut, whole, split)
    end = data.find(b"\r\n\r\n")
    if end != -1:
        head_bytes = data[: end + 4]
        assert outcome(proxy.protocol._head.check_head, head_bytes) == outcome(_head_c.check_head, head_bytes), data
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
