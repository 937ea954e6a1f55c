#!/usr/bin/env python3
"""A fake Hugging Face Hub for tests of model downloads (Python 3 stdlib only, loopback).

Started by a test as a separate process:

    python3 fake_hub_server.py --port 0 --port_file PATH --repo org/name=DIR[@branch] ...
        [--gated org/name=TOKEN] [--cut_after_bytes N] [--corrupt FILE]
        [--cdn_rate BYTES_PER_S] [--log_file PATH] [--host 127.0.0.1] [--quiet]

It opens two listeners on HOST: the Hub itself (--port, 0 picks a free port) and a "CDN" on
another free port (a different origin, as cdn-lfs.huggingface.co is for huggingface.co). The Hub
port is written to --port_file (atomically: PATH.tmp, then renamed); the CDN port to
--port_file + ".cdn" the same way. It serves until SIGTERM or SIGINT, then exits with status 0.

Repos: each --repo org/name=DIR[@branch] (branch default "main"; repeat for several repos or
branches) serves every regular file under DIR (symlinks followed, names relative to DIR) at a
fake commit: the SHA-1 of the repo id, the branch and the files' names and hashes (40 hex).
Files are read once, at start.

Hub routes (GET; HEAD answers with the same status and headers and no body):
  /api/models/{org}/{name}/revision/{rev}
      JSON {"id", "modelId", "sha", "siblings": [{"rfilename"}...], "gated", "private"}; {rev}
      (url-encoded) is a branch name or a commit sha.
  /{org}/{name}/resolve/{rev}/{file}
      *.safetensors ("LFS"): 302 to http://HOST:CDN_PORT/cdn/{sha256}, with X-Linked-Etag
      ("sha256"), X-Linked-Size, X-Repo-Commit, ETag (of the pointer file).
      Other files: 200 with the bytes, ETag ("git blob sha1"), X-Repo-Commit.
  Unknown repo, revision or file: 404 with X-Error-Code RepoNotFound / RevisionNotFound /
  EntryNotFound (huggingface_hub's codes). A repo named by --gated org/name=TOKEN answers 401
  (X-Error-Code GatedRepo) unless the request carries "Authorization: Bearer TOKEN".
CDN route (no authentication, like a signed URL):
  /cdn/{sha256}   the bytes; honours "Range: bytes=N-" / "bytes=N-M" (206 + Content-Range; 416
                  when N >= size). Paced at --cdn_rate bytes per second when given.

Fault injection:
  --cut_after_bytes N   the first CDN GET of each LFS blob sends its headers (full length) and
                        only N body bytes, then closes the connection.
  --corrupt FILE        FILE (a name inside the repos, e.g. model.safetensors) is served with
                        its first byte flipped (same length); etags still name the true bytes.

--log_file: one JSON object per request, appended and flushed BEFORE the answer is sent (so a
client that got its answer finds it logged):
  {"listener": "hub"|"cdn", "method", "path", "status", "bytes" (body bytes it sends; fewer if
   the client hangs up),
   "range" (the Range header or null), "auth" (whether an Authorization header came; its value
   is never logged)}.
Every answer carries "Connection: close".
"""

import argparse
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STOPPING = threading.Event()
CHUNK = 64 * 1024


class Blob:
    def __init__(self, data):
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Revision:
    def __init__(self, repo, branch, files):
        self.branch = branch
        self.files = files  # name -> Blob
        h = hashlib.sha1()
        for part in [repo, branch] + [n + ":" + files[n].sha256 for n in sorted(files)]:
            h.update(part.encode() + b"\0")
        self.commit = h.hexdigest()


def load_dir(root):
    files = {}
    for dirpath, _, names in os.walk(root, followlinks=True):
        for n in names:
            path = os.path.join(dirpath, n)
            if not os.path.isfile(path):
                continue
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as f:
                files[rel] = Blob(f.read())
    return files


def is_lfs(name):
    return name.endswith(".safetensors")


def pointer_file(blob):
    return ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" %
            (blob.sha256, len(blob.data))).encode()


class State:
    repos = {}          # repo id -> [Revision]
    gated = {}          # repo id -> token
    by_sha256 = {}      # sha256 -> (name, Blob)
    cut_after = None
    cut_done = set()
    corrupt = set()
    cdn_rate = None
    cdn_port = 0
    host = "127.0.0.1"
    log_path = None
    log_lock = threading.Lock()
    cut_lock = threading.Lock()
    quiet = False

    @classmethod
    def find_revision(cls, repo, rev):
        for r in cls.repos.get(repo, []):
            if rev in (r.branch, r.commit):
                return r
        return None


