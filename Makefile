# `make run` and `make test` each set up everything they need first:
# a virtualenv in .venv with fastroute installed in editable mode, which
# builds the Cython extension. Re-running is cheap: the install is redone
# only when the packaging or the extension's source changes.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fastroute-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: all install run test asan bench bench-ci typecheck clean

all: test

$(STAMP): pyproject.toml setup.py fastroute/_table.pyx proxy/protocol/_head_c.pyx proxy/protocol/_wire_c.pyx proxy/protocol/_lane_c.pyx \
		proxy/protocol/_plain_c.pyx proxy/protocol/_bytes.pxd proxy/protocol/_bytes.h proxy/protocol/_plain_c.pxd \
		proxy/engine/_cycle_c.pyx proxy/engine/_cycle_c.pxd proxy/engine/_route_c.pyx proxy/engine/_route_c.pxd \
		proxy/engine/_dispatch_c.pyx proxy/engine/_h2cycle_c.pyx proxy/engine/_sys.pxd proxy/protocol/_h2session_c.pyx proxy/protocol/_nghttp2.pxd
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[gateway,test,bench]'
	touch $@

# (A build made before libnghttp2-dev was installed lacks the HTTP/2 session's extension: built again.)
install:
	@if [ -e /usr/include/nghttp2/nghttp2.h ] && ! ls proxy/protocol/_h2session_c.*.so >/dev/null 2>&1; then rm -f $(STAMP); fi
	@$(MAKE) --no-print-directory $(STAMP)

# The gateway, in the foreground. Pass flags with ARGS="...".
run: $(STAMP)
	$(VENV)/bin/fastroute serve $(ARGS)

# Every test, after .ci/setup: as root on Debian it installs the system
# packages the tests use and starts dockerd if no engine answers; otherwise
# (or with FASTROUTE_INSTALL=no) it names what is missing, and those tests
# skip saying why, unless FASTROUTE_REQUIRE_DOCKER=1 (CI) makes them fail.
# The extensions are built after it (the HTTP/2 session's needs the
# libnghttp2-dev it installs), so the tests require them (a fallback to the
# pure-Python twins would be a failure, not a skip).
test:
	.ci/setup
	@$(MAKE) --no-print-directory install
	FASTROUTE_REQUIRE_COMPILED=$${FASTROUTE_REQUIRE_COMPILED-1} $(PY) -m pytest $(PYTEST_ARGS)

# The compiled code's tests again, built with AddressSanitizer (.ci/asan).
asan: $(STAMP)
	.ci/asan

bench: $(STAMP)
	$(PY) -m pytest bench --benchmark-only $(PYTEST_ARGS)

# The short benchmark pass CI runs: fails only on a ratio below its floor (bench/ci.py).
bench-ci: $(STAMP)
	$(PY) bench/ci.py --json bench-ci.json

typecheck: $(STAMP)
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build *.egg-info fastroute/_table.c fastroute/*.so proxy/protocol/*.c proxy/protocol/*.so
