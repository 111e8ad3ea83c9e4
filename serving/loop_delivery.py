"""Outcomes handed from worker threads to asyncio futures, one loop wake-up per burst.

A model call (or a batch of them) finishes on a worker thread; the request waiting for it
is an asyncio future on an event loop. `post` hands over (future, value, error) triples:
the first post of a burst schedules one drain on the loop (`call_soon_threadsafe`, a write
to its self-pipe), the posts that find a drain already scheduled only append, and a
batch posts all of its requests' outcomes in one call. A future already done (it timed
out, or its client went away) is skipped.
"""

import asyncio
import collections
import concurrent.futures
import threading
import weakref
from typing import Any, Iterable, Optional, Tuple

Outcome = Tuple[asyncio.Future, Any, Optional[BaseException]]


class _Mailbox:
  """The outcomes posted to one loop and not yet drained."""

  def __init__(self, loop: asyncio.AbstractEventLoop):
    self._loop = loop
    self._items: collections.deque = collections.deque()
    self._lock = threading.Lock()
    self._scheduled = False

  def post(self, outcomes: Iterable[Outcome]) -> None:
    with self._lock:
      self._items.extend(outcomes)
      if self._scheduled or not self._items:
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
    for waiter, value, error in items:
      if waiter.done():
        continue
      if error is not None:
        waiter.set_exception(error)
      else:
        waiter.set_result(value)


_mailboxes: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_mailboxes_lock = threading.Lock()


def _mailbox(loop: asyncio.AbstractEventLoop) -> _Mailbox:
  box = _mailboxes.get(loop)
  if box is None:
    with _mailboxes_lock:
      box = _mailboxes.setdefault(loop, _Mailbox(loop))
  return box


def post(outcomes: Iterable[Outcome]) -> None:
  """Sets each (future, value, error) on its future's loop (any thread)."""
  by_loop = {}
  for outcome in outcomes:
    by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
  for loop, items in by_loop.items():
    _mailbox(loop).post(items)


def deliver_to(waiter: asyncio.Future):
  """A done-callback (any thread) copying a concurrent future's outcome to `waiter`."""
  box = _mailbox(waiter.get_loop())

  def copy(done: concurrent.futures.Future) -> None:
    error = done.exception()
    box.post([(waiter, None if error is not None else done.result(), error)])

  return copy
