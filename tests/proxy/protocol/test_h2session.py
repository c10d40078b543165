# The HTTP/2 server session, both implementations against each other:
# PyH2Session (h2, the reference) and the compiled H2Session (libnghttp2).
# The same client bytes, made by h2 as a client and cut anywhere, must give
# the same requests, bodies, ends and resets; the same answers must reach
# the client whole, within its windows, whatever the framing.

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.protocol._h2session import (
    CLOSED, DATA, END, GOAWAY, PING, REQUEST, RESET, SETTINGS, H2Options, H2SessionError, PyH2Session,
)

from ...conftest import _compiled

EXAMPLES = int(os.environ.get("FASTROUTE_FUZZ_EXAMPLES", "200"))


def compiled_session() -> type:
    return _compiled("proxy.protocol._h2session_c", "the libnghttp2 HTTP/2 session").H2Session  # type: ignore[no-any-return]


@pytest.fixture(params=["py", "c"])
def session_cls(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return PyH2Session if request.param == "py" else compiled_session()


def client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    return conn


def fields(method: bytes, path: bytes, extra: list[tuple[bytes, bytes]] = ()) -> list[tuple[bytes, bytes]]:  # type: ignore[assignment]
    return [(b":method", method), (b":scheme", b"https"), (b":authority", b"api.test"), (b":path", path), *extra]


def normal(events: list[tuple[int, int, Any, Any]]) -> tuple[list[Any], dict[int, bytes], dict[int, int]]:
    """What both must agree on: the order of requests, ends and resets (with their lists and codes),
    each stream's body bytes, and how many of each control frame came."""
    order: list[Any] = []
    bodies: dict[int, bytes] = {}
    counts: dict[int, int] = {}
    for kind, stream_id, a, b in events:
        if kind == REQUEST:
            order.append((kind, stream_id, [tuple(f) for f in a], b))
        elif kind in (END, RESET, GOAWAY, CLOSED):
            order.append((kind, stream_id, a))
        elif kind == DATA:
            bodies[stream_id] = bodies.get(stream_id, b"") + a
        elif kind in (PING, SETTINGS):
            counts[kind] = counts.get(kind, 0) + 1
    return order, bodies, counts


def feed(session: Any, data: bytes, cuts: list[int]) -> list[tuple[int, int, Any, Any]]:
    events = []
    at = 0
    for cut in sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]:
        events += session.receive(data[at:cut])
        at = cut
    return events


def exchange(session: Any, conn: h2.connection.H2Connection, answers: dict[int, tuple[list[tuple[bytes, bytes]], bytes]]
             ) -> dict[int, tuple[int, bytes]]:
    """Answer each stream; carry bytes both ways until every answer reached the client. Returns
    stream -> (status, body) as the client decoded them."""
    for stream_id, (head, body) in answers.items():
        session.respond(stream_id, head, end_stream=not body)
        if body:
            session.send_data(stream_id, body, end_stream=True)
    got: dict[int, list[Any]] = {stream_id: [0, b"", False] for stream_id in answers}
    for _ in range(1000):  # rounds of WINDOW_UPDATE: far more than any answer here needs
        out = session.data_to_send()
        for event in conn.receive_data(out):
            if isinstance(event, h2.events.ResponseReceived):
                got[event.stream_id][0] = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                got[event.stream_id][1] += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                got[event.stream_id][2] = True
        if all(ended for _, _, ended in got.values()):
            break
        back = conn.data_to_send()
        if back:
            session.receive(back)
    return {stream_id: (status, body) for stream_id, (status, body, _) in got.items()}


# --- by hand -----------------------------------------------------------------------------


def test_requests_bodies_and_ends(session_cls: Callable[..., Any]) -> None:
    conn = client()
    conn.send_headers(1, fields(b"GET", b"/a"), end_stream=True)
    conn.send_headers(3, fields(b"POST", b"/b", [(b"content-length", b"5")]))
    conn.send_data(3, b"hel")
    conn.send_data(3, b"lo", end_stream=True)
    conn.send_headers(5, fields(b"PUT", b"/c"))
    conn.send_data(5, b"xyz")
    conn.send_headers(5, [(b"x-trailer", b"1")], end_stream=True)  # trailers: dropped, the end kept
    session = session_cls()
    order, bodies, counts = normal(session.receive(conn.data_to_send()))
    assert order == [
        (REQUEST, 1, fields(b"GET", b"/a"), True),
        (REQUEST, 3, fields(b"POST", b"/b", [(b"content-length", b"5")]), False),
        (END, 3, None),
        (REQUEST, 5, fields(b"PUT", b"/c"), False),
        (END, 5, None),
    ]
    assert bodies == {3: b"hello", 5: b"xyz"}
    assert counts == {SETTINGS: 1}