def body_of(name, blob):
    if name in State.corrupt and blob.data:
        return bytes([blob.data[0] ^ 0xFF]) + blob.data[1:]
    return blob.data


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake_hub_server/1"
    listener = "hub"

    def log_message(self, fmt, *args):
        if not State.quiet:
            sys.stderr.write("fake_hub_server[%s]: %s\n" % (self.listener, fmt % args))

    # --- plumbing -------------------------------------------------------------------------
    def _start(self, code, headers, body_bytes):
        """Logs the answer (before sending it, so that a client that has the whole answer
        always finds it in the log), then sends the status line and headers."""
        self._status = code
        self._log(0 if self.command == "HEAD" else body_bytes)
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _write(self, data):
        if self.command == "HEAD":
            return
        self.wfile.write(data)

    def _simple(self, code, body=b"", content_type="text/plain", extra=()):
        self._start(code, [("Content-Type", content_type),
                           ("Content-Length", str(len(body)))] + list(extra), len(body))
        self._write(body)

    def _error(self, code, error_code, message, extra=()):
        body = json.dumps({"error": message}).encode()
        self._simple(code, body, "application/json",
                     [("X-Error-Code", error_code), ("X-Error-Message", message)] + list(extra))

    def _log(self, body_bytes):
        self._logged = True
        if not State.log_path:
            return
        entry = {"listener": self.listener, "method": self.command, "path": self.path,
                 "status": self._status, "bytes": body_bytes,
                 "range": self.headers.get("Range"),
                 "auth": self.headers.get("Authorization") is not None}
        with State.log_lock:
            with open(State.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()

    def _authorized(self, repo):
        token = State.gated.get(repo)
        return token is None or self.headers.get("Authorization") == "Bearer " + token

    # --- hub routes -----------------------------------------------------------------------
    def _lookup(self, org, name, rev):
        """(repo, Revision) or None after answering with the error."""
        repo = org + "/" + name
        if repo not in State.repos:
            self._error(404, "RepoNotFound", "Repository Not Found for url: %s." % self.path)
            return None
        if not self._authorized(repo):
            self._error(401, "GatedRepo",
                        "Access to model %s is restricted. You must have access to it and be "
                        "authenticated to access it. Please log in." % repo)
            return None
        revision = State.find_revision(repo, rev)
        if revision is None:
            self._error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
            return None
        return repo, revision

    def _api_revision(self, org, name, rev):
        found = self._lookup(org, name, rev)
        if found is None:
            return
        repo, revision = found
        body = json.dumps({
            "id": repo, "modelId": repo, "sha": revision.commit, "private": False,
            "gated": "manual" if repo in State.gated else False,
            "siblings": [{"rfilename": n} for n in sorted(revision.files)],
        }).encode()
        self._simple(200, body, "application/json")

    def _resolve(self, org, name, rev, filename):
        found = self._lookup(org, name, rev)
        if found is None:
            return
        _, revision = found
        commit = ("X-Repo-Commit", revision.commit)
        blob = revision.files.get(filename)
        if blob is None:
            return self._error(404, "EntryNotFound", "Entry not found", [commit])
        if is_lfs(filename):
            pointer = pointer_file(blob)
            location = "http://%s:%d/cdn/%s" % (State.host, State.cdn_port, blob.sha256)
            return self._simple(302, b"Found. Redirecting to " + location.encode(), extra=[
                ("Location", location), commit,
                ("X-Linked-Etag", '"%s"' % blob.sha256),
                ("X-Linked-Size", str(len(blob.data))),
                ("ETag", '"%s"' % Blob(pointer).git_sha1)])
        self._simple(200, body_of(filename, blob), "application/octet-stream",
                     [commit, ("ETag", '"%s"' % blob.git_sha1)])

    # --- cdn route ------------------------------------------------------------------------
    def _cdn(self, sha):
        if sha not in State.by_sha256:
            return self._simple(404, b"no such object\n")
        name, blob = State.by_sha256[sha]
        data = body_of(name, blob)
        size = len(data)
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        if rng:
            spec = rng.strip()
            if not spec.startswith("bytes=") or "," in spec:
                return self._simple(400, b"bad range\n")
            first, _, last = spec[len("bytes="):].partition("-")
            start = int(first)
            if last:
                end = min(int(last), size - 1)
            if start >= size or start > end:
                return self._simple(416, b"range not satisfiable\n",
                                    extra=[("Content-Range", "bytes */%d" % size)])
        part = data[start:end + 1]
        headers = [("Content-Type", "application/octet-stream"),
                   ("Content-Length", str(len(part))), ("ETag", '"%s"' % blob.sha256),
                   ("Accept-Ranges", "bytes")]
        if rng:
            headers.append(("Content-Range", "bytes %d-%d/%d" % (start, end, size)))
        limit = len(part)
        cut = False
        if State.cut_after is not None and self.command == "GET":
            with State.cut_lock:
                if sha not in State.cut_done:
                    State.cut_done.add(sha)
                    limit = min(limit, State.cut_after)
                    cut = True
        self._start(206 if rng else 200, headers, limit)
        if self.command == "HEAD":
            return
        self._send_paced(part[:limit])
        if cut:
            self.wfile.flush()
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _send_paced(self, data):
        step = CHUNK
        if State.cdn_rate:
            step = max(1, min(CHUNK, State.cdn_rate // 20))
        for i in range(0, len(data), step):
            if STOPPING.is_set():
                return
            self._write(data[i:i + step])
            if State.cdn_rate:
                self.wfile.flush()
                time.sleep(step / State.cdn_rate)

    # --- dispatch -------------------------------------------------------------------------
    def _route(self):
        path = urllib.parse.urlsplit(self.path).path
        parts = path.split("/")
        if self.listener == "cdn":
            if len(parts) == 3 and parts[1] == "cdn":
                return self._cdn(parts[2])
            return self._simple(404, b"no such route\n")
        # /api/models/{org}/{name}/revision/{rev}
        if len(parts) == 7 and parts[1:3] == ["api", "models"] and parts[5] == "revision":
            return self._api_revision(parts[3], parts[4], urllib.parse.unquote(parts[6]))
        # /{org}/{name}/resolve/{rev}/{file...}
        if len(parts) >= 6 and parts[3] == "resolve":
            filename = urllib.parse.unquote("/".join(parts[5:]))
            return self._resolve(parts[1], parts[2], urllib.parse.unquote(parts[4]), filename)
        return self._simple(404, b"no such route\n")

    def do_GET(self):
        self._status = 0
        self._logged = False
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True  # the client went away
        except ValueError as e:
            self._simple(400, ("bad request: %s\n" % e).encode())
        finally:
            if not self._logged:
                self._log(0)

    do_HEAD = do_GET


class CdnHandler(Handler):
    listener = "cdn"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def write_port_file(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def parse_repo(spec):
    repo, sep, rest = spec.partition("=")
    if not sep or repo.count("/") != 1:
        raise SystemExit("--repo wants org/name=DIR[@branch], got %r" % spec)
    directory, _, branch = rest.partition("@")
    return repo, directory, branch or "main"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port_file", required=True)
    parser.add_argument("--repo", action="append", default=[])
    parser.add_argument("--gated", action="append", default=[])
    parser.add_argument("--cut_after_bytes", type=int, default=None)
    parser.add_argument("--corrupt", action="append", default=[])
    parser.add_argument("--cdn_rate", type=int, default=None)
    parser.add_argument("--log_file", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    for spec in args.repo:
        repo, directory, branch = parse_repo(spec)
        files = load_dir(directory)
        State.repos.setdefault(repo, []).append(Revision(repo, branch, files))
        for name, blob in files.items():
            if is_lfs(name):
                State.by_sha256[blob.sha256] = (name, blob)
    for spec in args.gated:
        repo, _, token = spec.partition("=")
        State.gated[repo] = token
    State.cut_after = args.cut_after_bytes
    State.corrupt = set(args.corrupt)
    State.cdn_rate = args.cdn_rate
    State.host = args.host
    State.log_path = args.log_file
    State.quiet = args.quiet

    hub = Server((args.host, args.port), Handler)
    cdn = Server((args.host, 0), CdnHandler)
    State.cdn_port = cdn.server_address[1]

    def on_signal(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cdn_thread = threading.Thread(target=cdn.serve_forever, kwargs={"poll_interval": 0.1},
                                  daemon=True)
    cdn_thread.start()
    write_port_file(args.port_file + ".cdn", State.cdn_port)
    write_port_file(args.port_file, hub.server_address[1])
    try:
        hub.serve_forever(poll_interval=0.1)
    except SystemExit:
        pass
    finally:
        STOPPING.set()
        cdn.shutdown()
        hub.server_close()
        cdn.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
