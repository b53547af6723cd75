"""locks.held: a free lock is taken without a scheduler pass; a held one is waited for."""
import trio

from kafka_compat.locks import held


async def test_free_lock_taken_without_letting_other_tasks_run():
    lock = trio.Lock()
    ran = []

    async def other():
        ran.append(1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        async with held(lock):
            assert lock.locked() and not ran  # no checkpoint: the other task has not run
        assert not lock.locked()


async def test_held_lock_waited_for_in_turn():
    lock = trio.Lock()
    order = []

    async def take(name):
        async with held(lock):
            order.append(name)
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        async with held(lock):
            nursery.start_soon(take, "a")
            await trio.sleep(0.01)  # "a" is queued for the lock now
            nursery.start_soon(take, "b")
            await trio.sleep(0.01)
            order.append("first")
    assert order == ["first", "a", "b"]


async def test_released_when_the_block_raises():
    lock = trio.Lock()
    try:
        async with held(lock):
            raise ValueError
    except ValueError:
        pass
    assert not lock.locked()
