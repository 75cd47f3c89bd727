"""Reference parsing, JSON merge patch, and the login throttle (driven by a fake clock)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fulcrum.controller.services import refs
from fulcrum.controller.services.errors import InvalidInput, RateLimited
from fulcrum.controller.services.objects import _merge_patch
from fulcrum.controller.services.refs import ParsedRef
from fulcrum.controller.services.throttle import LoginThrottle, ThrottleSettings

UUID = "0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80"
POOL_UUID = f"pool-{UUID}"

# --- reference parsing ----------------------------------------------------------------------------

ACCEPTED = [
    pytest.param(f"/api/pool/{POOL_UUID}", ParsedRef("pool", uuid=POOL_UUID), id="path"),
    pytest.param(
        f"/api/pool/{POOL_UUID}#web", ParsedRef("pool", uuid=POOL_UUID), id="path-with-name-fragment"
    ),
    pytest.param(
        f"https://ctrl.example.com/api/pool/{POOL_UUID}", ParsedRef("pool", uuid=POOL_UUID), id="url"
    ),
    pytest.param(
        f"http://10.0.0.1:9080/api/pool/{POOL_UUID}", ParsedRef("pool", uuid=POOL_UUID), id="url-port"
    ),
    pytest.param(
        f"https://[::1]:9080/api/pool/{POOL_UUID}#web", ParsedRef("pool", uuid=POOL_UUID), id="url-ipv6"
    ),
    pytest.param(POOL_UUID, ParsedRef("pool", uuid=POOL_UUID), id="bare-uuid"),
    pytest.param("/api/pool?name=web", ParsedRef("pool", name="web"), id="query-name"),
    pytest.param("/api/pool?name=my%20pool", ParsedRef("pool", name="my pool"), id="query-name-escaped"),
    pytest.param("/api/pool?name=a+b", ParsedRef("pool", name="a b"), id="query-name-plus"),
    pytest.param("https://ctrl/api/pool?name=web", ParsedRef("pool", name="web"), id="url-query-name"),
    pytest.param("web", ParsedRef("pool", name="web"), id="bare-name"),
    pytest.param("web pool", ParsedRef("pool", name="web pool"), id="bare-name-space"),
    pytest.param("名前", ParsedRef("pool", name="名前"), id="bare-name-unicode"),
    # Only the expected type's prefix makes a bare string a uuid; anything else is a name.
    pytest.param(f"vsvip-{UUID}", ParsedRef("pool", name=f"vsvip-{UUID}"), id="other-type-uuid-is-a-name"),
    pytest.param(
        f"pool-{UUID.upper()}", ParsedRef("pool", name=f"pool-{UUID.upper()}"), id="uppercase-is-a-name"
    ),
]


@pytest.mark.parametrize(("value", "expected"), ACCEPTED)
def test_parse_accepts(value: str, expected: ParsedRef) -> None:
    assert refs.parse(value, "pool", "pool_ref") == expected


WRONG_TYPE = [
    pytest.param(f"/api/vsvip/vsvip-{UUID}", id="path-of-other-type"),
    pytest.param(f"https://ctrl/api/vsvip/vsvip-{UUID}", id="url-of-other-type"),
    pytest.param("/api/vsvip?name=web", id="query-of-other-type"),
    pytest.param(f"/api/pool/vsvip-{UUID}", id="pool-path-with-vsvip-uuid"),
    pytest.param(f"/api/vsvip/pool-{UUID}", id="vsvip-path-with-pool-uuid"),
]


@pytest.mark.parametrize("value", WRONG_TYPE)
def test_parse_wrong_type(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        refs.parse(value, "pool", "servers[0].pool_ref")
    assert caught.value.message.startswith("servers[0].pool_ref: ")
    assert "pool" in caught.value.message


MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param(None, id="null"),
    pytest.param(42, id="number"),
    pytest.param(["web"], id="list"),
    pytest.param({"name": "web"}, id="object"),
    pytest.param("/api/pool/not-a-uuid", id="path-bad-uuid"),
    pytest.param(f"/api/pool/{POOL_UUID}/extra", id="path-extra-segment"),
    pytest.param(f"/api/pool/{POOL_UUID}?name=web", id="path-uuid-and-query"),
    pytest.param("/api/pool?name=", id="query-empty-name"),
    pytest.param("/api/pool?name=a&name=b", id="query-two-names"),
    pytest.param("/api/pool?uuid=x", id="query-without-name"),
    pytest.param("/api/pool", id="collection-without-query"),
    pytest.param("/api/", id="api-root"),
    pytest.param("/api/Pool?name=web", id="type-uppercase"),
    # urlsplit() raises ValueError on these; parse() must turn that into InvalidInput, not a 500.
    pytest.param("https://[::1/api/pool?name=web", id="url-broken-ipv6-host"),
    pytest.param("https://[::1", id="url-unclosed-bracket"),
]


@pytest.mark.parametrize("value", MALFORMED)
def test_parse_malformed(value: Any) -> None:
    # Every malformed reference is the caller's mistake (400 naming the field), never a crash.
    with pytest.raises(InvalidInput) as caught:
        refs.parse(value, "pool", "pool_ref")
    assert caught.value.message.startswith("pool_ref: ")


def test_canonical_and_uuid_of() -> None:
    assert refs.canonical("pool", POOL_UUID) == f"/api/pool/{POOL_UUID}"
    assert refs.uuid_of(refs.canonical("pool", POOL_UUID)) == POOL_UUID


# --- JSON merge patch (RFC 7386, appendix A) ------------------------------------------------------

RFC7386 = [
    pytest.param({"a": "b"}, {"a": "c"}, {"a": "c"}, id="replace"),
    pytest.param({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}, id="add"),
    pytest.param({"a": "b"}, {"a": None}, {}, id="remove"),
    pytest.param({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}, id="remove-one"),
    pytest.param({"a": ["b"]}, {"a": "c"}, {"a": "c"}, id="list-to-scalar"),
    pytest.param({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}, id="scalar-to-list"),
    pytest.param({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}, id="nested"),
    pytest.param({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}, id="lists-replaced-whole"),
    pytest.param(["a", "b"], ["c", "d"], ["c", "d"], id="list-target"),
    pytest.param({"a": "b"}, ["c"], ["c"], id="list-patch"),
    pytest.param({"a": "foo"}, None, None, id="null-patch"),
    pytest.param({"a": "foo"}, "bar", "bar", id="string-patch"),
    pytest.param({"e": None}, {"a": 1}, {"e": None, "a": 1}, id="existing-null-kept"),
    pytest.param([1, 2], {"a": "b", "c": None}, {"a": "b"}, id="object-over-list"),
    pytest.param({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}, id="deep-new"),
    pytest.param({"a": {"b": 1}}, {}, {"a": {"b": 1}}, id="empty-patch"),
    pytest.param({"servers": [{"ip": "1"}]}, {"servers": []}, {"servers": []}, id="empty-list"),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386)
def test_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(target)
    assert _merge_patch(target, patch) == expected
    assert target == before  # the stored document is never changed in place


def test_merge_patch_does_not_share_nested_dicts() -> None:
    target = {"a": {"b": 1}, "keep": {"x": 1}}
    result = _merge_patch(target, {"a": {"c": 2}})
    result["a"]["b"] = 99
    assert target == {"a": {"b": 1}, "keep": {"x": 1}}


# --- login throttle -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _throttle(clock: FakeClock, **settings: Any) -> LoginThrottle:
    values = {"window_s": 60.0, "max_failures_per_user": 3, "max_failures_per_source": 5, **settings}
    return LoginThrottle(clock, ThrottleSettings(**values))


def _fail(throttle: LoginThrottle, user: str, source: str, times: int) -> None:
    for _ in range(times):
        throttle.check(user, source)
        throttle.failure(user, source)


def test_user_limit(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    _fail(throttle, "alice", "10.0.0.1", 3)
    with pytest.raises(RateLimited) as caught:
        throttle.check("alice", "10.0.0.1")
    assert caught.value.retry_after == 60
    # Another source does not help alice; another user from the same source is not blocked.
    with pytest.raises(RateLimited):
        throttle.check("alice", "10.0.0.2")
    throttle.check("bob", "10.0.0.1")


def test_below_user_limit_is_allowed(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    _fail(throttle, "alice", "10.0.0.1", 2)
    throttle.check("alice", "10.0.0.1")


def test_source_limit(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    for index in range(5):  # different users, so only the source budget is spent
        _fail(throttle, f"user{index}", "10.0.0.1", 1)
    with pytest.raises(RateLimited):
        throttle.check("fresh-user", "10.0.0.1")
    throttle.check("fresh-user", "10.0.0.2")


def test_window_expiry(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    _fail(throttle, "alice", "10.0.0.1", 1)
    clock.advance(20)
    _fail(throttle, "alice", "10.0.0.1", 2)
    with pytest.raises(RateLimited) as caught:
        throttle.check("alice", "10.0.0.1")
    assert caught.value.retry_after == 40  # until the oldest failure leaves the window
    clock.advance(39.5)
    with pytest.raises(RateLimited) as caught:
        throttle.check("alice", "10.0.0.1")
    assert caught.value.retry_after == 1
    clock.advance(0.5)  # the first failure is now exactly one window old
    throttle.check("alice", "10.0.0.1")
    throttle.failure("alice", "10.0.0.1")
    with pytest.raises(RateLimited):
        throttle.check("alice", "10.0.0.1")
    clock.advance(60)
    throttle.check("alice", "10.0.0.1")


def test_success_resets_the_user_but_not_the_source(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    _fail(throttle, "alice", "10.0.0.1", 2)
    throttle.success("alice")
    _fail(throttle, "alice", "10.0.0.1", 2)  # a fresh budget of 3
    throttle.check("alice", "10.0.0.1")
    throttle.failure("alice", "10.0.0.1")  # 5th failure from the source in all
    with pytest.raises(RateLimited):
        throttle.check("bob", "10.0.0.1")
    throttle.success("alice")
    with pytest.raises(RateLimited):
        throttle.check("alice", "10.0.0.1")  # the source is still over its budget


def test_success_for_one_user_leaves_others_blocked(clock: FakeClock) -> None:
    throttle = _throttle(clock)
    _fail(throttle, "alice", "10.0.0.1", 3)
    throttle.success("bob")
    with pytest.raises(RateLimited):
        throttle.check("alice", "10.0.0.2")


def test_retry_after_is_at_least_one_second(clock: FakeClock) -> None:
    throttle = _throttle(clock, window_s=0.5)
    _fail(throttle, "alice", "10.0.0.1", 3)
    with pytest.raises(RateLimited) as caught:
        throttle.check("alice", "10.0.0.1")
    assert caught.value.retry_after >= 1


def test_default_settings(clock: FakeClock) -> None:
    throttle = LoginThrottle(clock)
    _fail(throttle, "alice", "10.0.0.1", 5)
    with pytest.raises(RateLimited):
        throttle.check("alice", "10.0.0.1")
