# What the engine's HTTP/2 cycle (engine/_h2cycle_c.pyx) reads of _lane_c.pyx without a Python
# call: a response head of the lane's kind as HTTP/2's header list, packed for the session.

cdef struct LaneResponse:
    int status
    long long size  # its Content-Length
    bint keep  # the backend connection may be pooled (no Connection: close)
    Py_ssize_t count  # fields in the packed list

cdef bytes response_packed(const unsigned char* p, Py_ssize_t n, list extra, LaneResponse* out)
