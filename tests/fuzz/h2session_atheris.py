"""Coverage-guided fuzzing of the HTTP/2 server session over libnghttp2 with atheris (libFuzzer).

    .venv/bin/python tests/fuzz/h2session_atheris.py -runs=1000000

Any frames after a client's preface and SETTINGS go into the compiled
session (proxy/protocol/_h2session_c.pyx) and its twin over h2
(proxy/protocol/_h2session.py), cut where the input says. Each either
gives events or refuses the connection with H2SessionError, nothing else;
the compiled one then answers every request it gave (a response and a
body) and writes its bytes. (Which inputs each refuses may differ: nghttp2
checks HTTP messaging itself, the twin leaves that to protocol/_h2_head.py;
tests/proxy/protocol/test_h2session.py compares the two on valid traffic.)
A failure raises, and libFuzzer writes the input to crash-<sha1>: make it
a regression test. tests/proxy/protocol/test_fuzz_atheris.py runs this,
bounded, in CI; under .ci/asan's sanitizer a memory error in the binding
stops it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

with atheris.instrument_imports():
    import h2.config
    import h2.connection

    from proxy.protocol._h2session import REQUEST, H2SessionError, PyH2Session

from proxy.protocol._h2session_c import H2Session

_client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
_client.initiate_connection()
START = _client.data_to_send()  # the preface and the client's SETTINGS


def one_input(raw: bytes) -> None:
    if not raw:
        return
    cut = 1 + raw[0] * 7
    data = START + raw[1:]
    for cls in (H2Session, PyH2Session):
        session = cls()
        events = []
        try:
            for at in range(0, len(data), cut):
                events += session.receive(data[at:at + cut])
        except H2SessionError:
            session.data_to_send()  # its GOAWAY
            continue
        if cls is H2Session:
            for kind, stream_id, _, _ in events:
                if kind == REQUEST:
                    session.respond(stream_id, [(b":status", b"200")], end_stream=False)
                    session.send_data(stream_id, b"x" * 100, end_stream=True)
        session.data_to_send()


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
