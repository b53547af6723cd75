"""AppendWaiters: a change wakes the waiters that wait for it, and only those."""
import trio
import trio.testing

from kafka_compat.api.waiters import AppendWaiters

P = ("t", 0)


async def _woken(waiters: AppendWaiters, change, **wait_for) -> bool:
    """Whether a waiter on P with ``wait_for`` is woken by ``change()``."""
    woken = []

    async def wait():
        await waiters.wait_any([P], 5, **wait_for)
        woken.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        change()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    return bool(woken)


async def test_a_consumer_fetch_wakes_on_appends_and_high_watermark_moves():
    waiters = AppendWaiters()
    assert await _woken(waiters, lambda: waiters.appended(*P))
    assert await _woken(waiters, lambda: waiters.high_watermark_moved(*P))
    assert await _woken(waiters, lambda: waiters.notify(*P))
    assert not await _woken(waiters, lambda: waiters.notify("t", 1))


async def test_a_follower_fetch_sleeps_through_high_watermark_moves():
    waiters = AppendWaiters()
    assert not await _woken(waiters, lambda: waiters.high_watermark_moved(*P), high_watermark=False)
    assert await _woken(waiters, lambda: waiters.appended(*P), high_watermark=False)
    assert await _woken(waiters, lambda: waiters.notify(*P), high_watermark=False)  # ISR, leadership


async def test_an_acks_all_produce_sleeps_through_appends():
    waiters = AppendWaiters()
    assert not await _woken(waiters, lambda: waiters.appended(*P), appends=False)
    assert await _woken(waiters, lambda: waiters.high_watermark_moved(*P), appends=False)
    assert await _woken(waiters, lambda: waiters.notify(*P), appends=False)


async def test_waiters_are_forgotten_once_done():
    waiters = AppendWaiters()
    await _woken(waiters, lambda: waiters.appended(*P), appends=False)  # cancelled while waiting
    await _woken(waiters, lambda: waiters.appended(*P))
    assert not waiters._waiting


async def test_shutdown_wakes_everyone_and_later_waits_return_at_once():
    waiters = AppendWaiters()
    assert await _woken(waiters, waiters.wake_all, appends=False, high_watermark=False)
    with trio.fail_after(1):
        await waiters.wait_any([P], 60)


async def test_an_acks_all_produce_sleeps_until_the_high_watermark_reaches_its_append():
    waiters = AppendWaiters()
    assert not await _woken(waiters, lambda: waiters.high_watermark_moved(*P, 9), appends=False, high_watermark_at=[10])
    assert await _woken(waiters, lambda: waiters.high_watermark_moved(*P, 10), appends=False, high_watermark_at=[10])
    assert await _woken(waiters, lambda: waiters.notify(*P), appends=False, high_watermark_at=[10])  # ISR, leadership
    assert await _woken(waiters, lambda: waiters.high_watermark_moved(*P, 3))  # a consumer's fetch: any move
