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

import atheris

with atheris.instrument_imports():
    import h11

    from proxy._config import Limits
    from proxy._errors import ClientProtocolError
    from proxy._head import Refused, check_head, find_head

LIMITS = Limits(max_target=200, max_header_bytes=1000, max_headers=20)


def decide(data: bytes, cut: int | None) -> tuple[str, object]:
    points = ([cut] if cut is not None and 0 < cut < len(data) else []) + [len(data)]
    buffer, start = b"", 0
    for point in points:
        buffer += data[start:point]
        start = point
        try:
            end = find_head(buffer, LIMITS)
            if end is None:
                continue
            head = check_head(buffer[:end], LIMITS)
        except ClientProtocolError as error:
            return ("error", error.status)
        except Refused:
            return ("refused", None)
        return ("ok", head)
    return ("incomplete", None)


def one_input(raw: bytes) -> None:
    if not raw:
        return
    cut, data = raw[0], raw[1:]
    whole = decide(data, None)
    split = decide(data, cut)
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
