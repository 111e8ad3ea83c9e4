"""uvicorn's HTTP protocol with each reply sent in one socket write.

uvicorn writes a response's status line and headers as soon as the app sends
`http.response.start`, then the body on `http.response.body`. uvloop sends each write
at once (a syscall, and on loopback a TCP segment the client must wake up for), so a
reply costs two. A busy batching server's event loop spends a noticeable share of its
time there, so writes made in one event-loop step are joined and sent together just
after it (`loop.call_soon`), before the loop next polls its sockets.
"""

import asyncio
from typing import List

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CoalescingTransport:
  """A transport whose writes in one loop step go out as one write."""

  def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
    self._transport = transport
    self._loop = loop
    self._pending: List[bytes] = []
    self._flush_scheduled = False

  def write(self, data: bytes) -> None:
    if not data:
      return
    self._pending.append(data)
    if not self._flush_scheduled:
      self._flush_scheduled = True
      self._loop.call_soon(self.flush)

  def writelines(self, chunks) -> None:
    for chunk in chunks:
      self.write(chunk)

  def flush(self) -> None:
    self._flush_scheduled = False
    if not self._pending:
      return
    data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
    self._pending.clear()
    if not self._transport.is_closing():
      self._transport.write(data)

  def close(self) -> None:
    self.flush()  # what was written before close() must still go out
    self._transport.close()

  def write_eof(self) -> None:
    self.flush()
    self._transport.write_eof()

  def abort(self) -> None:
    self._pending.clear()
    self._transport.abort()

  def __getattr__(self, name):  # is_closing, get_extra_info, pause_reading, ...
    return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
  """`HttpToolsProtocol` over a `_CoalescingTransport`; pass it as uvicorn's `http=`."""

  def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
    super().connection_made(_CoalescingTransport(transport, asyncio.get_running_loop()))
