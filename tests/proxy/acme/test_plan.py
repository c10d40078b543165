from __future__ import annotations

import pytest

from proxy.acme._plan import RENEW_BEFORE, RETRY_FIRST, RETRY_MAX, Attempts, renew_at, retry_after, wanted_names

DAY = 86400.0


def test_only_names_routes_give_that_a_ca_can_prove() -> None:
    hosts = [None, "api.example.com", "*.example.com", "shop.example.com", "api.example.com", "localhost",
             "10.0.0.5", "[::1]", "held.example.com", "xn--bcher-kva.example"]
    assert wanted_names(hosts, {"held.example.com"}.__contains__) == [
        "api.example.com", "shop.example.com", "xn--bcher-kva.example"]


@pytest.mark.parametrize(("lifetime", "left_at_renewal"), [
    pytest.param(90 * DAY, 30 * DAY, id="lets_encrypt_90_days"),
    pytest.param(365 * DAY, RENEW_BEFORE, id="a_year"),
    pytest.param(6 * DAY, 2 * DAY, id="six_days_a_third"),
    pytest.param(90.0, 30.0, id="pebble_short"),
])
def test_renewal_time(lifetime: float, left_at_renewal: float) -> None:
    assert renew_at(1000.0, 1000.0 + lifetime) == pytest.approx(1000.0 + lifetime - left_at_renewal)


def test_retries_back_off_and_respect_the_ca() -> None:
    assert [retry_after(n) for n in (1, 2, 3)] == [RETRY_FIRST, 2 * RETRY_FIRST, 4 * RETRY_FIRST]
    assert retry_after(40) == RETRY_MAX
    assert retry_after(1, ca_says=3600.0) == 3600.0
    assert retry_after(3, ca_says=1.0) == 4 * RETRY_FIRST


def test_attempts() -> None:
    attempts = Attempts()
    assert attempts.may_try(0.0)
    assert attempts.failed(100.0, "boom") == RETRY_FIRST
    assert not attempts.may_try(100.0 + RETRY_FIRST - 1) and attempts.may_try(100.0 + RETRY_FIRST)
    attempts.failed(500.0, "boom again")
    assert (attempts.failures, attempts.next_try, attempts.last_error) == (2, 500.0 + 2 * RETRY_FIRST, "boom again")
    attempts.succeeded()
    assert attempts == Attempts()


def test_a_rate_limit_from_the_ca_waits_an_hour_at_least() -> None:
    from acme import messages

    from proxy.acme._client import RATE_LIMITED_WAIT, ca_error

    limited = ca_error(messages.Error.with_code("rateLimited", detail="too many certificates"))
    other = ca_error(messages.Error.with_code("malformed", detail="bad CSR"))
    assert (limited.wait, other.wait) == (RATE_LIMITED_WAIT, None)
    assert "too many certificates" in str(limited)
    attempts = Attempts()
    assert attempts.failed(0.0, str(limited), limited.wait) == RATE_LIMITED_WAIT
