"""The REST server's write coalescing, over a real socket and a real event loop."""

import asyncio
import socket

import uvloop

from serving.http_protocol import _CoalescingTransport  # pylint: disable=protected-access


class _Recording:
  """Forwards to a real transport and records the writes that reach it."""

  def __init__(self, transport):
    self.transport = transport
    self.writes = []

  def write(self, data):
    self.writes.append(bytes(data))
    self.transport.write(data)

  def __getattr__(self, name):
    return getattr(self.transport, name)


async def _pair():
  ours, theirs = socket.socketpair()
  loop = asyncio.get_running_loop()
  transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
  recording = _Recording(transport)
  return _CoalescingTransport(recording, loop), recording, theirs


def _read_all(sock) -> bytes:
  chunks = []
  while True:
    chunk = sock.recv(65536)
    if not chunk:
      return b"".join(chunks)
    chunks.append(chunk)


def _run(coroutine):
  # The server runs on uvloop; so do these.
  with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
    return runner.run(coroutine)


def test_writes_of_one_step_go_out_as_one_write_in_order():
  async def scenario():
    coalescing, recording, peer = await _pair()
    coalescing.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    coalescing.write(b"{}")
    coalescing.write(b"")
    assert recording.writes == []  # nothing sent before the step ends
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert recording.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    coalescing.writelines([b"a", b"b"])
    await asyncio.sleep(0)
    coalescing.write(b"c")
    await asyncio.sleep(0)
    assert recording.writes[1:] == [b"ab", b"c"]
    coalescing.close()
    return peer

  peer = _run(scenario())
  assert _read_all(peer) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}abc"


def test_close_sends_what_was_written_first_and_abort_drops_it():
  async def closing():
    coalescing, _, peer = await _pair()
    coalescing.write(b"last words")
    coalescing.close()
    assert coalescing.is_closing()  # the rest of the transport API is the real one's
    await asyncio.sleep(0.01)
    return peer

  assert _read_all(_run(closing())) == b"last words"

  async def aborting():
    coalescing, recording, peer = await _pair()
    coalescing.write(b"never sent")
    coalescing.abort()
    await asyncio.sleep(0.01)
    assert recording.writes == []
    return peer

  assert _read_all(_run(aborting())) == b""
