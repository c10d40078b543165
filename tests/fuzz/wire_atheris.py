"""Coverage-guided fuzzing of the fast parser's response side with atheris (libFuzzer).

    .venv/bin/python tests/fuzz/wire_atheris.py -runs=1000000 -dict=tests/fuzz/http.dict

The properties of tests/proxy/protocol/test_wire_diff.py, on any bytes after a status
line: the fast connection over the compiled wire functions
(proxy/protocol/_wire_c.pyx) gives the same outcome, error text included, as over
the specification (proxy/protocol/_wire.py); a response it accepts, h11 reads the
same (same events, same body, same end), whether the bytes come whole or
split at a point the input chooses; and fed split it accepts or refuses as
it does whole. A failure raises, and libFuzzer writes the input to
crash-<sha1>: make it a regression test. tests/proxy/protocol/test_fuzz_atheris.py
runs this, bounded, in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

with atheris.instrument_imports():
    import proxy.protocol._wire
    from proxy.protocol import _fastconn
    from tests.proxy.protocol.test_wire_diff import fast_response, h11_response

from proxy.protocol import _wire_c

METHODS = (b"GET", b"HEAD", b"POST")
PREFIXES = (b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
NAMES = ("ChunkedDecoder", "parse_response_head", "response_framing")


def use(module: object) -> None:
    for name in NAMES:
        setattr(_fastconn, name, getattr(module, name))


def one_input(raw: bytes) -> None:
    if len(raw) < 2:
        return
    method = METHODS[raw[0] % len(METHODS)]
    data = PREFIXES[(raw[0] // len(METHODS)) % len(PREFIXES)] + raw[2:]
    cut = raw[1] % (len(data) + 1)
    pieces = [piece for piece in (data[:cut], data[cut:]) if piece]
    use(_wire_c)
    compiled = fast_response(method, pieces)
    whole = fast_response(method, [data] if data else [])
    use(proxy.protocol._wire)
    specification = fast_response(method, pieces)
    assert compiled == specification, (data, cut, compiled, specification)
    assert compiled[0] == whole[0], (data, cut, compiled, whole)
    if compiled[0] == "ok":
        assert compiled == whole, (data, cut)
        assert h11_response(method, pieces) == compiled, (data, cut)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
