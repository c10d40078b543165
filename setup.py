# Declares the Cython extension; everything else is in pyproject.toml.
from Cython.Build import cythonize
from setuptools import Extension, setup

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
            Extension("proxy.engine._dispatch_c", ["proxy/engine/_dispatch_c.pyx"], extra_compile_args=["-O3"]),
        ],
        compiler_directives={"language_level": "3"},
    ),
)
