"""The shared per-service budget: a token bucket every customer of a fleet draws from."""

from __future__ import annotations

import threading

from bootstrap.clients import budget


def test_burst_is_free_then_calls_are_paced() -> None:
    bucket = budget.Budget(rate=50.0, burst=5)
    for _ in range(5):
        bucket.acquire()
    assert bucket.waited == 0.0
    bucket.acquire()
    assert bucket.waited > 0.0  # the sixth call had to wait for a token


def test_threads_share_one_bucket() -> None:
    bucket = budget.Budget(rate=200.0, burst=10)
    threads = [threading.Thread(target=lambda: [bucket.acquire() for _ in range(10)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 40 calls against a burst of 10: the other 30 waited, whichever thread made them.
    assert bucket.waited > 0.0


def test_zero_rate_means_unlimited() -> None:
    bucket = budget.Budget(rate=0.0)
    for _ in range(1000):
        bucket.acquire()
    assert bucket.waited == 0.0


def test_metered_class_draws_from_its_service() -> None:
    calls: list[str] = []

    class Probe(budget.Budget):
        def acquire(self) -> None:
            calls.append("token")

    budget._budgets["probe-service"] = Probe(1.0)

    @budget.metered("probe-service")
    class Adapter:
        def public(self) -> int:
            return 1

        def _private(self) -> int:
            return 2

    adapter = Adapter()
    assert adapter.public() == 1 and adapter._private() == 2
    assert calls == ["token"]
