"""Sign-in rate limit: after repeated failures for one user name, or from one client address, the studio answers
429 with Retry-After without checking the secret (so guessing stops paying), and lets them in again once the
failures age out of the window; other users and other addresses are not affected."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from silverset.components.studio.app import create_app
from silverset.components.studio.auth_limit import SignInLimiter

DANA_PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(studio, users, clock):
    return create_app(studio, users=users, limiter=SignInLimiter(window_s=600, per_user=5, per_address=12, clock=clock))


def browser(app, address: str) -> TestClient:
    return TestClient(app, base_url="http://localhost", client=(address, 40_000))


def test_limiter_counts_failures_in_a_sliding_window(clock):
    limiter = SignInLimiter(window_s=600, per_user=3, per_address=10, clock=clock)
    for _ in range(2):
        limiter.failed("user:dana")
        clock.now += 10
    assert limiter.retry_after("user:dana") == 0
    limiter.failed("user:dana")  # third failure at t+20: blocked until the first (t) leaves the window
    assert limiter.retry_after("user:dana") == 600 - 20
    assert limiter.retry_after("user:bob", "address:10.0.0.1") == 0
    clock.now += 580
    assert limiter.retry_after("user:dana") == 0  # the first failure aged out; two remain
    limiter.failed("user:dana")
    assert limiter.retry_after("user:dana") == 10


def test_repeated_wrong_passwords_for_a_user_get_429_with_retry_after_then_clear(app, clock):
    with browser(app, "10.0.0.1") as attacker, browser(app, "10.0.0.2") as dana:
        for _ in range(5):
            assert attacker.post("/api/session", json={"user": "dana", "password": "guess"}).status_code == 401
        limited = attacker.post("/api/session", json={"user": "dana", "password": DANA_PASSWORD})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) == 600
        # the right password from elsewhere is refused too while the user is limited: guessing must not pay
        assert dana.post("/api/session", json={"user": "dana", "password": DANA_PASSWORD}).status_code == 429
        clock.now += 300
        assert int(dana.post("/api/session", json={"user": "dana", "password": "x"}).headers["retry-after"]) == 300
        clock.now += 301
        ok = dana.post("/api/session", json={"user": "dana", "password": DANA_PASSWORD})
        assert ok.status_code == 200 and ok.json()["role"] == "adjudicator"


def test_one_address_trying_many_users_is_limited_and_other_addresses_are_not(app, tokens):
    with browser(app, "10.0.0.9") as sprayer, browser(app, "10.0.0.10") as bob:
        for i in range(12):
            assert sprayer.post("/api/session", json={"user": f"user{i}", "token": "guess"}).status_code == 401
        limited = sprayer.post("/api/session", json={"user": "bob", "token": tokens["bob"]})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert sprayer.get("/api/attributes", headers={"Authorization": f"Bearer {tokens['bob']}"}).status_code == 429
        assert bob.post("/api/session", json={"user": "bob", "token": tokens["bob"]}).status_code == 200


def test_bad_bearer_tokens_count_against_the_address(app, tokens):
    with browser(app, "10.0.0.20") as guesser:
        for i in range(12):
            assert guesser.get("/api/attributes", headers={"Authorization": f"Bearer guess-{i}"}).status_code == 401
        assert guesser.get("/api/attributes", headers={"Authorization": f"Bearer {tokens['bob']}"}).status_code == 429
    with browser(app, "10.0.0.21") as someone_else:
        assert (
            someone_else.get("/api/attributes", headers={"Authorization": f"Bearer {tokens['bob']}"}).status_code == 200
        )
