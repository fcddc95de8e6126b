"""`ahead`: a generator's items, computed one ahead in a thread, in order, errors in place."""

from __future__ import annotations

import threading

import pytest

from regmixd_cli.store.ahead import ahead


def test_items_come_in_order_from_another_thread():
    seen: list[str] = []

    def numbers():
        for i in range(50):
            seen.append(threading.current_thread().name)
            yield i

    assert list(ahead(numbers(), "regmixd-test")) == list(range(50))
    assert all(name.startswith("regmixd-test") for name in seen)


def test_an_error_is_raised_at_the_item_it_replaced():
    def failing():
        yield 1
        yield 2
        raise ValueError("third")

    got = []
    with pytest.raises(ValueError, match="third"):
        for item in ahead(failing(), "regmixd-test"):
            got.append(item)
    assert got == [1, 2]


def test_stopping_early_computes_at_most_one_item_more():
    made = []

    def counted():
        for i in range(100):
            made.append(i)
            yield i

    items = ahead(counted(), "regmixd-test")
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert made == [0, 1, 2, 3]
