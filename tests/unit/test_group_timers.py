"""Keyed timers on trio's clock (virtual time via the autojump clock)."""
import trio

from kafka_compat.group.timers import Timers


async def test_timers_fire_in_deadline_order(autojump_clock, nursery):
    timers = Timers()
    nursery.start_soon(timers.run)
    start = trio.current_time()
    fired = []
    timers.schedule("late", 300, lambda: fired.append(("late", trio.current_time() - start)))
    timers.schedule("early", 100, lambda: fired.append(("early", trio.current_time() - start)))
    await trio.sleep(1)
    assert fired == [("early", 0.1), ("late", 0.3)]


async def test_scheduling_a_key_again_replaces_its_timer(autojump_clock, nursery):
    timers = Timers()
    nursery.start_soon(timers.run)
    start = trio.current_time()
    fired = []
    timers.schedule("k", 100, lambda: fired.append("first"))
    timers.schedule("k", 500, lambda: fired.append(trio.current_time() - start))
    assert "k" in timers
    await trio.sleep(1)
    assert fired == [0.5]
    assert "k" not in timers


async def test_cancel(autojump_clock, nursery):
    timers = Timers()
    nursery.start_soon(timers.run)
    fired = []
    timers.schedule("a", 100, lambda: fired.append("a"))
    timers.schedule("b", 200, lambda: fired.append("b"))
    timers.cancel("a")
    timers.cancel("missing")
    await trio.sleep(1)
    assert fired == ["b"]
    timers.schedule("c", 100, lambda: fired.append("c"))
    timers.cancel_all()
    await trio.sleep(1)
    assert fired == ["b"]


async def test_a_callback_may_schedule_and_a_failing_one_does_not_stop_the_others(autojump_clock, nursery):
    timers = Timers()
    nursery.start_soon(timers.run)
    fired = []

    def boom():
        raise RuntimeError("bug in a callback")

    timers.schedule("boom", 10, boom)
    timers.schedule("chain", 20, lambda: timers.schedule("next", 0, lambda: fired.append("next")))
    await trio.sleep(1)
    assert fired == ["next"]
