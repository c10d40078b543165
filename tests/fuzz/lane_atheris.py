"""Coverage-guided fuzzing of the native engine's fast lane with atheris (libFuzzer).

    .venv/bin/python tests/fuzz/lane_atheris.py -runs=1000000 -dict=tests/fuzz/http.dict

The properties of tests/proxy/protocol/test_lane.py, on any bytes after a
status line: the compiled lane (proxy/protocol/_lane_c.pyx) reads a
response head as its twin (proxy/protocol/_lane.py) does, and a head the
twin takes is written to the client as the general path writes it. A
failure raises, and libFuzzer writes the input to crash-<sha1>: make it a
regression test. tests/proxy/protocol/test_fuzz_atheris.py runs this,
bounded, in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

with atheris.instrument_imports():
    from proxy.protocol import _lane
    from tests.proxy.protocol.test_lane import general_response

from proxy.protocol import _lane_c

# Input: [shape, status high, status low, rest...]: a status line of the
# lane's form with any status (or the raw bytes alone), then a
# Content-Length line or not, then the fuzzer's bytes.
FIELDS = (b"", b"Content-Length: 2\r\n", b"Content-Length: 2\r\nConnection: ")


def one_input(raw: bytes) -> None:
    if len(raw) < 3:
        return
    shape = raw[0]
    status = 100 + (raw[1] * 256 + raw[2]) % 900
    line = b"" if shape & 1 else b"HTTP/1.1 %d OK\r\n" % status
    head = line + FIELDS[(shape >> 1) % len(FIELDS)] + raw[3:]
    end = head.find(b"\r\n\r\n")
    head = head[: end + 4] if end >= 0 else head + b"\r\n\r\n"
    compiled = _lane_c.response_head(head)
    twin = _lane.response_head(head)
    assert compiled == twin, (head, compiled, twin)
    if twin is not None:
        status, length, keep, client_head = twin
        if length <= 1 << 16:
            assert general_response(head, b"x" * length) == (status, client_head + b"x" * length, keep), head


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
