# `--parser h11`: the gateway's socket-level tests again, with h11 parsing
# and writing every message (the reference the fast parser is compared with,
# and the fallback). Run as a child pytest with FASTROUTE_TEST_PARSER=h11,
# which tests/helpers.make_config reads; the trailer test in
# test_hardening.py expects a different status from each parser, so a run
# that silently used the fast parser would fail.

from __future__ import annotations

from ...helpers import rerun_tests

MODULES = ["gateway/test_gateway.py", "gateway/test_hardening.py", "gateway/test_splice.py",
           # HTTP/2 over h2's session (the reference), as --parser h11 chooses it:
           "gateway/test_h2.py", "gateway/test_h2_clients.py", "gateway/test_h2_differential.py",
           "gateway/test_connection_fuzz.py", "admin/test_admin.py"]


def test_the_gateway_tests_pass_with_h11() -> None:
    result = rerun_tests(MODULES, {"FASTROUTE_TEST_PARSER": "h11"}, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout, result.stdout[-2000:]
