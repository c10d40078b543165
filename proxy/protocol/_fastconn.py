# The fast HTTP/1.1 connection (sans-IO), the default parser: the events and
# states of _events.py, read and written with the compiled wire functions
# (_wire_c.pyx, else _wire.py) and the request-head checks (_head.py).
#
# Two roles, each for what the gateway does with it:
# - SERVER, the client's side: made for one request from its checked head
#   (RequestHead: the head was parsed once, by the checks, and is not parsed
#   again), then yields the request body and writes one response;
# - CLIENT, a backend's side: writes requests, reads responses, and can be
#   reused for another exchange (start_next_cycle) like h11's.
#
# Rules (h11's, which tests compare it with):
# - a message's framing comes from its head (RFC 9112 section 6.3); a
#   response to an HTTP/1.1 client without Content-Length is sent chunked,
#   to an HTTP/1.0 client until the connection closes;
# - keep-alive ends when either side says "Connection: close", speaks
#   HTTP/1.0 (unless an HTTP/1.0 client asked for "Connection: keep-alive"
#   and the response has a length: it is answered "Connection: keep-alive",
#   RFC 9112 appendix C.2.2; h11 never keeps those), or a body is delimited
#   by the close: each side then ends in MUST_CLOSE instead of DONE;
# - sending more or less than the Content-Length, or in the wrong state, is
#   a LocalProtocolError; reading malformed bytes a RemoteProtocolError.

from __future__ import annotations


from ._events import (
    CLOSED,
    CONNECTION_CLOSED,
    DONE,
    END_OF_MESSAGE,
    ERROR,
    IDLE,
    MUST_CLOSE,
    NEED_DATA,
    SEND_BODY,
    SEND_RESPONSE,
    SWITCHED_PROTOCOL,
    Data,
    Event,
    EndOfMessage,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Response,
    State,
)
from ._head import RequestHead, bare_lf
from ._compiled import ChunkedDecoder, parse_response_head, response_framing
from ._rewrite import has_token
from ._wire import (
    BODY_CHUNKED,
    BODY_CLOSE,
    BODY_LENGTH,
    BODY_NONE,
    canonical_framing,
    encode_chunk,
    encode_request_head,
    encode_response_head,
)

__all__ = ["FastConnection"]

SERVER = "server"
CLIENT = "client"


