"""The HTTP server (standard library, one thread per request): routes, the token, body limits, and errors
as 4xx JSON with the reason. Nothing a client sends stops the server; SIGTERM finishes the requests in
flight, then stops (the run store only ever sees whole transactions)."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from autolabel.errors import UsageError
from autolabel.serve.backend import Backend
from autolabel.serve.sources import Refused

log = logging.getLogger("autolabel.serve")
MAX_JSON_DEPTH = 64


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the requests in flight
    block_on_close = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], backend: Backend, token: str | None, max_body: int) -> None:
        super().__init__(address, Handler)
        self.backend, self.token, self.max_body = backend, token, max_body


class Handler(BaseHTTPRequestHandler):
    server: Server
    timeout = 60  # a client that stops sending is dropped
    server_version = "autolabel"

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="autolabel"')
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client left: nobody to answer
            self.close_connection = True

    def _authorized(self) -> bool:
        token = self.server.token
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() in ("bearer", "token"):
            return hmac.compare_digest(value.strip().encode(), token.encode())
        if scheme.lower() == "basic":  # Label Studio's "Basic auth" setting: any user, the token as password
            try:
                _, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(password.encode(), token.encode())
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            return self._send(401, {"error": "a token is required (Authorization: Bearer TOKEN, or Basic auth)"})
        path = self.path.split("?")[0].rstrip("/")
        if path in ("", "/health"):
            return self._send(200, self.server.backend.health())
        if path == "/metrics":
            return self._send(200, self.server.backend.engine.stats.to_json())
        return self._send(404, {"error": f"no such endpoint: GET {path}"})

    def do_POST(self) -> None:
        if not self._authorized():
            return self._send(401, {"error": "a token is required (Authorization: Bearer TOKEN, or Basic auth)"})
        path = self.path.split("?")[0].rstrip("/")
        routes = {"/setup", "/predict", "/webhook", "/v1/label", "/train", "/versions"}
        if path not in routes:
            return self._send(404, {"error": f"no such endpoint: POST {path}"})
        try:
            data = self._body()
            if path == "/v1/label":
                return self._send(200, self.server.backend.label_image(data, self.headers.get("Content-Type", "")))
            body = _json(data)
            b = self.server.backend
            if path == "/setup":
                return self._send(200, b.setup(body))
            if path == "/predict":
                return self._send(200, b.predict(body))
            return self._send(200, {"status": "ok", "note": "autolabel does not train from Label Studio"})
        except Refused as e:
            self._send(e.status, {"error": e.message, **({"hint": e.hint} if e.hint else {})})
        except UsageError as e:  # a task's image that cannot be read, a bad image
            self.server.backend.engine.stats.add(errors=1)
            self._send(422, {"error": e.message, **({"hint": e.hint} if e.hint else {})})
        except Exception as e:  # a model error on one request fails that request only
            self.server.backend.engine.stats.add(errors=1)
            log.error("request %s failed:\n%s", path, traceback.format_exc())
            self._send(500, {"error": f"{type(e).__name__}: {str(e)[:500]}"})

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise Refused("a Content-Length header is required", 411)
        try:
            n = int(length)
        except ValueError:
            raise Refused("Content-Length is not a number", 400) from None
        if n < 0 or n > self.server.max_body:
            self.close_connection = True
            raise Refused(f"the body is {n} bytes: at most {self.server.max_body} (--max-body-mb)", 413)
        data = self.rfile.read(n)
        if len(data) < n:
            raise Refused("the body ended early", 400)
        return data


def _json(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except RecursionError:
        raise Refused(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels", 400) from None
    except ValueError as e:
        raise Refused(f"the body is not JSON ({str(e)[:200]})", 400) from None
    if not isinstance(body, dict):
        raise Refused("the body must be a JSON object", 400)
    if _deeper_than(body, MAX_JSON_DEPTH):
        raise Refused(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels", 400)
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` deep (walked once, without recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False
