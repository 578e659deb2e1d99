"""gunicorn's sync worker, refusing a credential the rate limiter has already refused as soon as the
request's head is read, and answering it later without a worker waiting.

A sync worker takes connections in the order they come, so each write of a flood from one refused
token takes a worker's turn as often as an offers request does, and a client that sends its next
write as soon as an answer comes gets as many turns as it likes. Through the app, each refusal
costs building the WSGI request, Flask, two writes and gunicorn's lingering close, which holds the
worker until the client has read the answer and closed its end. Here:

- the refusal is looked up before the WSGI request is built (serving.limits.RefusedCredentials:
  the same 429, counted in the metrics), written in one write, and the connection closed at once
  when the client has sent nothing more (about 40% less worker CPU per refusal, profiled);
- the answer leaves `RefusedCredentials.delay` later (TRUSTREC_REFUSAL_DELAY_MS, 1 s), sent by a
  thread of the worker's own from a queue (DelayedAnswers): the worker goes on with the next
  connection at once, and a client that waits for its answers (a browser's, a retry loop) sends
  one refused write per connection per delay instead of hundreds.

`make bench-faults` measures both (the feedback flood rows: offers throughput under a flood from
4 connections 1.04 of the same load's without it, 0.85 with the delay off; 0.75 to 0.78 with
gunicorn's own worker, `--worker-class gunicorn-sync`). Everything else, and any request this
cannot answer whole, goes through gunicorn's own worker. The gthread worker
(TRUSTREC_WORKER_CLASS=gthread) refuses in the app (RefusedCredentials as WSGI middleware), at
once."""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from urllib.parse import unquote_to_bytes

from gunicorn import SERVER, util
from gunicorn.http.body import LengthReader
from gunicorn.workers import sync

from serving.limits import REFUSED

MAX_DRAINED = 65536  # a refused request's body read before answering, as gunicorn's close drains


class SyncWorker(sync.SyncWorker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.delayed: DelayedAnswers | None = None  # made with the app, whose setting it reads

    def run(self) -> None:
        try:
            super().run()
        finally:  # a worker told to stop answers what it holds
            if self.delayed is not None:
                self.delayed.flush()

    def handle_request(self, listener, req, client, addr) -> None:
        refused = getattr(self.wsgi, "extensions", {}).get("trustrec.refused")
        refusal = None
        if refused is not None and _whole(req):
            # PATH_INFO as gunicorn and the app decode it (PEP 3333, then UTF-8)
            path = unquote_to_bytes(req.path).decode("utf-8", "replace")
            refusal = refused.answer(_credential(req.headers), req.method, path)
        if refusal is None:
            return super().handle_request(listener, req, client, addr)
        self.nr += 1  # counted towards max_requests, as gunicorn counts every request
        if self.nr >= self.max_requests:
            self.alive = False
        headers, body = refusal
        req.body.read()  # at most MAX_DRAINED bytes (_whole): nothing of the request left unread
        major, minor = req.version
        head = "".join([f"HTTP/{major}.{minor} {REFUSED}\r\nServer: {SERVER}\r\n"
                        f"Date: {util.http_date()}\r\nConnection: close\r\n",
                        *(f"{name}: {value}\r\n" for name, value in headers), "\r\n"])
        answer = head.encode("latin-1") + body
        # gunicorn's own close waits for the client to close first, reading until then, so that
        # data left unread never turns the close into a reset that can drop the answer. With the
        # request read whole and nothing more sent, a plain close cannot reset: the answer goes
        # now or later, and the connection is closed without waiting (the worker's close
        # afterwards finds it closed, or taken, and does nothing).
        if not _nothing_more(client):
            client.sendall(answer)
            return
        if self.delayed is None:
            self.delayed = DelayedAnswers(refused.delay)
        if not self.delayed.take(client, answer):
            client.sendall(answer)
            client.close()


class DelayedAnswers:
    """Answers sent `delay` seconds after they are taken, in order, by one thread, each connection
    closed after its answer. At most `capacity` wait at a time (each holds a file descriptor):
    beyond that, or with no delay, `take` declines and the caller answers at once."""

    def __init__(self, delay: float, capacity: int = 256) -> None:
        self.delay = delay
        self.capacity = capacity
        self._waiting: deque[tuple[float, socket.socket, bytes]] = deque()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def take(self, client: socket.socket, answer: bytes) -> bool:
        """Take `client` over (its socket object is left closed) to send it `answer` later; False
        when declined."""
        if self.delay <= 0:
            return False
        with self._changed:
            if len(self._waiting) >= self.capacity:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_when_due, daemon=True,
                                                name="delayed-answers")
                self._thread.start()
            self._waiting.append((time.monotonic() + self.delay,
                                  socket.socket(fileno=client.detach()), answer))
            self._changed.notify()
        return True

    def waiting(self) -> int:
        with self._changed:
            return len(self._waiting)

    def flush(self) -> None:
        """Send every waiting answer now."""
        with self._changed:
            waiting = list(self._waiting)
            self._waiting.clear()
        for _, client, answer in waiting:
            _send_and_close(client, answer)

    def _send_when_due(self) -> None:
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                due = self._waiting[0][0] - time.monotonic()
                if due > 0:
                    self._changed.wait(due)
                    continue
                _, client, answer = self._waiting.popleft()
            _send_and_close(client, answer)


def _send_and_close(client: socket.socket, answer: bytes) -> None:
    try:
        client.settimeout(1.0)  # a client that stopped reading does not hold the others
        client.sendall(answer)
    except OSError:
        pass  # gone: nothing to answer
    finally:
        client.close()


def _credential(headers: list[tuple[str, str]]) -> str | None:
    """The credential serving.limits keys refusals by: Authorization, else X-API-Key; None when
    either comes more than once (the app sees those joined: it decides)."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        if name in ("AUTHORIZATION", "X-API-KEY"):
            found.setdefault(name, []).append(value)
    for name in ("AUTHORIZATION", "X-API-KEY"):
        if name in found:
            return found[name][0] if len(found[name]) == 1 else None
    return None


def _whole(req) -> bool:
    """Whether the request's body has a length, small enough to read before answering."""
    reader = getattr(req.body, "reader", None)
    return isinstance(reader, LengthReader) and reader.length <= MAX_DRAINED


def _nothing_more(client: socket.socket) -> bool:
    """Whether the client has sent nothing past its request (or has closed its end)."""
    try:
        return not client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:  # nothing there
        return True
    except OSError:
        return False
