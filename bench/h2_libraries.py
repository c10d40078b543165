#!/usr/bin/env python3
"""What an HTTP/2 library costs per request, as a server, with no I/O (issue
40: measure before choosing). The same client bytes (made once by python-
hyper's h2 as a client: the preface, then batches of --streams GETs with the
headers h2load sends, HPACK-indexed as a real client's are) go through:

- python-hyper's `h2` (pure Python, with `hpack` and `hyperframe`), and
- libnghttp2 (C, Debian's libnghttp2-dev), through bench/h2_nghttp2.c,
  compiled here with the system's cc,

each answering every request with a 200, a Content-Length and 19 bytes.
Each side's output is parsed back (every stream's :status and body checked)
so neither is timed doing less. Prints the CPU time per request of each
(process CPU time over the receive/answer/send loop alone, divided by the
requests) and their ratio, with HAProxy's and fastroute's whole HTTP/1.1
request for scale (bench/README.md).

    .venv/bin/python bench/h2_libraries.py [--requests 10000] [--streams 10]

Needs h2 (pip) and libnghttp2-dev (apt). Bounded: a fixed count of requests.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import RequestReceived
from hpack import Decoder
from hyperframe.frame import DataFrame, Frame, HeadersFrame

HERE = Path(__file__).resolve().parent
BODY = b"0123456789abcdefghi"  # 19 bytes, as bench/compare.py's backend
REQUEST = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"127.0.0.1:8443"), (b":path", b"/"),
           (b"user-agent", b"h2load nghttp2/1.52.0")]  # what h2load sends
RESPONSE = [(b":status", b"200"), (b"content-length", b"19"), (b"content-type", b"text/plain")]


def h2_server() -> H2Connection:
    server = H2Connection(H2Configuration(client_side=False, header_encoding=None))
    server.initiate_connection()
    return server


def h2_answer(server: H2Connection, data: bytes) -> bytes:
    """One batch of the client's bytes into the h2 server; what it writes back."""
    for event in server.receive_data(data):
        if type(event) is RequestReceived and event.stream_ended is not None:
            server.send_headers(event.stream_id, RESPONSE)
            server.send_data(event.stream_id, BODY, end_stream=True)
    return server.data_to_send()


def client_batches(requests: int, streams: int) -> list[bytes]:
    """The client's bytes, batch by batch: made against a reference server so that its streams close."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.increment_flow_control_window(2**31 - 1 - 65535)  # the server never waits for a window
    server = h2_server()
    batches = [client.data_to_send()]
    client.receive_data(h2_answer(server, batches[0]))
    sent = 0
    while sent < requests:
        for _ in range(min(streams, requests - sent)):
            client.send_headers(client.get_next_available_stream_id(), REQUEST, end_stream=True)
            sent += 1
        batch = client.data_to_send()
        batches.append(batch)
        for event in client.receive_data(h2_answer(server, batch)):
            if hasattr(event, "flow_controlled_length") and event.flow_controlled_length:
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
    return batches


def answered(output: bytes) -> int:
    """Streams the server's output answers whole (a 200 HEADERS, then 19 bytes ending the stream)."""
    decoder = Decoder()
    at, statuses, bodies = 0, {}, {}
    while at + 9 <= len(output):
        frame, length = Frame.parse_frame_header(memoryview(output[at:at + 9]))
        frame.parse_body(memoryview(output[at + 9:at + 9 + length]))
        at += 9 + length
        if isinstance(frame, HeadersFrame):
            statuses[frame.stream_id] = dict(decoder.decode(frame.data, raw=True))[b":status"]
        elif isinstance(frame, DataFrame):
            bodies[frame.stream_id] = bodies.get(frame.stream_id, b"") + frame.data
            if "END_STREAM" not in frame.flags:
                bodies[frame.stream_id] += b"(more)"
    assert at == len(output), "a frame cut short"
    return sum(1 for sid, status in statuses.items() if status == b"200" and bodies.get(sid) == BODY)


def time_h2(batches: list[bytes], rounds: int) -> tuple[float, int]:
    """CPU seconds per request through h2, and the streams its output answers."""
    output = b""
    start = time.process_time()
    for round_ in range(rounds):
        server = h2_server()
        out = [server.data_to_send()]
        for batch in batches:
            out.append(h2_answer(server, batch))
        if round_ == 0:
            output = b"".join(out)
    spent = time.process_time() - start
    done = answered(output)
    return spent / (rounds * done), done


def time_nghttp2(batches: list[bytes], rounds: int, work: Path) -> tuple[float, int]:
    """CPU seconds per request through libnghttp2 (bench/h2_nghttp2.c), and the streams it answers."""
    program = work / "h2_nghttp2"
    compiled = subprocess.run(["cc", "-O2", "-o", str(program), str(HERE / "h2_nghttp2.c"), "-lnghttp2"],
                              capture_output=True, text=True)
    if compiled.returncode:
        sys.exit(f"h2_libraries: cannot build the libnghttp2 harness (apt install libnghttp2-dev): "
                 f"{compiled.stderr.strip().splitlines()[-1]}")
    inp, out = work / "client.bin", work / "server.bin"
    inp.write_bytes(b"".join(struct.pack("<I", len(batch)) + batch for batch in batches))
    result = subprocess.run([str(program), str(inp), str(out), str(rounds)], capture_output=True, text=True,
                            check=True, timeout=600)
    count, nanoseconds = (int(field) for field in result.stdout.split())
    done = answered(out.read_bytes())
    assert count == rounds * done, (count, done)
    return nanoseconds / 1e9 / count, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=10, help="requests per batch, as h2load -m")
    parser.add_argument("--rounds", type=int, default=3, help="h2's rounds (libnghttp2 runs 20 times as many)")
    args = parser.parse_args()
    if shutil.which("cc") is None:
        sys.exit("h2_libraries: no C compiler (cc)")
    batches = client_batches(args.requests, args.streams)
    with tempfile.TemporaryDirectory() as work:
        c_cost, c_done = time_nghttp2(batches, args.rounds * 20, Path(work))
    py_cost, py_done = time_h2(batches, args.rounds)
    assert py_done == c_done == args.requests, (py_done, c_done)
    print(f"{args.requests} GETs in batches of {args.streams}, each answered 200 with 19 bytes; "
          f"server side only, no I/O; CPU per request:")
    print(f"  h2 {_version('h2')} (pure Python):   {py_cost * 1e6:8.2f} us")
    print(f"  libnghttp2 (C, -O2):        {c_cost * 1e6:8.2f} us")
    print(f"  h2 / libnghttp2:            {py_cost / c_cost:8.1f}x")


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
