// A small HTTP/1.1 server for the front's public API, over Boost.Beast (parsing and
// serialisation) and Boost.Asio (sockets, TLS, timers). It knows nothing of the API: each
// complete request goes to one Handler with a Responder that answers it, at once or as a
// stream (chunked transfer encoding; Server-Sent Events ride on it) from any thread.
//
// Bounds, all enforced by the server whatever the handler does:
//  - connections: at most max_connections (more are closed at once);
//  - the request: headers within max_header_bytes, body within max_body_bytes (413 before
//    the body is read when Content-Length says so), the whole request within
//    request_timeout (slow senders are dropped: 408), idle keep-alive connections closed
//    after idle_timeout;
//  - the response: a client that stops reading is dropped after write_timeout, or when more
//    than max_pending_write_bytes wait for it.
// A client that closes its connection while its request is being answered is noticed at
// once (a read stays pending on the socket), and the Responder's OnClose callbacks run, so
// the work for it can be cancelled. (Not for a client that pipelines, i.e. sends its next
// request before this answer ended: that request is kept for later and no read is pending.)
// HEAD requests get the header only; HTTP/1.0 clients get streams unchunked, ended by the
// connection's close.
//
// Threads: `io_threads` threads run all socket work; the Handler runs on them and must not
// block (it hands long work to its own threads). Responder methods may be called from any
// thread.
#ifndef SMOLSERVE_SERVICES_PREPROCESS_SERVER_HTTP_HTTP_SERVER_H_
#define SMOLSERVE_SERVICES_PREPROCESS_SERVER_HTTP_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace smolserve::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query
  std::string query;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string remote;  // the peer's address
  // The header's value, "" when absent (`name` in lower case).
  std::string header(const std::string& name) const;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// Answers one request: Respond once, or StartStream, Write*, End. Destroyed without an
// answer, it answers 500; destroyed in the middle of a stream (no End), the connection is
// closed after what was written, so that the client sees an incomplete answer. Thread-safe:
// nothing is ever queued after End, whichever threads call.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual void Respond(int status, const std::string& content_type, std::string body,
                       Headers headers = {}) = 0;
  virtual void StartStream(int status, const std::string& content_type, Headers headers = {}) = 0;
  // Queues a piece of the stream; false once the client is gone (or too slow to keep up), or
  // the server is. An empty piece is no chunk (it would end the stream): true, nothing sent.
  virtual bool Write(std::string data) = 0;
  virtual void End() = 0;
  // True once the client went away (closed, a write failed or timed out) before the end.
  virtual bool closed() const = 0;
  // Runs `fn` once when the client goes away before the answer ended (at once, on the
  // caller's thread, if it already has), on an I/O thread: it must be short. Never once the
  // answer ended. Each call adds one. Stop closing a connection counts as going away.
  virtual void OnClose(std::function<void()> fn) = 0;
};

using Handler = std::function<void(HttpRequest request, std::shared_ptr<Responder> responder)>;

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 8000;  // 0: any free port
  int io_threads = 2;
  int max_connections = 512;
  int64_t max_body_bytes = int64_t{64} << 20;
  int max_header_bytes = 16 << 10;
  absl::Duration request_timeout = absl::Seconds(30);
  absl::Duration idle_timeout = absl::Seconds(30);
  absl::Duration write_timeout = absl::Seconds(30);
  int64_t max_pending_write_bytes = int64_t{8} << 20;
  // TLS (PEM files): cert + key; client_ca: clients must present a certificate signed by it.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // The body of the answers the server gives itself (400, 408, 413, 431, 500, 503), as
  // {content type, body}; default text/plain. Called on an I/O thread.
  std::function<std::pair<std::string, std::string>(int status, const std::string& message)>
      error_body;
  // Observer of those answers (metrics). May be empty.
  std::function<void(int status)> on_rejected;
};

class HttpServer {
 public:
  // Listens and starts the I/O threads. UNAVAILABLE when the address cannot be bound,
  // INVALID_ARGUMENT for bad TLS files.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           Handler handler);
  ~HttpServer();  // Stop(absl::ZeroDuration())

  int port() const;
  // Stops accepting (a connection attempted after Stop returns is refused); waits up to
  // `grace` for the requests being answered (requests that arrive meanwhile on open
  // connections are answered 503, answers end with "Connection: close"), then closes every
  // connection (OnClose runs for what is still answered) and joins the I/O threads.
  // Idempotent; not to be called from a handler or an OnClose callback.
  void Stop(absl::Duration grace);
  int64_t connections() const;
  int64_t requests_in_flight() const;

  struct Core;

 private:
  explicit HttpServer(std::unique_ptr<Core> core);
  std::unique_ptr<Core> core_;
};

}  // namespace smolserve::http

#endif  // SMOLSERVE_SERVICES_PREPROCESS_SERVER_HTTP_HTTP_SERVER_H_
