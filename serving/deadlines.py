"""Per-request deadlines on an asyncio loop at the cost of one deque append each.

Every REST model call has the same timeout (`--rest_api_timeout_in_ms`), so deadlines
expire in arrival order: a FIFO queue with a single loop timer armed for its head does
what one `asyncio.wait_for` per request did (a Task, a timer and callbacks each), which
showed up as ~10% of the event loop's time under load.
"""

import asyncio
import collections
import concurrent.futures
import threading
import time
import weakref
from typing import Optional


class _Mailbox:
  """Outcomes posted from worker threads to one event loop, one wake-up per burst.

  A batch answers its requests one after the other; a `call_soon_threadsafe` each would
  wake the loop (a write to its self-pipe) once per request. Posts that find a drain
  already scheduled only append.
  """

  def __init__(self, loop: asyncio.AbstractEventLoop):
    self._loop = loop
    self._items: collections.deque = collections.deque()
    self._lock = threading.Lock()
    self._scheduled = False

  def post(self, done: concurrent.futures.Future, waiter: asyncio.Future) -> None:
    with self._lock:
      self._items.append((done, waiter))
      if self._scheduled:
        return
      self._scheduled = True
    try:
      self._loop.call_soon_threadsafe(self._drain)
    except RuntimeError:  # the loop closed (shutdown) while an abandoned call ran on
      pass

  def _drain(self) -> None:
    with self._lock:
      items, self._items = self._items, collections.deque()
      self._scheduled = False
    for done, waiter in items:
      _copy_outcome(done, waiter)


_mailboxes: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_mailboxes_lock = threading.Lock()


def _mailbox(loop: asyncio.AbstractEventLoop) -> _Mailbox:
  box = _mailboxes.get(loop)
  if box is None:
    with _mailboxes_lock:
      box = _mailboxes.setdefault(loop, _Mailbox(loop))
  return box


def _deliver_to(waiter: asyncio.Future):
  """A done-callback (any thread) handing a future's outcome to `waiter`'s loop."""
  box = _mailbox(waiter.get_loop())
  return lambda done: box.post(done, waiter)


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
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    future.add_done_callback(_deliver_to(waiter))
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


def _copy_outcome(done: concurrent.futures.Future, waiter: asyncio.Future) -> None:
  if waiter.done():  # timed out (or the client went away) before the result came
    return
  error = done.exception()
  if error is not None:
    waiter.set_exception(error)
  else:
    waiter.set_result(done.result())


async def wait_future(future: concurrent.futures.Future, timeout: Optional[float]):
  """A thread-pool future's result on the running loop; raises asyncio.TimeoutError after
  `timeout` seconds (None: no limit). For deadlines that differ per request (gRPC's):
  one loop timer each, and unlike `asyncio.wait_for(asyncio.wrap_future(...))` no Task,
  and the future is never cancelled (a batch may still be about to answer it)."""
  loop = asyncio.get_running_loop()
  waiter = loop.create_future()
  future.add_done_callback(_deliver_to(waiter))
  if timeout is None:
    return await waiter
  timer = loop.call_later(max(0.0, timeout), _expire_one, waiter)
  try:
    return await waiter
  finally:
    timer.cancel()


def _expire_one(waiter: asyncio.Future) -> None:
  if not waiter.done():
    waiter.set_exception(asyncio.TimeoutError())
