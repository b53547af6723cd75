"""Request frames are received into buffers from a pool shared by connections."""
from kafka_compat.server.frames import MIN_POOLED_FRAME, FramePool

BIG = MIN_POOLED_FRAME * 4


def test_a_buffer_goes_back_to_the_pool_and_is_reused():
    pool = FramePool()
    frame = pool.take(BIG)
    frame[:3] = b"abc"
    buf = frame.obj
    pool.give_back(frame)
    again = pool.take(BIG - 100)
    assert again.obj is buf and len(again) == BIG - 100
    assert bytes(again[:3]) == b"abc"
    assert pool.take(BIG).obj is not buf  # in use: a new one


def test_the_smallest_buffer_that_fits_is_taken():
    pool = FramePool()
    frames = [pool.take(n) for n in (BIG * 2, BIG, BIG * 3)]
    bufs = [f.obj for f in frames]
    for f in frames:
        pool.give_back(f)
    assert pool.take(BIG + 1).obj is bufs[0]
    assert pool.take(BIG - 1).obj is bufs[1]
    assert pool.take(BIG * 4).obj not in bufs


def test_a_frame_someone_still_views_is_left_to_them():
    pool = FramePool()
    frame = pool.take(BIG)
    frame[:5] = b"hello"
    records = frame[:5]  # a handler kept a view past its request
    pool.give_back(frame)
    assert pool.free == []
    pool.take(BIG)[:5] = b"XXXXX"
    assert bytes(records) == b"hello"


def test_the_pool_keeps_at_most_its_size_and_no_small_buffers():
    pool = FramePool(max_bytes=BIG * 2)
    frames = [pool.take(BIG) for _ in range(3)] + [pool.take(100)]
    for f in frames:
        pool.give_back(f)
    assert len(pool.free) == 2 and pool.free_bytes == BIG * 2
