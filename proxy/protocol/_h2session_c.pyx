# cython: language_level=3
# One HTTP/2 server connection over libnghttp2, sans I/O: _h2session.py's
# contract (events, flow control both ways, pending(), H2SessionError),
# which PyH2Session implements over h2, the reference this is tested
# against. nghttp2 calls back into this object while receive() runs (the
# GIL held throughout: no callback runs on another thread); a callback
# never raises into C: a bug in one makes receive() fail that connection
# (NGHTTP2_ERR_CALLBACK_FAILURE), never the process.
#
# Rules beyond the contract:
# - nghttp2's HTTP messaging checks stay on: it refuses a malformed
#   request itself (RST_STREAM PROTOCOL_ERROR; the CLOSED event), a body
#   against its Content-Length included (RFC 9113 section 8.1.1);
# - windows in are reopened by consume() only (no automatic WINDOW_UPDATE);
# - a response body is read from the stream's queue by nghttp2's data
#   provider, so nghttp2 frames it within the windows; an empty queue
#   defers the stream until send_data() adds to it.

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int32_t, uint8_t, uint32_t
from libc.string cimport memcpy

from ._nghttp2 cimport *

from ._h2session import (
    CLOSED, DATA, END, GOAWAY, PING, REQUEST, RESET, SETTINGS, WINDOW, H2Options, H2SessionError, StreamClosed,
)

_DEFAULTS = H2Options()

cdef enum:
    PACKED_LOCAL = 32  # fields of a packed header list read onto the stack (more: allocated)


@cython.freelist(128)
cdef class _Stream:
    """What the session keeps of a stream: its header list while it arrives, its response body queue."""

    cdef list fields
    cdef Py_ssize_t size  # the header list's size so far (RFC 9113 section 6.5.2: 32 bytes a field besides)
    cdef list chunks  # the response body's bytes queued, as send_data() had them (not copied); None: none yet
    cdef Py_ssize_t offset  # bytes of the first chunk framed already
    cdef Py_ssize_t queued  # bytes queued and not framed yet
    cdef bint ending  # the response ends with what is queued
    cdef bint providing  # a data provider is submitted for the response
    cdef bint deferred  # nghttp2 waits for send_data() (the provider said NGHTTP2_ERR_DEFERRED)
    cdef bint requested  # REQUEST was given to the caller

    def __cinit__(self):
        self.fields = []


