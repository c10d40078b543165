"""Coverage-guided fuzzing of the engine's compiled HTTP/2 stream with atheris (libFuzzer).

    .venv/bin/python tests/fuzz/h2cycle_atheris.py -runs=1000000 -dict=tests/fuzz/http.dict

The properties of tests/proxy/engine/test_h2_cycle.py, on any header list
and any response head: a header list the cycle (proxy/engine/_h2cycle_c.pyx)
writes as a plain HTTP/1.1 head is the head protocol/_h2_head.request_head
checks; a response head the lane takes becomes the header list the general
path hands the session. A failure raises, and libFuzzer writes the input to
crash-<sha1>: make it a regression test.
tests/proxy/protocol/test_fuzz_atheris.py runs this, bounded, in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

with atheris.instrument_imports():
    from proxy._config import Limits
    from proxy.protocol._compiled import check_head
    from proxy.protocol._h2_head import request_head, response_fields
    from proxy.protocol._lane import plain_request, response_head
    from proxy.protocol._rewrite import response_headers, with_fields
    from proxy.protocol._wire import parse_response_head

from proxy.engine import _h2cycle_c

LIMITS = Limits()
PSEUDO = (b":method", b":scheme", b":authority", b":path")
EXTRA = [(b"strict-transport-security", b"max-age=600"), (b"server", b"fastroute")]


def header_list(data: bytes) -> list[tuple[bytes, bytes]]:
    """Fields from the fuzzer's bytes: "\\n" between fields, the first ":" after a name's first byte
    between name and value; the first four named as the request's pseudo-headers unless a byte says no."""
    fields = []
    for i, line in enumerate(data.split(b"\n")):
        name, _, value = line[1:].partition(b":") if line[:1] == b"!" else (line, b"", line)
        if i < 4 and line[:1] != b"!":
            name, value = PSEUDO[i], line
        fields.append((name, value))
    return fields


def one_input(raw: bytes) -> None:
    if not raw:
        return
    split = raw[0] % max(len(raw), 1)
    fields = header_list(raw[1:split + 1])
    head = _h2cycle_c.http11(fields)
    if head is not None and plain_request(head, LIMITS) is not None:
        assert request_head(fields, LIMITS) == check_head(head, LIMITS), fields
    response = b"HTTP/1.1 200 OK\r\n" + raw[split + 1:]
    end = response.find(b"\r\n\r\n")
    response = response[: end + 4] if end >= 0 else response + b"\r\n\r\n"
    lane = response_head(response)
    cycled = _h2cycle_c.response_fields(response, EXTRA)
    if lane is None or response.count(b"\r\n") > 256:  # (256 lines or more: past those read in place)
        assert cycled is None, response
        return
    _, status, _, headers = parse_response_head(response)
    general = response_fields(status, with_fields(response_headers(headers), EXTRA))
    assert cycled is not None and cycled[:3] == lane[:3], response
    assert cycled[3] == general, response


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
