"""Tests for serving/deadlines.py: results, errors and timeouts of thread-pool futures."""

import asyncio
import concurrent.futures
import gc
import threading
import time
import weakref

import pytest

from serving.deadlines import Deadlines


def _later(pool, seconds, value=None, error=None):
  def work():
    time.sleep(seconds)
    if error is not None:
      raise error
    return value
  return pool.submit(work)


def test_results_errors_and_timeouts_each_reach_their_own_request():
  async def scenario():
    deadlines = Deadlines(0.3)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
      calls = [deadlines.wait(_later(pool, 0.01, value="fast")),
               deadlines.wait(_later(pool, 1.0, value="slow")),
               deadlines.wait(_later(pool, 0.05, error=ValueError("bad input"))),
               deadlines.wait(_later(pool, 0.2, value="in time")),
               deadlines.wait(_later(pool, 0.8, value="slow too"))]
      started = time.monotonic()
      outcomes = await asyncio.gather(*calls, return_exceptions=True)
      return outcomes, time.monotonic() - started

  outcomes, elapsed = asyncio.run(scenario())
  assert outcomes[0] == "fast" and outcomes[3] == "in time"
  assert isinstance(outcomes[1], asyncio.TimeoutError)
  assert isinstance(outcomes[4], asyncio.TimeoutError)
  assert isinstance(outcomes[2], ValueError) and str(outcomes[2]) == "bad input"
  # The slow calls were abandoned at the deadline, not awaited to the end.
  assert elapsed < 0.75


def test_deadlines_follow_arrival_order_across_bursts():
  async def scenario():
    deadlines = Deadlines(0.15)
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      first = asyncio.ensure_future(deadlines.wait(pool.submit(gate.wait)))
      await asyncio.sleep(0.1)
      second = asyncio.ensure_future(deadlines.wait(pool.submit(gate.wait)))
      await asyncio.sleep(0.08)  # past the first deadline, before the second
      state = (first.done(), second.done())
      await asyncio.sleep(0.12)
      gate.set()
      return state, (first.done(), second.done()), first.exception(), second.exception()

  midway, end, first_error, second_error = asyncio.run(scenario())
  assert midway == (True, False)
  assert end == (True, True)
  assert isinstance(first_error, asyncio.TimeoutError)
  assert isinstance(second_error, asyncio.TimeoutError)


def test_no_timeout_waits_for_the_result():
  async def scenario():
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      return await Deadlines(None).wait(_later(pool, 0.2, value=42))
  assert asyncio.run(scenario()) == 42


def test_a_cancelled_request_does_not_break_later_ones():
  async def scenario():
    deadlines = Deadlines(1.0)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      abandoned = asyncio.ensure_future(deadlines.wait(_later(pool, 0.1, value="x")))
      await asyncio.sleep(0.01)
      abandoned.cancel()  # e.g. the client disconnected
      value = await deadlines.wait(_later(pool, 0.15, value="y"))
      await asyncio.sleep(0.05)  # the abandoned call finishes meanwhile
      return abandoned.cancelled(), value

  assert asyncio.run(scenario()) == (True, "y")


@pytest.mark.parametrize("loop_factory", ["asyncio", "uvloop"])
def test_works_on_both_event_loops(loop_factory):
  async def scenario():
    deadlines = Deadlines(0.05)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      ok = await deadlines.wait(_later(pool, 0.0, value=1))
      with pytest.raises(asyncio.TimeoutError):
        await deadlines.wait(_later(pool, 0.3))
      return ok
  if loop_factory == "uvloop":
    import uvloop  # pylint: disable=import-outside-toplevel
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
      assert runner.run(scenario()) == 1
  else:
    assert asyncio.run(scenario()) == 1


def test_answered_requests_leave_the_queue_and_release_their_results():
  async def scenario():
    deadlines = Deadlines(30.0)  # far in the future: the timer never fires here
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      for _ in range(200):
        await deadlines.wait(_later(pool, 0.0, value=bytearray(1 << 20)))  # 1 MiB each
      gate = threading.Event()
      pending = asyncio.ensure_future(deadlines.wait(pool.submit(gate.wait)))
      await asyncio.sleep(0.01)
      # Answered behind a pending request: their entries stay, their results must not.
      answered = []
      for i in range(50):
        result = await deadlines.wait(_later(pool, 0.0, value=_Result(i)))
        answered.append(weakref.ref(result))
        del result
      gc.collect()
      alive = sum(ref() is not None for ref in answered)
      while_pending = len(deadlines)
      gate.set()
      await pending
      return len(deadlines), while_pending, alive

  remaining, while_pending, alive = asyncio.run(scenario())
  assert alive <= 1  # the last may still be referenced by the pool thread; not 50
  assert while_pending == 51  # the pending one and the 50 answered behind it
  assert remaining == 0


class _Result:
  def __init__(self, value):
    self.value = value


def test_wait_future_gives_each_request_its_own_deadline_and_a_burst_all_its_results():
  from serving.deadlines import wait_future  # pylint: disable=g-import-not-at-top

  async def scenario():
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      slow = _later(pool, 0.5, value="slow")
      short, long_ = wait_future(slow, 0.1), wait_future(_later(pool, 0.5, value="ok"), 5)
      failing = wait_future(_later(pool, 0.01, error=ValueError("bad input")), None)
      outcomes = await asyncio.gather(short, long_, failing, return_exceptions=True)
      # A batch answering many requests at once, from one thread: every one arrives.
      burst = [concurrent.futures.Future() for _ in range(64)]
      waiting = asyncio.gather(*[wait_future(f, 5) for f in burst])

      def answer_all():
        for i, f in enumerate(burst):
          f.set_result(i)
      threading.Thread(target=answer_all).start()
      return outcomes, await waiting, slow

  (short, long_, failing), burst, slow = asyncio.run(scenario())
  assert isinstance(short, asyncio.TimeoutError)
  assert long_ == "ok" and isinstance(failing, ValueError)
  assert burst == list(range(64))
  assert slow.result() == "slow"  # the expired request's call was not cancelled
