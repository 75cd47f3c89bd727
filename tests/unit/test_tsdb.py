"""The analytics store: rollups by kind, retention, and request-log search and size bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulcrum.controller.store.tsdb import LogQuery, MetricStore, Point, Resolution

KINDS = {"rate": "avg", "peak": "max", "count": "sum"}


@pytest.fixture
def store(tmp_path: Path) -> MetricStore:
    return MetricStore(
        tmp_path / "a.db",
        lambda metric: KINDS[metric],
        [Resolution(5, 3600), Resolution(300, 86400), Resolution(3600, 30 * 86400)],
        max_log_rows=10,
    )


def test_points_roll_up_into_closed_buckets_by_kind(store: MetricStore) -> None:
    base = 1_800_000_000 - 1_800_000_000 % 3600  # an hour boundary
    for i in range(120):  # ten minutes of 5 s points
        ts = base + 5 * i
        store.add(
            [
                Point("virtualservice", "vs", "rate", ts, float(i)),
                Point("virtualservice", "vs", "peak", ts, float(i % 7)),
                Point("virtualservice", "vs", "count", ts, 1.0),
            ]
        )
    # Only the first 5-minute bucket is closed at base + 301.
    assert store.rollup(base + 301) == 3
    five = store.series("vs", ["rate", "peak", "count"], step=300)
    assert five["rate"] == [(base, sum(range(60)) / 60)]
    assert five["peak"] == [(base, 6.0)]
    assert five["count"] == [(base, 60.0)]
    # Rolling up again later adds the second bucket without touching the first.
    store.rollup(base + 900)
    five = store.series("vs", ["rate"], step=300)
    assert five["rate"] == [(base, sum(range(60)) / 60), (base + 300, sum(range(60, 120)) / 60)]
    # The hour bucket is not closed yet.
    assert store.series("vs", ["rate"], step=3600)["rate"] == []
    store.rollup(base + 3600)
    assert store.series("vs", ["rate"], step=3600)["rate"] == [(base, sum(range(120)) / 120)]


def test_finest_points_expire_after_their_retention(store: MetricStore) -> None:
    store.add([Point("pool", "p", "rate", 1000, 1.0), Point("pool", "p", "rate", 5000, 2.0)])
    assert store.expire(5000 + 10) == 1  # 1000 is older than 3600 s
    assert store.series("p", ["rate"])["rate"] == [(5000, 2.0)]


def test_series_picks_the_resolution_and_limit(store: MetricStore) -> None:
    store.add([Point("serviceengine", "se", "rate", 5 * i, float(i)) for i in range(1, 11)])
    assert store.resolution_for(None).step_s == 5
    assert store.resolution_for(60).step_s == 300
    assert store.resolution_for(99999).step_s == 3600
    assert store.series("se", ["rate"], limit=3)["rate"] == [(40, 8.0), (45, 9.0), (50, 10.0)]


def _log(i: int, **extra: object) -> dict[str, object]:
    return {"ts": 100.0 + i, "vs_uuid": "vs-a", "client_ip": "127.0.0.1", "client_port": 1000 + i,
            "status": 200, "uri": f"/item/{i}", "significant": "", **extra}  # fmt: skip


def test_logs_are_searchable_and_bounded_by_size(store: MetricStore) -> None:
    rows = [_log(i) for i in range(8)]
    rows += [
        _log(8, status=503, significant="error"),
        _log(9, status=404, uri="/login", client_ip="127.0.0.9"),
    ]
    rows += [{**_log(10), "vs_uuid": "vs-b"}]
    store.add([], rows, "se-1", lambda vs: "tenant-" + vs)
    assert store.log_count() == 10  # the oldest row went: retention is bounded by size
    total, found = store.search_logs(LogQuery(vs_uuids=["vs-a"], status_class=5))
    assert (total, [r["client_port"] for r in found]) == (1, [1008])
    assert found[0]["se_uuid"] == "se-1"
    assert store.search_logs(LogQuery(vs_uuids=["vs-a"], client_ip="127.0.0.9"))[0] == 1
    assert store.search_logs(LogQuery(vs_uuids=["vs-a"], uri_contains="login"))[0] == 1
    assert store.search_logs(LogQuery(vs_uuids=["vs-a"], significant_only=True))[0] == 1
    assert store.search_logs(LogQuery(vs_uuids=["vs-a"], since=105, until=107))[0] == 2
    # Another VS's logs never show up in a query for this one.
    assert all(r["vs_uuid"] == "vs-a" for r in store.search_logs(LogQuery(vs_uuids=["vs-a"], limit=100))[1])
    assert store.search_logs(LogQuery(vs_uuids=[]))[0] == 0


def test_resolutions_must_nest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple"):
        MetricStore(tmp_path / "b.db", lambda _m: "avg", [Resolution(5, 10), Resolution(7, 100)])


def test_reports_faster_than_the_step_merge_by_kind_and_keep_counts_exact(store: MetricStore) -> None:
    # Five 1-second reports in one 5-second bucket: 3, 5, 0, 2, 10 responses per second.
    for i, rate in enumerate((3.0, 5.0, 0.0, 2.0, 10.0)):
        store.add([Point("virtualservice", "vs", "rate", 100 + i, rate, duration=1.0)])
        store.add([Point("virtualservice", "vs", "peak", 100 + i, rate, duration=1.0)])
        store.add([Point("virtualservice", "vs", "count", 100 + i, 1.0, duration=1.0)])
    ((ts, value, covered),) = store.series_covered("vs", ["rate"])["rate"]
    assert (ts, covered) == (100, 5.0)
    assert value * covered == 20.0  # exactly the responses sent
    assert store.series("vs", ["peak"])["peak"] == [(100, 10.0)]
    assert store.series("vs", ["count"])["count"] == [(100, 5.0)]