cdef class H2Session:
    """One HTTP/2 server connection over libnghttp2 (see _h2session.py's contract)."""

    cdef nghttp2_session *session
    cdef dict streams
    cdef list events
    cdef object error  # an exception a callback met (a bug), raised by receive()
    cdef bint ending  # the client's GOAWAY came, or goaway() was called: the end is expected
    cdef bytearray out  # what nghttp2 wrote and data_to_send() has not returned yet
    cdef long terminated  # nghttp2's own GOAWAY went out (a connection error): its code; -1 before
    cdef Py_ssize_t max_header_list  # nghttp2 announces it but lets a longer list through: held here

    def __cinit__(self, options=_DEFAULTS):
        cdef nghttp2_session_callbacks *callbacks
        cdef nghttp2_option *option
        cdef nghttp2_settings_entry entries[5]
        self.streams = {}
        self.events = []
        self.error = None
        self.out = bytearray()
        self.terminated = -1
        self.max_header_list = options.max_header_list_size
        if nghttp2_session_callbacks_new(&callbacks) != 0:
            raise MemoryError()
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, _on_begin_headers)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, _on_header)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, _on_frame_recv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, _on_data_chunk_recv)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, _on_stream_close)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, _on_frame_send)
        if nghttp2_option_new(&option) != 0:
            nghttp2_session_callbacks_del(callbacks)
            raise MemoryError()
        nghttp2_option_set_no_auto_window_update(option, 1)
        # The caller's bounds (protocol/_h2_guard.py) decide floods and resets, the same on both
        # sessions: nghttp2's own limits sit well past them (ACKs queued; Debian's 1.52 and 1.57+
        # count client resets too).
        nghttp2_option_set_max_outbound_ack(option, 100_000)
        nghttp2_option_set_stream_reset_rate_limit(option, 100_000, 10_000)
        rc = nghttp2_session_server_new2(&self.session, callbacks, <void*>self, option)
        nghttp2_option_del(option)
        nghttp2_session_callbacks_del(callbacks)
        if rc != 0:
            self.session = NULL
            raise MemoryError()
        entries[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
        entries[0].value = options.max_concurrent_streams
        entries[1].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
        entries[1].value = options.max_header_list_size
        entries[2].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        entries[2].value = options.initial_window_size
        entries[3].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH
        entries[3].value = 0
        nghttp2_submit_settings(self.session, NGHTTP2_FLAG_NONE, entries, 4)
        if options.connection_window > 65535:
            nghttp2_session_set_local_window_size(self.session, NGHTTP2_FLAG_NONE, 0, options.connection_window)

    def __dealloc__(self):
        if self.session != NULL:
            nghttp2_session_del(self.session)
            self.session = NULL

    def receive(self, bytes data):
        """The client's bytes; the events they make.

        Raises:
            H2SessionError: a connection error (the GOAWAY is in data_to_send()).
        """
        self.events = []
        cdef ssize_t done = nghttp2_session_mem_recv(self.session, <const uint8_t*><char*>data, len(data))
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        if done < 0:  # fatal: nghttp2 writes no GOAWAY of its own for these
            code = 0xB if done == NGHTTP2_ERR_FLOODED or done == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS else 0x1
            self.ending = True
            nghttp2_session_terminate_session(self.session, code)  # ENHANCE_YOUR_CALM, or PROTOCOL_ERROR
            raise H2SessionError(code, nghttp2_strerror(<int>done).decode())
        events, self.events = self.events, []
        for event in events:
            if event[0] == GOAWAY:
                self.ending = True
        self._drain()  # nghttp2 writes its GOAWAY for a connection error here: its code says so
        if self.terminated >= 0:
            raise H2SessionError(self.terminated, "the client broke HTTP/2: nghttp2 ended the connection")
        return events

    def respond(self, int32_t stream_id, list fields, *, bint end_stream):
        """A response's (or a 1xx's) HEADERS."""
        cdef Py_ssize_t count = len(fields), i
        cdef nghttp2_nv *nva = <nghttp2_nv*>_alloc(count * sizeof(nghttp2_nv))
        cdef bytes name, value
        try:
            for i in range(count):
                name, value = fields[i]
                nva[i].name = <uint8_t*><char*>name
                nva[i].namelen = len(name)
                nva[i].value = <uint8_t*><char*>value
                nva[i].valuelen = len(value)
                nva[i].flags = NGHTTP2_NV_FLAG_NONE  # nghttp2 copies them
            rc = nghttp2_submit_headers(self.session, NGHTTP2_FLAG_END_STREAM if end_stream else NGHTTP2_FLAG_NONE,
                                        stream_id, NULL, nva, count, NULL)
        finally:
            _free(nva)
        if rc < 0:
            raise StreamClosed(f"HEADERS on stream {stream_id}: {nghttp2_strerror(rc).decode()}")

    def respond_packed(self, int32_t stream_id, bytes block, Py_ssize_t count, bint end_stream):
        """A response's HEADERS from a packed header list (protocol/_lane_c.response_packed: per
        field its name's and its value's lengths, two uint32_t, then the name and the value): no
        Python object per field."""
        cdef nghttp2_nv local[PACKED_LOCAL]
        cdef nghttp2_nv *nva = &local[0]
        if count > PACKED_LOCAL:
            nva = <nghttp2_nv*>_alloc(count * sizeof(nghttp2_nv))
        cdef const uint8_t *p = <const uint8_t*><char*>block
        cdef Py_ssize_t i, at = 0, size = len(block)
        cdef uint32_t sizes[2]
        try:
            for i in range(count):
                if at + 8 > size:
                    raise ValueError("a packed header list shorter than its count")
                memcpy(sizes, p + at, 8)
                if at + 8 + sizes[0] + sizes[1] > size:
                    raise ValueError("a packed header list shorter than its fields")
                nva[i].name = <uint8_t*>p + at + 8
                nva[i].namelen = sizes[0]
                nva[i].value = <uint8_t*>p + at + 8 + sizes[0]
                nva[i].valuelen = sizes[1]
                nva[i].flags = NGHTTP2_NV_FLAG_NONE  # nghttp2 copies them
                at += 8 + sizes[0] + sizes[1]
            rc = nghttp2_submit_headers(self.session, NGHTTP2_FLAG_END_STREAM if end_stream else NGHTTP2_FLAG_NONE,
                                        stream_id, NULL, nva, count, NULL)
        finally:
            if nva != &local[0]:
                _free(nva)
        if rc < 0:
            raise StreamClosed(f"HEADERS on stream {stream_id}: {nghttp2_strerror(rc).decode()}")

    def send_data(self, int32_t stream_id, bytes data, *, bint end_stream):
        """Body bytes, queued; framed by data_to_send() as the windows allow."""
        cdef _Stream stream = self.streams.get(stream_id)
        cdef nghttp2_data_provider provider
        if stream is None:
            raise StreamClosed(f"stream {stream_id} is gone")
        if data:
            if stream.chunks is None:
                stream.chunks = [data]
            else:
                stream.chunks.append(data)
            stream.queued += len(data)
        if end_stream:
            stream.ending = True
        if not stream.providing:
            stream.providing = True
            provider.source.ptr = NULL
            provider.read_callback = _read_body
            rc = nghttp2_submit_data(self.session, NGHTTP2_FLAG_END_STREAM, stream_id, &provider)
            if rc < 0:
                raise StreamClosed(f"DATA on stream {stream_id}: {nghttp2_strerror(rc).decode()}")
        elif stream.deferred:
            stream.deferred = False
            nghttp2_session_resume_data(self.session, stream_id)

    def pending(self, int32_t stream_id):
        """Body bytes queued for the stream and not framed yet."""
        cdef _Stream stream = self.streams.get(stream_id)
        return stream.queued if stream is not None else 0

    def consume(self, int32_t stream_id, size_t size):
        """`size` bytes of the stream's DATA were used: its window (and the connection's) reopen."""
        nghttp2_session_consume(self.session, stream_id, size)

    def reset(self, int32_t stream_id, uint32_t code):
        nghttp2_submit_rst_stream(self.session, NGHTTP2_FLAG_NONE, stream_id, code)

    def goaway(self, uint32_t code, int32_t last_stream_id, *, bint final=True):
        # (nghttp2 serves the streams up to last_stream_id either way: a drain is the same GOAWAY.)
        self.ending = True
        nghttp2_submit_goaway(self.session, NGHTTP2_FLAG_NONE, last_stream_id, code, NULL, 0)

    def data_to_send(self):
        """What to write to the client: control frames, HEADERS, and DATA as far as the windows allow
        (a bytearray of its own: the caller may keep it, and write from it)."""
        self._drain()
        if not PyByteArray_GET_SIZE(self.out):
            return b""
        out = self.out
        self.out = bytearray()
        return out

    cdef int _drain(self) except -1:
        cdef const uint8_t *chunk
        cdef ssize_t size
        cdef Py_ssize_t had
        cdef bytearray out = self.out
        while True:
            size = nghttp2_session_mem_send(self.session, &chunk)
            if size < 0:
                raise H2SessionError(0x2, nghttp2_strerror(<int>size).decode())
            if size == 0:
                break
            had = PyByteArray_GET_SIZE(out)  # appended in place: one copy out of nghttp2's buffer
            PyByteArray_Resize(out, had + size)
            memcpy(PyByteArray_AS_STRING(out) + had, chunk, size)
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return 0


cdef void* _alloc(size_t size) except NULL:
    cdef void *p = PyMem_Malloc(size if size else 1)
    if p == NULL:
        raise MemoryError()
    return p


cdef void _free(void *p) noexcept:
    PyMem_Free(p)


# --- nghttp2's callbacks (each returns 0, or NGHTTP2_ERR_CALLBACK_FAILURE after keeping the error) ---

cdef int _on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) noexcept:
    cdef H2Session self = <H2Session>user_data
    try:
        if frame.hd.type == NGHTTP2_HEADERS and frame.headers.cat == NGHTTP2_HCAT_REQUEST:
            self.streams[frame.hd.stream_id] = _Stream()
        return 0
    except BaseException as error:
        self.error = error
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int _on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                    const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) noexcept:
    cdef H2Session self = <H2Session>user_data
    cdef _Stream stream
    try:
        if frame.headers.cat != NGHTTP2_HCAT_REQUEST:
            return 0  # trailers: dropped (protocol/_h2_body.py)
        stream = self.streams.get(frame.hd.stream_id)
        if stream is not None:
            stream.size += namelen + valuelen + 32
            if stream.size > self.max_header_list:
                # An HPACK bomb, or just too long: the stream is refused before its list grows
                # further (nghttp2 decodes the rest without handing it over).
                stream.fields = []
                nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame.hd.stream_id, 0xB)  # ENHANCE_YOUR_CALM
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
            stream.fields.append((PyBytes_FromStringAndSize(<const char*>name, namelen),
                                  PyBytes_FromStringAndSize(<const char*>value, valuelen)))
        return 0
    except BaseException as error:
        self.error = error
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int _on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) noexcept:
    cdef H2Session self = <H2Session>user_data
    cdef _Stream stream
    cdef int32_t stream_id = frame.hd.stream_id
    cdef uint8_t kind = frame.hd.type
    cdef bint ended = (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0
    try:
        if kind == NGHTTP2_HEADERS:
            stream = self.streams.get(stream_id)
            if stream is None:
                return 0
            if frame.headers.cat == NGHTTP2_HCAT_REQUEST:
                stream.requested = True
                self.events.append((REQUEST, stream_id, stream.fields, ended))
                stream.fields = None  # (a trailer's fields are dropped: never added to)
            elif ended:
                self.events.append((END, stream_id, None, None))
        elif kind == NGHTTP2_DATA:
            if ended:
                self.events.append((END, stream_id, None, None))
        elif kind == NGHTTP2_RST_STREAM:
            self.events.append((RESET, stream_id, frame.rst_stream.error_code, None))
        elif kind == NGHTTP2_GOAWAY:
            self.events.append((GOAWAY, frame.goaway.last_stream_id, frame.goaway.error_code, None))
        elif kind == NGHTTP2_PING:
            if not frame.hd.flags & NGHTTP2_FLAG_ACK:
                self.events.append((PING, 0, None, None))
        elif kind == NGHTTP2_SETTINGS:
            if not frame.hd.flags & NGHTTP2_FLAG_ACK:
                self.events.append((SETTINGS, 0, None, None))
        elif kind == NGHTTP2_WINDOW_UPDATE:
            self.events.append((WINDOW, stream_id, None, None))
        return 0
    except BaseException as error:
        self.error = error
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int _on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) noexcept:
    cdef H2Session self = <H2Session>user_data
    if frame.hd.type == NGHTTP2_GOAWAY and not self.ending:
        self.terminated = frame.goaway.error_code  # nghttp2's own: a connection error
    return 0


