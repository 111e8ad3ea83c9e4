"""Per-request deadlines on an asyncio loop at the cost of one deque append each.

Every REST model call has the same timeout (`--rest_api_timeout_in_ms`), so deadlines
expire in arrival order: a FIFO queue with a single loop timer armed for its head does
what one `asyncio.wait_for` per request did (a Task, a timer and callbacks each), which
showed up as ~10% of the event loop's time under load.
"""

import asyncio
import collections
import concurrent.futures
import time
from typing import Optional

from serving.loop_delivery import deliver_to


class Deadlines:
  """Awaits thread-pool futures on one loop, failing each after `timeout` seconds."""

  def __init__(self, timeout: Optional[float]):
    self._timeout = timeout
    # [deadline, asyncio future or None once answered]: an answered request drops its
    # future at once, so the queue never holds results (or their memory) for long.
    self._queue: collections.deque = collections.deque()
    self._timer: Optional[asyncio.TimerHandle] = None

  def __len__(self) -> int:
    return len(self._queue)

  async def wait(self, future: concurrent.futures.Future):
    """The future's result; raises asyncio.TimeoutError past the deadline."""
    waiter = asyncio.get_running_loop().create_future()
    future.add_done_callback(deliver_to(waiter))
    return await self.wait_on(waiter)

  async def wait_on(self, waiter: asyncio.Future):
    """The result of an asyncio future that a worker thread answers (through
    `serving.loop_delivery`); raises asyncio.TimeoutError past the deadline."""
    loop = asyncio.get_running_loop()
    if self._timeout is None:
      return await waiter
    entry = [time.monotonic() + self._timeout, waiter]
    self._queue.append(entry)
    if self._timer is None:
      self._arm(loop)
    try:
      return await waiter
    finally:
      entry[1] = None
      self._drop_answered()

  def _drop_answered(self):
    while self._queue and self._queue[0][1] is None:
      self._queue.popleft()

  def _arm(self, loop):
    self._drop_answered()
    if self._queue:
      delay = max(0.0, self._queue[0][0] - time.monotonic())
      self._timer = loop.call_at(loop.time() + delay, self._expire, loop)
    else:
      self._timer = None

  def _expire(self, loop):
    now = time.monotonic()
    while self._queue and (self._queue[0][1] is None or self._queue[0][0] <= now):
      waiter = self._queue.popleft()[1]
      if waiter is not None and not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())
    self._arm(loop)


async def wait_future(future: concurrent.futures.Future, timeout: Optional[float]):
  """A thread-pool future's result on the running loop; raises asyncio.TimeoutError after
  `timeout` seconds (None: no limit). For deadlines that differ per request (gRPC's):
  one loop timer each, and unlike `asyncio.wait_for(asyncio.wrap_future(...))` no Task,
  and the future is never cancelled (a batch may still be about to answer it)."""
  waiter = asyncio.get_running_loop().create_future()
  future.add_done_callback(deliver_to(waiter))
  return await wait_on(waiter, timeout)


async def wait_on(waiter: asyncio.Future, timeout: Optional[float]):
  """`wait_future` for an asyncio future a worker thread answers (`serving.loop_delivery`)."""
  if timeout is None:
    return await waiter
  loop = asyncio.get_running_loop()
  timer = loop.call_later(max(0.0, timeout), _expire_one, waiter)
  try:
    return await waiter
  finally:
    timer.cancel()


def _expire_one(waiter: asyncio.Future) -> None:
  if not waiter.done():
    waiter.set_exception(asyncio.TimeoutError())