class FastConnection:
    """One side of an HTTP/1.1 connection; see the module comment."""

    __slots__ = ("role", "our_state", "their_state", "_buffer", "_whole", "_eof", "_keep_alive", "_send_kind", "_send_left",
                 "_receive_kind", "_receive_left", "_decoder", "_method", "_their_version", "_max_head")

    def __init__(self, role: str, *, max_head: int) -> None:
        self.role = role
        self.our_state: State = IDLE
        self.their_state: State = IDLE
        self._buffer = bytearray()
        # Bytes received while nothing else waited, not copied into _buffer: a body read passes on
        # as it came (next_event), anything else settles them there first.
        self._whole: bytes | None = None
        self._eof = False
        self._keep_alive = True
        self._send_kind = BODY_NONE
        self._send_left = 0
        self._receive_kind = BODY_NONE
        self._receive_left = 0
        self._decoder: ChunkedDecoder | None = None
        self._method = b""  # the request's method (the response's framing depends on it)
        self._their_version = b"1.1"
        self._max_head = max_head  # bytes of an incomplete response head (CLIENT)

    @classmethod
    def for_request(cls, head: RequestHead, rest: bytes, *, max_head: int) -> tuple[FastConnection, Request]:
        """A SERVER connection for the checked request `head`, `rest` being the bytes after it."""
        conn = cls(SERVER, max_head=max_head)
        conn._buffer += rest
        headers = head.headers
        conn._method = head.method
        conn._their_version = head.version
        kind = BODY_NONE
        for name, value in headers:  # _head.py checked the framing: one of these at most
            if name == b"transfer-encoding":
                kind = BODY_CHUNKED
                conn._decoder = ChunkedDecoder()
            elif name == b"content-length":
                conn._receive_left = int(value)
                kind = BODY_LENGTH if conn._receive_left else BODY_NONE
        conn._receive_kind = kind
        if has_token(headers, b"connection", b"close"):
            conn._keep_alive = False
        elif head.version != b"1.1":
            # RFC 9112 section 9.3 and appendix C.2.2: an HTTP/1.0 client
            # asks for a persistent connection with "Connection: keep-alive".
            conn._keep_alive = has_token(headers, b"connection", b"keep-alive")
        conn.their_state = SEND_BODY
        conn.our_state = SEND_RESPONSE
        return conn, Request(head.method, head.target, headers, head.version)

    @classmethod
    def client(cls, *, max_head: int) -> FastConnection:
        """A CLIENT connection (to a backend)."""
        return cls(CLIENT, max_head=max_head)

    @property
    def keep_alive(self) -> bool:
        """Neither side has ended keep-alive so far (Connection: close, HTTP/1.0 without keep-alive...)."""
        return self._keep_alive

    # --- receiving -----------------------------------------------------------

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """The bytes received and not consumed, and whether the peer closed."""
        self._settle()
        return bytes(self._buffer), self._eof

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer; b"" means it closed its side."""
        if data:
            if self._whole is None and not self._buffer and type(data) is bytes:
                self._whole = data
            else:
                self._settle()
                self._buffer += data
        else:
            self._eof = True

    def _settle(self) -> None:
        whole = self._whole
        if whole is not None:
            self._whole = None
            self._buffer += whole

    def next_event(self) -> Event | State:
        """The next event from the received bytes, or NEED_DATA.

        Raises:
            RemoteProtocolError: the peer broke the protocol (status_hint says how to answer).
        """
        state = self.their_state
        whole = self._whole
        if whole is not None:
            self._whole = None
            kind = self._receive_kind
            if state is SEND_BODY and kind == BODY_LENGTH and len(whole) <= self._receive_left:
                self._receive_left -= len(whole)  # (a whole read of the body: passed on as it came)
                if not self._receive_left:
                    self._receive_kind = BODY_NONE
                return Data(whole)
            if state is SEND_BODY and kind == BODY_CLOSE:
                return Data(whole)
            self._buffer += whole
        try:
            if state is SEND_BODY:
                return self._body_event()
            if self.role == CLIENT and (state is SEND_RESPONSE or state is IDLE):
                return self._response_head()
        except RemoteProtocolError:
            self.their_state = ERROR
            raise
        if self._eof and not self._buffer and state is not SWITCHED_PROTOCOL:
            self.their_state = CLOSED
            return CONNECTION_CLOSED
        return NEED_DATA

    def _body_event(self) -> Event | State:
        kind = self._receive_kind
        buffer = self._buffer
        if kind == BODY_LENGTH:
            if buffer:
                left = self._receive_left
                if len(buffer) <= left:
                    data = bytes(buffer)
                    buffer.clear()
                else:
                    data = bytes(buffer[:left])
                    del buffer[:left]
                self._receive_left = left - len(data)
                if not self._receive_left:
                    self._receive_kind = BODY_NONE
                return Data(data)
            if self._eof:
                raise RemoteProtocolError("peer closed the connection during the message body")
            return NEED_DATA
        if kind == BODY_NONE:
            self._their_done()
            return END_OF_MESSAGE
        if kind == BODY_CHUNKED:
            decoder = self._decoder
            assert decoder is not None  # made with BODY_CHUNKED
            piece = decoder.next(buffer)
            if type(piece) is bytes:
                return Data(piece)
            if piece is None:
                if self._eof:
                    raise RemoteProtocolError("peer closed the connection during the chunked body")
                return NEED_DATA
            self._their_done()  # END_OF_MESSAGE
            return END_OF_MESSAGE
        # BODY_CLOSE: everything until the peer closes
        if buffer:
            data = bytes(buffer)
            buffer.clear()
            return Data(data)
        if self._eof:
            self._their_done()
            return END_OF_MESSAGE
        return NEED_DATA

    def _response_head(self) -> Event | State:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end == -1:
            if len(buffer) > self._max_head:
                raise RemoteProtocolError(f"response head over {self._max_head} bytes", 502)
            if bare_lf(buffer):
                # Refused (_wire.py) once complete; but its blank line is
                # not CRLF CRLF, so it would never be: refuse it now.
                raise RemoteProtocolError("bare LF in the response head", 502)
            if self._eof:
                if buffer:
                    raise RemoteProtocolError("peer closed the connection during the response head", 502)
                self.their_state = CLOSED
                return CONNECTION_CLOSED
            return NEED_DATA
        version, status, reason, headers = parse_response_head(bytes(buffer[: end + 4]))
        del buffer[: end + 4]
        if status < 200:
            if not response_framing(self._method, status, headers)[2]:  # checked, and passed on as h11 would
                headers = canonical_framing(headers)
            if status == 101:
                self.their_state = self.our_state = SWITCHED_PROTOCOL
            return InformationalResponse(status, headers, reason, version)
        kind, length, canonical = response_framing(self._method, status, headers)
        if not canonical:  # rare: passed on as h11 would (one Content-Length, "chunked")
            headers = canonical_framing(headers)
        if version != b"1.1" or kind == BODY_CLOSE or has_token(headers, b"connection", b"close"):
            self._keep_alive = False
        self._receive_kind = BODY_NONE if kind == BODY_LENGTH and not length else kind
        self._receive_left = length
        if kind == BODY_CHUNKED:
            self._decoder = ChunkedDecoder()
        self.their_state = SEND_BODY
        return Response(status, headers, reason, version)

    def _their_done(self) -> None:
        self.their_state = DONE if self._keep_alive else MUST_CLOSE
        if not self._keep_alive and self.our_state is DONE:
            self.our_state = MUST_CLOSE

    def _our_done(self) -> None:
        self.our_state = DONE if self._keep_alive else MUST_CLOSE
        if not self._keep_alive and self.their_state is DONE:
            self.their_state = MUST_CLOSE

    # --- sending -------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The bytes for `event`.

        Raises:
            LocalProtocolError: the event does not fit the state or the framing.
        """
        if type(event) is Data:
            return self._send_data(event.data)
        if type(event) is EndOfMessage:
            if self.our_state is not SEND_BODY:
                raise LocalProtocolError(f"cannot end a message in state {self.our_state}")
            if self._send_kind == BODY_LENGTH and self._send_left:
                raise LocalProtocolError(f"{self._send_left} bytes short of the Content-Length")
            self._our_done()
            return b"0\r\n\r\n" if self._send_kind == BODY_CHUNKED else b""
        if type(event) is Response:
            return self._send_response(event)
        if type(event) is InformationalResponse:
            if self.role != SERVER or self.our_state is not SEND_RESPONSE:
                raise LocalProtocolError(f"cannot send a 1xx response in state {self.our_state}")
            if event.status_code == 101:
                self.our_state = self.their_state = SWITCHED_PROTOCOL
            return encode_response_head(event.status_code, event.reason, event.headers)
        if type(event) is Request:
            return self._send_request(event)
        raise LocalProtocolError(f"cannot send {event!r}")

    def _send_data(self, data: bytes) -> bytes:
        if self.our_state is not SEND_BODY:
            raise LocalProtocolError(f"cannot send body data in state {self.our_state}")
        kind = self._send_kind
        if kind == BODY_LENGTH:
            self._send_left -= len(data)
            if self._send_left < 0:
                raise LocalProtocolError("more body data than the Content-Length")
            return data
        if kind == BODY_CHUNKED:
            return encode_chunk(data) if data else b""
        if kind == BODY_CLOSE:
            return data
        if data:
            raise LocalProtocolError("body data in a message without a body")
        return b""

    def _send_request(self, event: Request) -> bytes:
        if self.role != CLIENT or self.our_state is not IDLE:
            raise LocalProtocolError(f"cannot send a request in state {self.our_state}")
        headers = event.headers
        kind = BODY_NONE
        for name, value in headers:
            if name == b"transfer-encoding":
                kind = BODY_CHUNKED
            elif name == b"content-length":
                kind, self._send_left = BODY_LENGTH, int(value)
        if has_token(headers, b"connection", b"close"):
            self._keep_alive = False
        self._send_kind = kind
        self._method = event.method
        self.our_state = SEND_BODY
        self.their_state = SEND_RESPONSE
        return encode_request_head(event.method, event.target, headers)

    def _send_response(self, event: Response) -> bytes:
        if self.role != SERVER or self.our_state is not SEND_RESPONSE:
            raise LocalProtocolError(f"cannot send a response in state {self.our_state}")
        headers = event.headers
        status = event.status_code
        length = None
        for name, value in headers:
            if name == b"content-length":
                length = int(value)
        close = not self._keep_alive  # the response's own "Connection: close" counts after it is written
        # As h11: a response to HEAD gets the framing headers GET's would.
        if status in (204, 304):
            kind = BODY_NONE
        elif length is not None:
            kind, self._send_left = BODY_LENGTH, length
        elif self._their_version == b"1.1":
            kind = BODY_CHUNKED
            headers = [*headers, (b"Transfer-Encoding", b"chunked")]  # spelled as h11 writes it
        else:
            kind = BODY_CLOSE
            close = close or self._method != b"HEAD"
        if self._method == b"HEAD":
            kind, self._send_left = BODY_NONE, 0
        if close:
            # As h11: the Connection tokens, less keep-alive, plus close,
            # one per line, sorted, after the other fields.
            tokens = {item.strip(b" \t").lower() for name, value in headers if name == b"connection"
                      for item in value.split(b",")} - {b"keep-alive", b""}
            headers = [(n, v) for n, v in headers if n != b"connection"]
            headers += [(b"Connection", token) for token in sorted(tokens | {b"close"})]
        if close or has_token(headers, b"connection", b"close"):
            self._keep_alive = False
            if self.their_state is DONE:
                self.their_state = MUST_CLOSE
        elif self._their_version != b"1.1":
            headers = [*headers, (b"Connection", b"keep-alive")]  # an HTTP/1.0 client needs to hear it
        self._send_kind = kind
        self.our_state = SEND_BODY
        return encode_response_head(status, event.reason, headers)

    # --- the native engine's lane (_lane.py) ---------------------------------

    def expect_response(self, method: bytes) -> None:
        """A request without a body, and without "Connection: close", was written around this CLIENT
        connection: its state moves on as if send() had written it and its end.

        Raises:
            LocalProtocolError: not a CLIENT connection ready for a request.
        """
        if self.role != CLIENT or self.our_state is not IDLE:
            raise LocalProtocolError(f"cannot send a request in state {self.our_state}")
        self._send_kind = BODY_NONE
        self._method = method
        self.their_state = SEND_RESPONSE
        self._our_done()

    def response_read_around(self, keep_alive: bool) -> None:
        """The whole response to the request in flight was read around this CLIENT connection.

        Raises:
            LocalProtocolError: no response was expected.
        """
        if self.role != CLIENT or self.their_state is not SEND_RESPONSE:
            raise LocalProtocolError(f"no response is expected in state {self.their_state}")
        if not keep_alive:
            self._keep_alive = False
        self._their_done()

    # --- reuse ---------------------------------------------------------------

    def start_next_cycle(self) -> None:
        """After a clean exchange on a CLIENT connection: ready for the next request.

        Raises:
            LocalProtocolError: the exchange is not done on both sides.
        """
        if self.our_state is not DONE or self.their_state is not DONE:
            raise LocalProtocolError("the connection cannot be reused")
        self.our_state = self.their_state = IDLE
        self._method = b""
        self._decoder = None