cdef int _on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                             size_t length, void *user_data) noexcept:
    cdef H2Session self = <H2Session>user_data
    try:
        self.events.append((DATA, stream_id, PyBytes_FromStringAndSize(<const char*>data, length), length))
        return 0
    except BaseException as error:
        self.error = error
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int _on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                          void *user_data) noexcept:
    cdef H2Session self = <H2Session>user_data
    cdef _Stream stream
    try:
        stream = self.streams.pop(stream_id, None)
        if stream is not None and stream.requested and error_code != 0 and not _reset_by_client(self, stream_id):
            self.events.append((CLOSED, stream_id, error_code, None))
        return 0
    except BaseException as error:
        self.error = error
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef bint _reset_by_client(H2Session self, int32_t stream_id) except -1:
    """Whether this receive() gave RESET for the stream (its close is the client's, already said)."""
    for event in reversed(self.events):
        if event[0] == RESET and event[1] == stream_id:
            return True
    return False


cdef ssize_t _read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                        uint32_t *data_flags, nghttp2_data_source *source, void *user_data) noexcept:
    cdef H2Session self = <H2Session>user_data
    cdef _Stream stream
    cdef Py_ssize_t size, take
    cdef bytes chunk
    try:
        stream = self.streams.get(stream_id)
        if stream is None:
            data_flags[0] |= NGHTTP2_DATA_FLAG_EOF
            return 0
        size = 0
        while size < <Py_ssize_t>length and stream.chunks:
            chunk = <bytes>stream.chunks[0]
            take = min(<Py_ssize_t>length - size, len(chunk) - stream.offset)
            memcpy(buf + size, <char*>chunk + stream.offset, take)
            size += take
            stream.offset += take
            if stream.offset == len(chunk):
                del stream.chunks[0]
                stream.offset = 0
        stream.queued -= size
        if not stream.queued:
            if stream.ending:
                data_flags[0] |= NGHTTP2_DATA_FLAG_EOF
            elif not size:
                stream.deferred = True
                return NGHTTP2_ERR_DEFERRED
        return size
    except BaseException as error:
        self.error = error
        return NGHTTP2_ERR_CALLBACK_FAILURE