def test_a_client_reset_and_goaway(session_cls: Callable[..., Any]) -> None:
    conn = client()
    conn.send_headers(1, fields(b"GET", b"/a"))
    conn.reset_stream(1, 8)  # CANCEL
    conn.ping(b"12345678")
    conn.close_connection(0, last_stream_id=0)
    session = session_cls()
    order, _, counts = normal(session.receive(conn.data_to_send()))
    assert order == [(REQUEST, 1, fields(b"GET", b"/a"), False), (RESET, 1, 8), (GOAWAY, 0, 0)]
    assert counts == {SETTINGS: 1, PING: 1}


def test_answers_reach_the_client_whole_within_its_windows(session_cls: Callable[..., Any]) -> None:
    conn = client()
    for stream_id in (1, 3, 5):
        conn.send_headers(stream_id, fields(b"GET", b"/%d" % stream_id), end_stream=True)
    session = session_cls()
    session.receive(conn.data_to_send())
    big = bytes(range(256)) * 1200  # past the client's 64 KiB windows
    answers = {1: ([(b":status", b"200")], big), 3: ([(b":status", b"204")], b""), 5: ([(b":status", b"404")], b"no")}
    assert exchange(session, conn, answers) == {1: (200, big), 3: (204, b""), 5: (404, b"no")}


def test_the_body_waits_for_the_window_and_pending_says_how_much(session_cls: Callable[..., Any]) -> None:
    conn = client()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    conn.send_headers(1, fields(b"GET", b"/"), end_stream=True)
    session = session_cls()
    session.receive(conn.data_to_send())
    session.respond(1, [(b":status", b"200")], end_stream=False)
    session.send_data(1, b"0123456789abcdef", end_stream=True)
    data = [e for e in conn.receive_data(session.data_to_send()) if isinstance(e, h2.events.DataReceived)]
    assert b"".join(e.data for e in data) == b"0123456789"  # the window's worth, no more
    assert session.pending(1) == 6
    conn.acknowledge_received_data(10, 1)
    conn.increment_flow_control_window(10, 1)
    session.receive(conn.data_to_send())
    rest = [e for e in conn.receive_data(session.data_to_send()) if isinstance(e, (h2.events.DataReceived, h2.events.StreamEnded))]
    assert b"".join(e.data for e in rest if isinstance(e, h2.events.DataReceived)) == b"abcdef"
    assert isinstance(rest[-1], h2.events.StreamEnded) and session.pending(1) == 0


def test_windows_in_reopen_only_when_consumed(session_cls: Callable[..., Any]) -> None:
    conn = client()
    conn.send_headers(1, fields(b"POST", b"/"))
    for _ in range(4):
        conn.send_data(1, b"x" * 16_383)
    conn.send_data(1, b"xxx")  # 65,535: the stream's whole window
    session = session_cls(H2Options(initial_window_size=65_535))
    session.receive(conn.data_to_send())
    conn.receive_data(session.data_to_send())
    assert conn.local_flow_control_window(1) == 0  # nothing consumed: the stream's window stays shut
    session.consume(1, 65_535)
    conn.receive_data(session.data_to_send())
    assert conn.local_flow_control_window(1) > 0


