#!/usr/bin/env python3
"""A small, real HTTP/1.1 server for tests that fetch media over http (Python 3 stdlib only).

Started by a test as a separate process:

    python3 media_http_server.py --port 0 --port_file PATH --root DIR [--host 127.0.0.1] [--quiet]

It binds HOST:PORT (default 127.0.0.1; port 0 picks a free port), then writes the port it got
to PATH (atomically: written to PATH.tmp, then renamed, so a reader never sees half a number).
It serves until SIGTERM or SIGINT and then exits with status 0. Requests are logged to stderr
unless --quiet.

Routes (GET; HEAD answers with the same status and headers and no body):
  /files/<name>                 the file DIR/<name> (no subdirectories); 404 if absent. The
                                Content-Type is guessed from the name.
  /redirect?to=<url>            302 to <url> (url-encoded in the query; may be relative).
  /redirect_chain?n=N&to=<url>  N redirects in all: N-1 hops along /redirect_chain (relative
                                Locations), then one to <url>. N <= 1 acts like /redirect.
  /slow?bytes=N&delay=S         headers with Content-Length N, then one byte every S seconds
                                (a slow-loris server). Bytes as for /big.
  /big?bytes=N                  N bytes: a valid PNG signature and IHDR chunk, then zeros, with
                                a correct Content-Length. Generated on the fly, so N may be far
                                larger than memory; stops quietly when the client hangs up.
  /big_nolength?bytes=N         the same bytes, chunked (no Content-Length).
  /status/<code>                that status code with a short text body (3xx without Location).
  /text                         a small HTML page (not media).
  /hang                         accepts the request and never answers (until shutdown).

Every response carries "Connection: close", so each request uses its own connection.
"""

import argparse
import mimetypes
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Set on shutdown: wakes /hang and /slow handlers so that they end.
STOPPING = threading.Event()


def png_prefix():
    """The PNG signature and a valid IHDR chunk (1x1 RGBA): 33 bytes."""
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk +
            struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF))


PNG_PREFIX = png_prefix()
CHUNK = 64 * 1024


def generated_chunks(total):
    """Yields `total` bytes: PNG_PREFIX (cut to `total`), then zeros."""
    head = PNG_PREFIX[:total]
    yield head
    left = total - len(head)
    zeros = bytes(CHUNK)
    while left > 0:
        n = min(left, CHUNK)
        yield zeros[:n]
        left -= n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "media_http_server/1"
    root = "."
    quiet = False

    # --- plumbing -------------------------------------------------------------------------
    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write("media_http_server: %s %s\n" % (self.address_string(), fmt % args))

    def _query(self):
        parsed = urllib.parse.urlsplit(self.path)
        return parsed.path, {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}

    def _start(self, code, headers):
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _simple(self, code, body=b"", content_type="text/plain", extra=()):
        self._start(code, [("Content-Type", content_type),
                           ("Content-Length", str(len(body)))] + list(extra))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _redirect(self, location):
        self._simple(302, b"redirecting\n", extra=[("Location", location)])

    # --- routes ---------------------------------------------------------------------------
    def _files(self, name):
        name = urllib.parse.unquote(name)
        if not name or "/" in name or name in (".", ".."):
            return self._simple(404, b"not found\n")
        path = os.path.join(self.root, name)
        try:
            with open(path, "rb") as f:
                body = f.read()
        except OSError:
            return self._simple(404, b"not found\n")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self._simple(200, body, ctype)

    def _redirect_chain(self, query):
        n = int(query.get("n", "1"))
        to = query.get("to", "/")
        if n <= 1:
            return self._redirect(to)
        rest = urllib.parse.urlencode({"n": n - 1, "to": to})
        self._redirect("/redirect_chain?" + rest)

    def _big(self, query, chunked):
        total = int(query.get("bytes", "0"))
        headers = [("Content-Type", "image/png")]
        headers.append(("Transfer-Encoding", "chunked") if chunked
                       else ("Content-Length", str(total)))
        self._start(200, headers)
        if self.command == "HEAD":
            return
        for piece in generated_chunks(total):
            if STOPPING.is_set():
                return
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _slow(self, query):
        total = int(query.get("bytes", "100"))
        delay = float(query.get("delay", "1"))
        self._start(200, [("Content-Type", "image/png"), ("Content-Length", str(total))])
        if self.command == "HEAD":
            return
        for piece in generated_chunks(total):
            for i in range(len(piece)):
                self.wfile.write(piece[i:i + 1])
                self.wfile.flush()
                if STOPPING.wait(delay):
                    return

    def _hang(self):
        STOPPING.wait()

    def _route(self):
        path, query = self._query()
        if path.startswith("/files/"):
            return self._files(path[len("/files/"):])
        if path.startswith("/status/"):
            code = int(path[len("/status/"):])
            return self._simple(code, b"status %d\n" % code)
        routes = {
            "/redirect": lambda: self._redirect(query.get("to", "/")),
            "/redirect_chain": lambda: self._redirect_chain(query),
            "/slow": lambda: self._slow(query),
            "/big": lambda: self._big(query, chunked=False),
            "/big_nolength": lambda: self._big(query, chunked=True),
            "/text": lambda: self._simple(
                200, b"<!DOCTYPE html><html><body>not media</body></html>\n", "text/html"),
            "/hang": self._hang,
        }
        if path not in routes:
            return self._simple(404, b"no such route\n")
        return routes[path]()

    def do_GET(self):
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True  # the client went away: expected in abort tests
        except ValueError as e:
            self._simple(400, ("bad request: %s\n" % e).encode())

    do_HEAD = do_GET


class Server(ThreadingHTTPServer):
    daemon_threads = True  # handler threads never delay exit (/hang)
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client hanging up mid-response is normal in these tests; anything else is logged.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def write_port_file(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port_file", required=True)
    parser.add_argument("--root", default=".")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    Handler.root = args.root
    Handler.quiet = args.quiet
    server = Server((args.host, args.port), Handler)

    def on_signal(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    write_port_file(args.port_file, server.server_address[1])
    try:
        server.serve_forever(poll_interval=0.1)
    except SystemExit:
        pass
    finally:
        STOPPING.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
