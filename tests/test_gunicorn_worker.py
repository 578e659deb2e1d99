"""The production worker (serving.gunicorn_worker): a credential the limiter has refused is refused
again as soon as gunicorn has parsed the request's head, with the limiter's own 429, and without
the app building a request; every other request goes through the app unchanged. Driven through
gunicorn's own connection handling over real TCP connections, with the real app, Redis and
database."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest
import test_api
from gunicorn import glogging
from gunicorn.config import Config
from test_api import CUSTOMER, OTHER, bearer, token_for

from serving.gunicorn_worker import DelayedAnswers, SyncWorker

make_app = test_api.make_app  # the same fixture

REFUSED_BODY = json.dumps({"request_id": "r" * 32, "offer_id": "o0001", "kind": "clicked"})


@pytest.fixture
def make_refused(make_app):
    """make_refused(delay_ms) -> (app, the refused token's Authorization header, the limiter's
    429 through the app)."""

    def make(delay_ms: int = 0):
        app = make_app(TRUSTREC_RATE_LIMIT_CUSTOMER="2/hour", TRUSTREC_REFUSAL_DELAY_MS=delay_ms)
        client = app.test_client()
        authorization = bearer(token_for(client, CUSTOMER))
        for _ in range(3):  # the budget (an unknown request id is a 404, and spends it), then 429
            by_limiter = client.post("/v1/feedback", data=REFUSED_BODY, headers=authorization
                                     | {"Content-Type": "application/json"})
        assert by_limiter.status_code == 429
        return app, authorization["Authorization"], by_limiter

    return make


@pytest.fixture
def refused(make_refused):
    return make_refused(0)


@pytest.fixture
def make_server():
    """make_server(app) -> serve(raw request bytes, shut the client's write side) -> (the raw
    answer, times the app built a request, seconds the worker took, seconds until the answer
    was read whole): one connection through the worker's accept and handle."""
    made = []

    def make(app):
        built = []
        inner = app.wsgi_app

        def counting(environ, start_response):
            built.append(environ["PATH_INFO"])
            return inner(environ, start_response)

        app.wsgi_app = counting
        config = Config()
        worker = SyncWorker(0, os.getpid(), [], None, 30, config, glogging.Logger(config))
        worker.wsgi = app
        listener = socket.create_server(("127.0.0.1", 0))
        made.append((worker, listener))

        def serve(request: bytes, shut: bool = False) -> tuple[bytes, int, float, float]:
            before = len(built)
            with socket.create_connection(listener.getsockname(), timeout=10) as client:
                client.sendall(request)
                if shut:
                    client.shutdown(socket.SHUT_WR)
                started = time.monotonic()
                worker.accept(listener)
                handled = time.monotonic() - started
                answer = b""
                while chunk := client.recv(65536):
                    answer += chunk
            return answer, len(built) - before, handled, time.monotonic() - started

        serve.worker = worker
        return serve

    yield make
    for worker, listener in made:
        listener.close()
        worker.tmp.close()


@pytest.fixture
def served(refused, make_server):
    serve = make_server(refused[0])
    return lambda request, shut=False: serve(request, shut)[:2]


def request(authorization: str, path: str = "/v1/feedback", body: str = REFUSED_BODY,
            extra: str = "", method: str = "POST") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: shop\r\nAuthorization: {authorization}\r\n{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
            ).encode()


def parse(answer: bytes) -> tuple[int, dict, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body)  # whole: nothing cut by a reset
    return int(status_line.split()[1]), headers, body


def test_a_refused_credential_is_answered_before_the_app_with_the_limiters_429(refused, served):
    _, authorization, by_limiter = refused
    answer, built = served(request(authorization))
    status, headers, body = parse(answer)
    assert built == 0 and status == 429
    assert json.loads(body) == by_limiter.get_json()
    for name in ("Content-Type", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                 "X-Content-Type-Options", "Cache-Control"):
        assert headers[name] == by_limiter.headers[name], name
    assert 1 <= int(headers["Retry-After"]) <= int(by_limiter.headers["Retry-After"])
    assert headers["Connection"] == "close" and headers["X-Request-Id"]
    # every limited write of that customer, whatever the route
    answer, built = served(request(authorization, f"/v1/customers/{CUSTOMER}/consent",
                                       method="PUT"))
    assert built == 0 and parse(answer)[0] == 429


def test_everything_else_goes_through_the_app(refused, served):
    app, authorization, _ = refused
    # reads with the refused token, and another customer's writes
    get = (f"GET /v1/customers/{CUSTOMER}/offers?k=2 HTTP/1.1\r\nHost: shop\r\n"
           f"Authorization: {authorization}\r\n\r\n").encode()
    answer, built = served(get)
    assert built == 1 and parse(answer)[0] == 200
    other = bearer(token_for(app.test_client(), OTHER))["Authorization"]
    answer, built = served(request(other))
    assert built == 1 and parse(answer)[0] == 404  # an unknown request id, not refused
    # what the worker cannot answer whole: the app decides (and refuses it too)
    chunked = (f"POST /v1/feedback HTTP/1.1\r\nHost: shop\r\nAuthorization: {authorization}\r\n"
               f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               f"{len(REFUSED_BODY):x}\r\n{REFUSED_BODY}\r\n0\r\n\r\n").encode()
    for raw in (chunked, request(authorization, extra=f"Authorization: {authorization}\r\n")):
        answer, built = served(raw)
        assert built == 1 and parse(answer)[0] in (401, 429)


def test_a_client_that_sent_more_gets_the_whole_answer(refused, served):
    """Data past the request left unread would turn a plain close into a reset that can drop the
    answer: gunicorn's graceful close is kept for those."""
    _, authorization, _ = refused
    answer, built = served(request(authorization) * 3, shut=True)
    assert built == 0 and parse(answer)[0] == 429


def test_a_refusal_is_answered_later_without_the_worker_waiting(make_refused, make_server):
    """With a delay, the worker hands the connection over and takes the next one at once; the
    client has its 429 after the delay."""
    app, authorization, by_limiter = make_refused(400)
    serve = make_server(app)
    answer, built, handled, answered = serve(request(authorization))
    assert built == 0 and parse(answer)[0] == 429
    assert json.loads(parse(answer)[2]) == by_limiter.get_json()
    assert handled < 0.2 <= 0.4 <= answered < 5, (handled, answered)
    # the worker told to stop answers what still waits, at once
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert serve.worker.delayed.take(ours, b"later")
        started = time.monotonic()
        serve.worker.delayed.flush()
        assert theirs.recv(16) == b"later" and time.monotonic() - started < 0.2


def test_delayed_answers_are_bounded_and_sent_in_order():
    delayed = DelayedAnswers(0.2, capacity=2)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        assert [delayed.take(ours, str(n).encode()) for n, (ours, _) in enumerate(pairs)] == [
            True, True, False]  # the third is the caller's to answer now
        assert pairs[2][0].fileno() >= 0 and pairs[0][0].fileno() == -1  # taken: left closed
        got = []
        threads = [threading.Thread(target=lambda t=theirs: got.append(t.recv(8)))
                   for _, theirs in pairs[:2]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert sorted(got) == [b"0", b"1"] and delayed.waiting() == 0
        assert pairs[0][1].recv(8) == b""  # and closed after its answer
        assert not DelayedAnswers(0).take(pairs[2][0], b"x")  # no delay: always the caller's
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