def test_a_broken_frame_is_a_connection_error_with_its_goaway(session_cls: Callable[..., Any]) -> None:
    conn = client()
    preface = conn.data_to_send()
    session = session_cls()
    session.receive(preface)
    with pytest.raises(H2SessionError):
        session.receive(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # WINDOW_UPDATE of 0 on stream 0
    goaways = [e for e in conn.receive_data(session.data_to_send()) if isinstance(e, h2.events.ConnectionTerminated)]
    assert [g.error_code for g in goaways] == [h2.errors.ErrorCodes.PROTOCOL_ERROR]


# --- generated: both sessions, the same client bytes cut anywhere ---------------------------

TOKENS = st.sampled_from([b"accept", b"x-a", b"cookie", b"user-agent", b"content-type"])
VALUES = st.binary(min_size=0, max_size=30).map(lambda v: bytes(c for c in v if 0x21 <= c <= 0x7e))


@st.composite
def plans(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """A few requests as a client sends them: (stream, extra fields, body, where it is cut, sized,
    trailers, reset, ping, answer)."""
    plan = []
    for index in range(draw(st.integers(1, 6))):
        # Up to 8 KiB: six of them within the connection's first window (the client sends before it
        # reads a byte of the server's); the answers, up to 192 KiB, go past every window.
        # (Bodies as a pattern and a count: a failing example prints short.)
        body = (draw(st.binary(max_size=64)), draw(st.integers(1, 128)))
        plan.append((1 + 2 * index, draw(st.lists(st.tuples(TOKENS, VALUES), max_size=4)), body,
                     draw(st.integers(0, len(body[0]) * body[1])), draw(st.booleans()), draw(st.booleans()),
                     draw(st.booleans()) and not body[0], draw(st.booleans()),
                     (draw(st.binary(max_size=64)), draw(st.integers(1, 3000)))))
    return plan


def play(plan: list[tuple[Any, ...]]) -> tuple[h2.connection.H2Connection, bytes, dict[int, bytes]]:
    """The client that follows `plan`, the bytes it sent, and the answer each stream not reset gets."""
    conn = client()
    answers = {}
    for stream_id, extra, (pattern, times), at, sized, trailers, reset, ping, (answer, again) in plan:
        body, answer = pattern * times, answer * again
        if body and sized:
            extra = [*extra, (b"content-length", str(len(body)).encode())]
        conn.send_headers(stream_id, fields(b"POST" if body else b"GET", b"/s/%d" % stream_id, extra),
                          end_stream=not body)
        if body:
            conn.send_data(stream_id, body[:at])
            conn.send_data(stream_id, body[at:], end_stream=not trailers)
            if trailers:
                conn.send_headers(stream_id, [(b"x-trailer", b"t")], end_stream=True)
        if reset:
            conn.reset_stream(stream_id, 8)
        else:
            answers[stream_id] = answer
        if ping:
            conn.ping(b"%08d" % stream_id)
    return conn, conn.data_to_send(), answers


@settings(max_examples=EXAMPLES, deadline=None)
@given(plans(), st.lists(st.integers(0, 1 << 16), max_size=8))
def test_both_sessions_agree_on_any_conversation(plan: list[tuple[Any, ...]], cuts: list[int]) -> None:
    compiled = compiled_session()
    seen = []
    answered = []
    for cls in (PyH2Session, compiled):
        conn, data, answers = play(plan)
        session = cls()
        seen.append(normal(feed(session, data, cuts)))
        answered.append(exchange(session, conn, {stream_id: ([(b":status", b"200")], body)
                                                 for stream_id, body in answers.items()}))
    assert seen[0] == seen[1]
    assert answered[0] == answered[1]


def test_a_packed_header_list_reaches_the_client_as_its_fields() -> None:
    # respond_packed(): the compiled stream's header list in one bytes object (per field two
    # uint32 lengths, the name, the value), 40 fields (past the ones read onto the stack) included.
    session_cls = compiled_session()
    conn = client()
    conn.send_headers(1, fields(b"GET", b"/"), end_stream=True)
    session = session_cls()
    session.receive(conn.data_to_send())
    listed = [(b":status", b"200"), *[(b"x-%d" % i, b"v" * i) for i in range(40)]]
    block = b"".join(struct.pack("=II", len(name), len(value)) + name + value for name, value in listed)
    session.respond_packed(1, block, len(listed), True)
    got = [event for event in conn.receive_data(session.data_to_send()) if isinstance(event, h2.events.ResponseReceived)]
    assert [tuple(field) for field in got[0].headers] == listed
    with pytest.raises(ValueError):  # a count past the block: refused, nothing read beyond it
        session.respond_packed(1, block[:-1], len(listed), True)
    with pytest.raises(ValueError):
        session.respond_packed(1, block, len(listed) + 1, True)
