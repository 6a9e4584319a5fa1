"""A plain-HTTP keep-alive transport for :class:`shipyard.farm.client.FarmClient`.

httpx's own transport (httpcore over h11) cost a farm worker more CPU per build than
anything else it does: a trivial build is a few small JSON calls and one upload, and each
went through several layers of pure-Python protocol handling. This transport keeps the
httpx client (base URL, headers, timeouts, errors) and does the wire part with the
standard library's ``http.client``: same connections kept alive, a fraction of the CPU.

It only speaks ``http://`` without a proxy; :func:`fast_transport` says when it applies,
and anything else (``https://``, a proxy from the environment) keeps httpx's transport.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import urllib.request

import httpx

MAX_IDLE = 8  # kept-alive connections per client (a worker slot uses up to three at once)


def fast_transport(url: str) -> httpx.BaseTransport | None:
    """The transport for a client of ``url``, or None to use httpx's own."""
    if not url.lower().startswith("http://"):
        return None
    proxies = urllib.request.getproxies()
    if proxies.get("http") or proxies.get("all"):
        return None
    return KeepAliveTransport()


class KeepAliveTransport(httpx.BaseTransport):
    """``http.client`` connections, kept alive and shared by the client's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[tuple[tuple[str, int], http.client.HTTPConnection]] = []
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        address = (request.url.host, request.url.port or 80)
        conn = self._take(address) or self._connect(address, timeouts.get("connect"))
        conn.sock.settimeout(timeouts.get("read"))
        try:
            response, will_close = self._exchange(conn, request)
        except BaseException:
            conn.close()
            raise
        if will_close or conn.sock is None:
            conn.close()
        else:
            self._give_back(address, conn)
        return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for _address, conn in idle:
            conn.close()

    def _take(self, address: tuple[str, int]) -> http.client.HTTPConnection | None:
        """An idle connection to ``address`` the server has not closed meanwhile."""
        while True:
            with self._lock:
                index = next((i for i in range(len(self._idle) - 1, -1, -1)
                              if self._idle[i][0] == address), None)  # the latest one
                if index is None:
                    return None
                conn = self._idle.pop(index)[1]
            # An idle connection has nothing to read unless the server closed it (or broke
            # the protocol): either way it must not carry a request.
            if conn.sock is not None and not _readable(conn.sock):
                return conn
            conn.close()

    def _give_back(self, address: tuple[str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append((address, conn))
                return
        conn.close()

    def _connect(self, address: tuple[str, int],
                 timeout: float | None) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(*address, timeout=timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            conn.close()
            raise httpx.ConnectError(str(exc)) from exc
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _exchange(self, conn: http.client.HTTPConnection,
                  request: httpx.Request) -> tuple[httpx.Response, bool]:
        """Send ``request`` and read the whole response (the farm's answers are small);
        also whether the server is closing the connection."""
        try:
            self._send(conn, request)
        except TimeoutError as exc:
            raise httpx.WriteTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.WriteError(str(exc)) from exc
        try:
            answer = conn.getresponse()
            body = answer.read()
            return httpx.Response(answer.status, headers=answer.getheaders(),
                                  stream=httpx.ByteStream(body)), bool(answer.will_close)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out") from exc
        except http.client.HTTPException as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc)) from exc

    @staticmethod
    def _send(conn: http.client.HTTPConnection, request: httpx.Request) -> None:
        conn.putrequest(request.method, request.url.raw_path.decode("ascii"),
                        skip_host=True, skip_accept_encoding=True)
        chunked = False
        for name, value in request.headers.raw:
            if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
                chunked = True
            conn.putheader(name, value)
        # A sync client's request carries a sync stream (iterable); the attribute's type
        # also allows the async kind.
        chunks = (b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk
                  for chunk in request.stream if chunk)  # type: ignore[union-attr]
        conn.endheaders(next(chunks, None))  # a small body goes out with the headers
        for chunk in chunks:
            conn.send(chunk)
        if chunked:
            conn.send(b"0\r\n\r\n")


def _readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
