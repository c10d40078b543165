# Declares the Cython extensions; everything else is in pyproject.toml.
# proxy.protocol._h2session_c links libnghttp2 (Debian's libnghttp2-dev for
# the header; the shared library comes with curl on any Debian): where the
# header is missing it is left out with a warning, and HTTP/2 is served by
# the pure-Python session (h2). A manylinux wheel would carry the library
# (auditwheel repair copies it in); ours link the system's.
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

NGHTTP2_HEADER = os.environ.get("FASTROUTE_NGHTTP2_HEADER", "/usr/include/nghttp2/nghttp2.h")
nghttp2 = []
if os.path.exists(NGHTTP2_HEADER):
    nghttp2.append(Extension("proxy.protocol._h2session_c", ["proxy/protocol/_h2session_c.pyx"],
                             libraries=["nghttp2"], extra_compile_args=["-O3"]))
else:
    print(f"setup.py: {NGHTTP2_HEADER} not found (apt-get install libnghttp2-dev): HTTP/2 over h2 only",
          file=sys.stderr)

setup(
    ext_modules=cythonize(
        [
            Extension("fastroute._table", ["fastroute/_table.pyx"], extra_compile_args=["-O3"]),
            Extension("proxy.protocol._head_c", ["proxy/protocol/_head_c.pyx"], extra_compile_args=["-O3"]),
            Extension("proxy.protocol._wire_c", ["proxy/protocol/_wire_c.pyx"], extra_compile_args=["-O3"]),
            Extension("proxy.protocol._lane_c", ["proxy/protocol/_lane_c.pyx"], extra_compile_args=["-O3"]),
            Extension("proxy.protocol._plain_c", ["proxy/protocol/_plain_c.pyx"], extra_compile_args=["-O3"]),
            Extension("proxy.engine._cycle_c", ["proxy/engine/_cycle_c.pyx"], extra_compile_args=["-O3"]),
            Extension("proxy.engine._route_c", ["proxy/engine/_route_c.pyx"], extra_compile_args=["-O3"]),
            Extension("proxy.engine._h2cycle_c", ["proxy/engine/_h2cycle_c.pyx"], extra_compile_args=["-O3"]),
            Extension("proxy.engine._dispatch_c", ["proxy/engine/_dispatch_c.pyx"], extra_compile_args=["-O3"]),
            *nghttp2,
        ],
        compiler_directives={"language_level": "3"},
    ),
)
