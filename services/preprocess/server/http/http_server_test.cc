// HttpServer on loopback: libcurl for well-behaved clients, raw POSIX sockets for the others
// (slow senders, half requests, pipelining, clients that stop reading or go away).
// Every wait polls against a deadline; nothing sleeps for a fixed long time.
#include "services/preprocess/server/http/http_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace smolserve::http {
namespace {

// --- small tools -----------------------------------------------------------------------------

class CurlEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // raw sockets write to peers that are gone
    curl_global_init(CURL_GLOBAL_ALL);
  }
  void TearDown() override { curl_global_cleanup(); }
};
const auto* const kCurlEnvironment = ::testing::AddGlobalTestEnvironment(new CurlEnvironment);

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Polls `done` every 2 ms until it holds or `timeout` passes; returns its last value.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time end = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= end) return done();
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// A one-shot event (std primitives: ThreadSanitizer sees them).
class Event {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  bool Wait(absl::Duration timeout = absl::Seconds(5)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this] { return done_; });
  }
  bool notified() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

// Threads that answer requests off the I/O threads, as the real pipeline does.
class ThreadPool {
 public:
  explicit ThreadPool(int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Submit(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return done_ || !queue_.empty(); });
        if (queue_.empty()) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool done_ = false;
  std::vector<std::thread> threads_;
};

// Keeps the responder of a request for the test to use from its own thread.
class ResponderSlot {
 public:
  void Put(std::shared_ptr<Responder> r) {
    std::lock_guard<std::mutex> lock(mu_);
    responders_.push_back(std::move(r));
  }
  std::shared_ptr<Responder> Get(size_t i = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    return i < responders_.size() ? responders_[i] : nullptr;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return responders_.size();
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    responders_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<Responder>> responders_;
};

HttpServerOptions LoopbackOptions() {
  HttpServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.io_threads = 2;
  return o;
}

std::unique_ptr<HttpServer> StartServer(const HttpServerOptions& options, Handler handler) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(options, std::move(handler));
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  EXPECT_GT((*server)->port(), 0);
  return *std::move(server);
}

std::string Url(const HttpServer& server, const std::string& path, bool tls = false) {
  return absl::StrCat(tls ? "https" : "http", "://127.0.0.1:", server.port(), path);
}

// --- libcurl ---------------------------------------------------------------------------------

struct CurlResult {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::string headers;  // the raw header block(s), names as sent
  long new_connections = 0;
  double seconds = 0;
  std::string error;
  bool ok() const { return code == CURLE_OK; }
  // The value of header `name` (case-insensitive) in the last header block, "" when absent.
  std::string header(const std::string& name) const {
    std::string value;
    size_t pos = 0;
    while (pos < headers.size()) {
      size_t end = headers.find("\r\n", pos);
      if (end == std::string::npos) end = headers.size();
      const std::string line = headers.substr(pos, end - pos);
      const size_t colon = line.find(':');
      if (colon != std::string::npos &&
          absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(line.substr(0, colon)), name)) {
        value = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
      pos = end + 2;
    }
    return value;
  }
};

struct CurlRequest {
  std::string method = "GET";
  std::string body;
  std::vector<std::string> headers;
  long timeout_ms = 10000;
  bool http10 = false;
};

// One easy handle: its requests reuse a kept-alive connection.
class Curl {
 public:
  Curl() : h_(curl_easy_init()) {}
  ~Curl() { curl_easy_cleanup(h_); }
  Curl(const Curl&) = delete;
  Curl& operator=(const Curl&) = delete;

  void TrustCa(const std::string& ca) {
    ca_ = ca;
    curl_easy_setopt(h_, CURLOPT_CAINFO, ca_.c_str());
  }
  void ClientCert(const std::string& cert, const std::string& key) {
    cert_ = cert;
    key_ = key;
    curl_easy_setopt(h_, CURLOPT_SSLCERT, cert_.c_str());
    curl_easy_setopt(h_, CURLOPT_SSLKEY, key_.c_str());
  }

  CurlResult Get(const std::string& url, long timeout_ms = 10000) {
    CurlRequest r;
    r.timeout_ms = timeout_ms;
    return Perform(url, r);
  }

  CurlResult Perform(const std::string& url, const CurlRequest& r) {
    CurlResult out;
    char error[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h_, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, r.timeout_ms);
    curl_easy_setopt(h_, CURLOPT_HTTP_VERSION,
                     r.http10 ? CURL_HTTP_VERSION_1_0 : CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, &Curl::OnData);
    curl_easy_setopt(h_, CURLOPT_WRITEDATA, &out.body);
    curl_easy_setopt(h_, CURLOPT_HEADERFUNCTION, &Curl::OnData);
    curl_easy_setopt(h_, CURLOPT_HEADERDATA, &out.headers);
    if (r.method == "POST") {
      curl_easy_setopt(h_, CURLOPT_POST, 1L);
      curl_easy_setopt(h_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      curl_easy_setopt(h_, CURLOPT_POSTFIELDS, r.body.data());
    } else {
      curl_easy_setopt(h_, CURLOPT_HTTPGET, 1L);
    }
    curl_slist* headers = nullptr;
    for (const std::string& h : r.headers) headers = curl_slist_append(headers, h.c_str());
    curl_easy_setopt(h_, CURLOPT_HTTPHEADER, headers);
    const auto start = Clock::now();
    out.code = curl_easy_perform(h_);
    out.seconds = SecondsSince(start);
    curl_easy_setopt(h_, CURLOPT_HTTPHEADER, nullptr);
    curl_slist_free_all(headers);
    curl_easy_setopt(h_, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &out.status);
    curl_easy_getinfo(h_, CURLINFO_NUM_CONNECTS, &out.new_connections);
    out.error = absl::StrCat(curl_easy_strerror(out.code), ": ", error);
    return out;
  }

 private:
  static size_t OnData(char* data, size_t size, size_t n, void* user) {
    static_cast<std::string*>(user)->append(data, size * n);
    return size * n;
  }

  CURL* h_;
  std::string ca_, cert_, key_;
};

// --- raw sockets -----------------------------------------------------------------------------

// The first complete response in `s` (Content-Length framed, or "Connection: close" bodies up to
// the end when `eof`); {status, body}, status 0 while incomplete. `consumed` gets its length.
struct RawResponse {
  int status = 0;
  std::string head;
  std::string body;
  size_t consumed = 0;
};

RawResponse ParseResponse(const std::string& s, size_t from = 0) {
  RawResponse r;
  const size_t head_end = s.find("\r\n\r\n", from);
  if (head_end == std::string::npos) return r;
  const std::string head = s.substr(from, head_end + 4 - from);
  int status = 0;
  if (head.size() < 12 || !absl::SimpleAtoi(head.substr(9, 3), &status)) return r;
  size_t length = 0;
  const std::string lower = absl::AsciiStrToLower(head);
  const size_t cl = lower.find("\r\ncontent-length:");
  if (cl != std::string::npos) {
    const size_t eol = lower.find("\r\n", cl + 2);
    uint64_t n = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(lower.substr(cl + 17, eol - cl - 17)), &n)) {
      return r;
    }
    length = n;
  }
  if (s.size() < head_end + 4 + length) return r;
  r.status = status;
  r.head = head;
  r.body = s.substr(head_end + 4, length);
  r.consumed = head_end + 4 + length - from;
  return r;
}

bool HasResponse(const std::string& s) { return ParseResponse(s).status != 0; }

class RawConn {
 public:
  // nullptr when the connection is refused. `rcvbuf` > 0 shrinks the receive buffer.
  static std::unique_ptr<RawConn> Connect(int port, int rcvbuf = 0) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return nullptr;
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      return nullptr;
    }
    return std::unique_ptr<RawConn>(new RawConn(fd));
  }
  ~RawConn() { Close(); }

  bool Send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  enum class Result { kMatched, kClosed, kTimeout };
  // Reads until `until(received())` holds, the peer closes (or resets), or `timeout` passes.
  Result ReadUntil(const std::function<bool(const std::string&)>& until, absl::Duration timeout) {
    const absl::Time end = absl::Now() + timeout;
    for (;;) {
      if (until(received_)) return Result::kMatched;
      if (closed_by_peer_) return Result::kClosed;
      const int64_t left = absl::ToInt64Milliseconds(end - absl::Now());
      if (left <= 0) return Result::kTimeout;
      ReadSome(static_cast<int>(left));
    }
  }
  Result ReadResponse(absl::Duration timeout = absl::Seconds(5)) {
    return ReadUntil(HasResponse, timeout);
  }
  // True when the peer closed (or reset) the connection within `timeout`.
  bool WaitClosed(absl::Duration timeout = absl::Seconds(5)) {
    return ReadUntil([](const std::string&) { return false; }, timeout) == Result::kClosed;
  }
  // One poll of up to `ms` and one read; true if anything happened.
  bool ReadSome(int ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, ms) <= 0) return false;
    char buf[65536];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      closed_by_peer_ = true;
      reset_ = n < 0;
    } else {
      received_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  // Whether the peer closed the connection, looking without waiting.
  bool PeerClosedNow() {
    while (!closed_by_peer_ && ReadSome(0)) {
    }
    return closed_by_peer_;
  }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // Closes with a reset (SO_LINGER 0) rather than a FIN.
  void Reset() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    Close();
  }

  const std::string& received() const { return received_; }
  bool closed_by_peer() const { return closed_by_peer_; }
  bool reset() const { return reset_; }
  int fd() const { return fd_; }

 private:
  explicit RawConn(int fd) : fd_(fd) {}
  int fd_;
  std::string received_;
  bool closed_by_peer_ = false;
  bool reset_ = false;
};

const char kSimpleGet[] = "GET /raw HTTP/1.1\r\nHost: t\r\n\r\n";

// Answers every request at once: "<METHOD> <path>" in the body.
Handler EchoHandler(std::atomic<int>* calls = nullptr) {
  return [calls](HttpRequest req, std::shared_ptr<Responder> r) {
    if (calls != nullptr) calls->fetch_add(1);
    r->Respond(200, "text/plain", absl::StrCat(req.method, " ", req.path));
  };
}

// Decodes a chunked body; false when it is not well formed or lacks its last chunk.
bool Dechunk(const std::string& s, std::vector<std::string>* chunks) {
  size_t pos = 0;
  for (;;) {
    const size_t eol = s.find("\r\n", pos);
    if (eol == std::string::npos) return false;
    uint64_t size = 0;
    if (!absl::SimpleHexAtoi(s.substr(pos, eol - pos), &size)) return false;
    pos = eol + 2;
    if (size == 0) return s.compare(pos, 2, "\r\n") == 0;
    if (s.size() < pos + size + 2) return false;
    chunks->push_back(s.substr(pos, size));
    pos += size + 2;
  }
}

// --- 1. GET and keep-alive --------------------------------------------------------------------

TEST(HttpServerTest, GetAnsweredWithHeadersAndBodyOverOneKeptAliveConnection) {
  std::mutex mu;
  std::vector<HttpRequest> seen;
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    r->Respond(200, "text/plain", absl::StrCat("hello ", req.path, " ", req.query),
               {{"X-Answer", "42"}});
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(std::move(req));
  });
  ASSERT_NE(server, nullptr);
  Curl curl;
  CurlRequest req;
  req.headers = {"X-Custom-Header: MiXeD"};
  const CurlResult a = curl.Perform(Url(*server, "/v1/hello?x=1&y=2"), req);
  ASSERT_TRUE(a.ok()) << a.error;
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "hello /v1/hello x=1&y=2");
  EXPECT_EQ(a.header("X-Answer"), "42");
  EXPECT_EQ(a.header("Content-Type"), "text/plain");
  EXPECT_EQ(a.header("Content-Length"), "23");
  EXPECT_EQ(a.header("Server"), "smolserve");
  EXPECT_EQ(a.new_connections, 1);

  const CurlResult b = curl.Get(Url(*server, "/again"));
  ASSERT_TRUE(b.ok()) << b.error;
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(b.body, "hello /again ");
  EXPECT_EQ(b.new_connections, 0) << "the second request should reuse the connection";
  EXPECT_EQ(server->connections(), 1);

  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].path, "/v1/hello");
  EXPECT_EQ(seen[0].query, "x=1&y=2");
  EXPECT_EQ(seen[0].header("x-custom-header"), "MiXeD");
  EXPECT_EQ(seen[0].header("host"), absl::StrCat("127.0.0.1:", server->port()));
  EXPECT_EQ(seen[0].header("absent"), "");
  EXPECT_EQ(seen[0].remote, "127.0.0.1");
  EXPECT_EQ(seen[1].query, "");
}

TEST(HttpServerTest, PipelinedRequestsAreAllAnswered) {
  auto server = StartServer(LoopbackOptions(), EchoHandler());
  ASSERT_NE(server, nullptr);
  // Both requests in one segment: the second is read along with the first.
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send("GET /one HTTP/1.1\r\nHost: t\r\n\r\n"
                         "GET /two HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto two_responses = [](const std::string& s) {
    RawResponse first = ParseResponse(s);
    return first.status != 0 && ParseResponse(s, first.consumed).status != 0;
  };
  ASSERT_EQ(conn->ReadUntil(two_responses, absl::Seconds(3)), RawConn::Result::kMatched)
      << conn->received();
  const RawResponse first = ParseResponse(conn->received());
  EXPECT_EQ(first.body, "GET /one");
  EXPECT_EQ(ParseResponse(conn->received(), first.consumed).body, "GET /two");
}

TEST(HttpServerTest, RequestSentWhileThePreviousIsAnsweredIsServed) {
  ThreadPool pool(1);
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    pool.Submit([req = std::move(req), r] {
      if (req.path == "/slow") absl::SleepFor(absl::Milliseconds(100));
      r->Respond(200, "text/plain", req.path);
    });
  });
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(WaitFor([&] { return server->requests_in_flight() == 1; }));
  ASSERT_TRUE(conn->Send("GET /next HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto two_responses = [](const std::string& s) {
    RawResponse first = ParseResponse(s);
    return first.status != 0 && ParseResponse(s, first.consumed).status != 0;
  };
  ASSERT_EQ(conn->ReadUntil(two_responses, absl::Seconds(3)), RawConn::Result::kMatched)
      << conn->received();
  const RawResponse first = ParseResponse(conn->received());
  EXPECT_EQ(first.body, "/slow");
  EXPECT_EQ(ParseResponse(conn->received(), first.consumed).body, "/next");
}

TEST(HttpServerTest, Http10ClientIsAnsweredAndItsConnectionClosed) {
  ThreadPool pool(1);
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    if (req.path == "/plain") return r->Respond(200, "text/plain", "plain");
    pool.Submit([r] {
      r->StartStream(200, "text/plain");
      for (int i = 0; i < 5; ++i) r->Write(absl::StrCat("piece", i, ";"));
      r->End();
    });
  });
  ASSERT_NE(server, nullptr);
  Curl curl;
  CurlRequest req;
  req.http10 = true;
  CurlResult a = curl.Perform(Url(*server, "/plain"), req);
  ASSERT_TRUE(a.ok()) << a.error;
  EXPECT_EQ(a.body, "plain");
  // HTTP/1.0 knows no chunked encoding: the stream's end is the connection's.
  CurlResult b = curl.Perform(Url(*server, "/stream"), req);
  ASSERT_TRUE(b.ok()) << b.error;
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(b.header("Transfer-Encoding"), "");
  EXPECT_EQ(b.body, "piece0;piece1;piece2;piece3;piece4;");
  EXPECT_EQ(b.new_connections, 1);
}

TEST(HttpServerTest, HeadGetsTheHeaderWithoutTheBody) {
  ThreadPool pool(1);
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    if (req.path != "/stream") return r->Respond(200, "text/plain", "twelve bytes");
    pool.Submit([r] {
      r->StartStream(200, "text/plain");
      r->Write("not for HEAD");
      r->End();
    });
  });
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send("HEAD /plain HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_EQ(conn->ReadUntil([](const std::string& s) { return absl::EndsWith(s, "\r\n\r\n"); },
                            absl::Seconds(3)),
            RawConn::Result::kMatched);
  EXPECT_TRUE(absl::StrContains(conn->received(), "Content-Length: 12\r\n")) << conn->received();
  ASSERT_TRUE(conn->Send("HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_EQ(conn->ReadUntil([](const std::string& s) { return absl::StrContains(s, "chunked"); },
                            absl::Seconds(3)),
            RawConn::Result::kMatched);
  // Then a GET on the same connection: its answer comes right after the two headers.
  const size_t heads = conn->received().size();
  ASSERT_TRUE(conn->Send(kSimpleGet));
  ASSERT_EQ(conn->ReadUntil([&](const std::string& s) { return HasResponse(s.substr(heads)); },
                            absl::Seconds(3)),
            RawConn::Result::kMatched);
  const std::string all = conn->received();
  EXPECT_FALSE(absl::StrContains(all, "not for HEAD")) << all;
  EXPECT_EQ(all.find("HTTP/1.1", heads), heads) << all;
  EXPECT_EQ(ParseResponse(all.substr(heads)).body, "twelve bytes");
}

TEST(HttpServerTest, WriteRacingEndFromAnotherThreadNeverCorruptsTheConnection) {
  ThreadPool pool(2);
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    if (req.path != "/race") return r->Respond(200, "text/plain", "next");
    r->StartStream(200, "text/plain");
    pool.Submit([r] {
      for (int i = 0; i < 400 && r->Write("x"); ++i) {
      }
    });
    pool.Submit([r] {
      absl::SleepFor(absl::Microseconds(50));
      r->End();
    });
  });
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  size_t from = 0;
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(conn->Send("GET /race HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_EQ(conn->ReadUntil([&](const std::string& s) {
                return s.find("\r\n0\r\n\r\n", from) != std::string::npos;
              }, absl::Seconds(3)),
              RawConn::Result::kMatched);
    ASSERT_TRUE(conn->Send("GET /next HTTP/1.1\r\nHost: t\r\n\r\n"));
    ASSERT_EQ(conn->ReadUntil([&](const std::string& s) { return absl::EndsWith(s, "next"); },
                              absl::Seconds(3)),
              RawConn::Result::kMatched)
        << conn->received().substr(from);
    const std::string answers = conn->received().substr(from);
    const size_t head_end = answers.find("\r\n\r\n");
    const size_t next = answers.find("HTTP/1.1 200", head_end);
    ASSERT_NE(next, std::string::npos);
    std::vector<std::string> chunks;
    ASSERT_TRUE(Dechunk(answers.substr(head_end + 4, next - head_end - 4), &chunks)) << answers;
    EXPECT_EQ(answers.find("0\r\n\r\n", head_end) + 5, next) << "bytes after the last chunk";
    from = conn->received().size();
  }
}

// --- 2. POST ----------------------------------------------------------------------------------

TEST(HttpServerTest, PostBodyArrivesIntactWithoutAnExpectContinueStall) {
  std::string body(1 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7919) >> 3);
  std::atomic<int> intact{0};
  std::string expect_header;
  std::mutex mu;
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    if (req.body == body) intact.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(mu);
      expect_header = req.header("expect");
    }
    r->Respond(200, "text/plain", absl::StrCat(req.body.size()));
  });
  ASSERT_NE(server, nullptr);
  Curl curl;
  CurlRequest req;
  req.method = "POST";
  req.body = body;
  req.headers = {"Content-Type: application/octet-stream", "Expect: 100-continue"};
  const CurlResult a = curl.Perform(Url(*server, "/upload"), req);
  ASSERT_TRUE(a.ok()) << a.error;
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "1048576");
  EXPECT_EQ(intact.load(), 1);
  EXPECT_LT(a.seconds, 0.5) << "100 Continue was not sent: libcurl waited for it";
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(expect_header, "100-continue");
  }
  // The same without Expect, and then a GET, on the same connection.
  req.headers = {"Expect:"};
  const CurlResult b = curl.Perform(Url(*server, "/upload"), req);
  ASSERT_TRUE(b.ok()) << b.error;
  EXPECT_EQ(b.body, "1048576");
  EXPECT_EQ(intact.load(), 2);
  const CurlResult c = curl.Get(Url(*server, "/after"));
  ASSERT_TRUE(c.ok()) << c.error;
  EXPECT_EQ(c.status, 200);
  EXPECT_EQ(c.new_connections, 0);
}

// --- 3. streaming -----------------------------------------------------------------------------

TEST(HttpServerTest, StreamFromAnotherThreadArrivesInOrderThenTheConnectionServesAgain) {
  ThreadPool pool(1);
  std::atomic<bool> write_after_end{true};
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    if (req.path != "/stream") return r->Respond(200, "text/plain", "plain");
    pool.Submit([r, &write_after_end] {
      r->StartStream(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
      for (int i = 0; i < 100; ++i) {
        EXPECT_TRUE(r->Write(absl::StrCat("data: ", i, "\n\n")));
        if (i == 50) {
          EXPECT_TRUE(r->Write(""));  // nothing to send: not the end of the stream
        }
      }
      r->End();
      write_after_end = r->Write("late");
      r->End();  // a second End is ignored
    });
  });
  ASSERT_NE(server, nullptr);
  Curl curl;
  const CurlResult a = curl.Get(Url(*server, "/stream"));
  ASSERT_TRUE(a.ok()) << a.error;
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.header("Transfer-Encoding"), "chunked");
  EXPECT_EQ(a.header("Content-Type"), "text/event-stream");
  EXPECT_EQ(a.header("Cache-Control"), "no-cache");
  std::string expected;
  for (int i = 0; i < 100; ++i) absl::StrAppend(&expected, "data: ", i, "\n\n");
  EXPECT_EQ(a.body, expected);
  const CurlResult b = curl.Get(Url(*server, "/plain"));
  ASSERT_TRUE(b.ok()) << b.error;
  EXPECT_EQ(b.body, "plain");
  EXPECT_EQ(b.new_connections, 0);
  EXPECT_FALSE(write_after_end.load());
}

TEST(HttpServerTest, StreamIsChunkedOnTheWire) {
  ThreadPool pool(1);
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest, std::shared_ptr<Responder> r) {
    pool.Submit([r] {
      r->StartStream(200, "text/plain");
      for (int i = 0; i < 3; ++i) r->Write(absl::StrCat("c", i));
      r->End();
    });
  });
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(kSimpleGet));
  ASSERT_EQ(conn->ReadUntil([](const std::string& s) { return absl::EndsWith(s, "0\r\n\r\n"); },
                            absl::Seconds(3)),
            RawConn::Result::kMatched)
      << conn->received();
  const std::string& s = conn->received();
  const size_t head_end = s.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_TRUE(absl::StartsWith(s, "HTTP/1.1 200 OK\r\n")) << s;
  std::vector<std::string> chunks;
  ASSERT_TRUE(Dechunk(s.substr(head_end + 4), &chunks)) << s;
  EXPECT_EQ(chunks, (std::vector<std::string>{"c0", "c1", "c2"}));
}

// --- 4. body limit ----------------------------------------------------------------------------

HttpServerOptions SmallBodyOptions() {
  HttpServerOptions o = LoopbackOptions();
  o.max_body_bytes = 1000;
  return o;
}

TEST(HttpServerTest, ContentLengthOverTheLimitIs413BeforeTheBodyIsSent) {
  std::atomic<int> calls{0};
  std::vector<int> rejected;
  std::mutex mu;
  HttpServerOptions o = SmallBodyOptions();
  o.on_rejected = [&](int status) {
    std::lock_guard<std::mutex> lock(mu);
    rejected.push_back(status);
  };
  auto server = StartServer(o, EchoHandler(&calls));
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(
      "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"));
  ASSERT_EQ(conn->ReadResponse(), RawConn::Result::kMatched) << conn->received();
  EXPECT_TRUE(absl::StartsWith(conn->received(), "HTTP/1.1 413 ")) << conn->received();
  EXPECT_TRUE(absl::StrContains(absl::AsciiStrToLower(conn->received()), "connection: close"));
  EXPECT_TRUE(conn->WaitClosed());
  EXPECT_EQ(calls.load(), 0);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(rejected, std::vector<int>{413});
}

TEST(HttpServerTest, ContentLengthOverTheLimitIs413WhenTheClientSendsTheBodyAnyway) {
  std::atomic<int> calls{0};
  auto server = StartServer(SmallBodyOptions(), EchoHandler(&calls));
  ASSERT_NE(server, nullptr);
  // Raw: the whole 200 KB body right behind the header; the client must read the 413, not a reset.
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  const std::string body(200000, 'b');
  std::thread sender([&] {
    conn->Send(absl::StrCat("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: ", body.size(),
                            "\r\n\r\n", body));
  });
  const RawConn::Result result = conn->ReadResponse();
  sender.join();
  ASSERT_EQ(result, RawConn::Result::kMatched) << conn->received();
  EXPECT_EQ(ParseResponse(conn->received()).status, 413);
  EXPECT_TRUE(conn->WaitClosed());
  EXPECT_FALSE(conn->reset());

  // libcurl, with and without Expect.
  for (const char* expect : {"Expect: 100-continue", "Expect:"}) {
    Curl curl;
    CurlRequest req;
    req.method = "POST";
    req.body = body;
    req.headers = {expect};
    const CurlResult r = curl.Perform(Url(*server, "/up"), req);
    EXPECT_TRUE(r.ok()) << expect << ": " << r.error;
    EXPECT_EQ(r.status, 413) << expect;
  }
  // At the limit exactly: accepted.
  Curl curl;
  CurlRequest req;
  req.method = "POST";
  req.body = std::string(1000, 'a');
  const CurlResult r = curl.Perform(Url(*server, "/up"), req);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServerTest, ChunkedBodyOverTheLimitIs413) {
  std::atomic<int> calls{0};
  auto server = StartServer(SmallBodyOptions(), EchoHandler(&calls));
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  std::string request = "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i) absl::StrAppend(&request, "200\r\n", std::string(512, 'x'), "\r\n");
  absl::StrAppend(&request, "0\r\n\r\n");
  ASSERT_TRUE(conn->Send(request));
  ASSERT_EQ(conn->ReadResponse(), RawConn::Result::kMatched) << conn->received();
  EXPECT_EQ(ParseResponse(conn->received()).status, 413);
  EXPECT_TRUE(conn->WaitClosed());
  EXPECT_EQ(calls.load(), 0);

  // A chunked body within the limit is delivered whole.
  std::string got;
  std::mutex mu;
  auto server2 = StartServer(SmallBodyOptions(), [&](HttpRequest req,
                                                     std::shared_ptr<Responder> r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      got = req.body;
    }
    r->Respond(200, "text/plain", "ok");
  });
  ASSERT_NE(server2, nullptr);
  auto conn2 = RawConn::Connect(server2->port());
  ASSERT_NE(conn2, nullptr);
  ASSERT_TRUE(conn2->Send("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  ASSERT_EQ(conn2->ReadResponse(), RawConn::Result::kMatched) << conn2->received();
  EXPECT_EQ(ParseResponse(conn2->received()).status, 200);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(got, "hello world");
}

// --- 5. header limit --------------------------------------------------------------------------

TEST(HttpServerTest, HeadersOverTheLimitAre431) {
  HttpServerOptions o = LoopbackOptions();
  o.max_header_bytes = 2048;
  std::atomic<int> calls{0};
  auto server = StartServer(o, EchoHandler(&calls));
  ASSERT_NE(server, nullptr);
  Curl curl;
  CurlRequest req;
  req.headers = {absl::StrCat("X-Big: ", std::string(1000, 'a'))};
  CurlResult fits = curl.Perform(Url(*server, "/h"), req);
  ASSERT_TRUE(fits.ok()) << fits.error;
  EXPECT_EQ(fits.status, 200);
  req.headers = {absl::StrCat("X-Big: ", std::string(4000, 'a'))};
  CurlResult big = curl.Perform(Url(*server, "/h"), req);
  ASSERT_TRUE(big.ok()) << big.error;
  EXPECT_EQ(big.status, 431);
  EXPECT_EQ(calls.load(), 1);
  // Many small headers count too.
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  std::string request = "GET / HTTP/1.1\r\nHost: t\r\n";
  for (int i = 0; i < 200; ++i) absl::StrAppend(&request, "X-H", i, ": value\r\n");
  ASSERT_TRUE(conn->Send(absl::StrCat(request, "\r\n")));
  ASSERT_EQ(conn->ReadResponse(), RawConn::Result::kMatched) << conn->received();
  EXPECT_EQ(ParseResponse(conn->received()).status, 431);
  EXPECT_TRUE(conn->WaitClosed());
}

// --- 6. slow sender ---------------------------------------------------------------------------

TEST(HttpServerTest, SlowSenderGets408WhileOthersAreServed) {
  HttpServerOptions o = LoopbackOptions();
  o.request_timeout = absl::Seconds(1);
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  const auto start = Clock::now();
  double answered_after = -1;
  std::thread loris([&] {
    conn->Send("GET /slow HTT");
    // One byte per 200 ms, reading what comes back, until the server closes (or 4 s).
    while (!conn->closed_by_peer() && SecondsSince(start) < 4) {
      const auto round = Clock::now();
      while (!conn->closed_by_peer() && SecondsSince(round) < 0.2) conn->ReadSome(20);
      if (answered_after < 0 && !conn->received().empty()) answered_after = SecondsSince(start);
      if (!conn->closed_by_peer()) conn->Send("P");
    }
  });
  // Meanwhile normal clients are served at once.
  for (int i = 0; i < 5; ++i) {
    Curl curl;
    const CurlResult r = curl.Get(Url(*server, "/fast"));
    EXPECT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_LT(r.seconds, 0.3);
    absl::SleepFor(absl::Milliseconds(100));
  }
  loris.join();
  const double closed_after = SecondsSince(start);
  EXPECT_TRUE(conn->closed_by_peer());
  EXPECT_EQ(ParseResponse(conn->received()).status, 408) << conn->received();
  EXPECT_GE(answered_after, 0.9);
  EXPECT_LE(answered_after, 2.0);
  EXPECT_LE(closed_after, 2.5);
}

TEST(HttpServerTest, SlowBodyGets408) {
  HttpServerOptions o = LoopbackOptions();
  o.request_timeout = absl::Milliseconds(500);
  std::atomic<int> calls{0};
  auto server = StartServer(o, EchoHandler(&calls));
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send("POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nhalf"));
  ASSERT_EQ(conn->ReadResponse(absl::Seconds(3)), RawConn::Result::kMatched);
  EXPECT_EQ(ParseResponse(conn->received()).status, 408);
  EXPECT_TRUE(conn->WaitClosed());
  EXPECT_EQ(calls.load(), 0);
}

// --- 7. idle connections ----------------------------------------------------------------------

TEST(HttpServerTest, IdleKeptAliveConnectionIsClosedAfterIdleTimeout) {
  HttpServerOptions o = LoopbackOptions();
  o.idle_timeout = absl::Milliseconds(300);
  o.request_timeout = absl::Seconds(10);
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(kSimpleGet));
  ASSERT_EQ(conn->ReadResponse(), RawConn::Result::kMatched);
  const auto answered = Clock::now();
  const size_t response_size = conn->received().size();
  ASSERT_TRUE(conn->WaitClosed(absl::Seconds(3)));
  const double idle = SecondsSince(answered);
  EXPECT_GE(idle, 0.25);
  EXPECT_LE(idle, 1.5);
  EXPECT_EQ(conn->received().size(), response_size) << "an idle connection is closed silently";
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 0; }));
}

TEST(HttpServerTest, ConnectionThatSendsNothingIsClosedSilently) {
  HttpServerOptions o = LoopbackOptions();
  o.request_timeout = absl::Milliseconds(400);
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  const auto start = Clock::now();
  ASSERT_TRUE(conn->WaitClosed(absl::Seconds(3)));
  EXPECT_LE(SecondsSince(start), 1.5);
  EXPECT_EQ(conn->received(), "");
}

// --- 8. the client goes away while being answered ---------------------------------------------

TEST(HttpServerTest, DisconnectWhileTheRequestIsAnsweredRunsOnClose) {
  ResponderSlot slot;
  Event closed;
  std::atomic<int> on_close_runs{0};
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest, std::shared_ptr<Responder> r) {
    r->OnClose([&] {
      on_close_runs.fetch_add(1);
      closed.Notify();
    });
    slot.Put(std::move(r));
  });
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(kSimpleGet));
  ASSERT_TRUE(WaitFor([&] { return slot.size() == 1; }));
  std::shared_ptr<Responder> r = slot.Get();
  EXPECT_FALSE(r->closed());
  EXPECT_EQ(server->requests_in_flight(), 1);
  conn->Close();
  const auto start = Clock::now();
  ASSERT_TRUE(closed.Wait(absl::Seconds(1)));
  EXPECT_LT(SecondsSince(start), 1.0);
  EXPECT_TRUE(r->closed());
  r->StartStream(200, "text/plain");
  EXPECT_FALSE(r->Write("nobody reads this"));
  r->End();
  // An OnClose registered now runs at once.
  bool late = false;
  r->OnClose([&] { late = true; });
  EXPECT_TRUE(late);
  EXPECT_TRUE(WaitFor([&] { return server->requests_in_flight() == 0; }));
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 0; }));
  slot.Clear();
  r.reset();
  EXPECT_EQ(on_close_runs.load(), 1);
}

TEST(HttpServerTest, DisconnectDuringAStreamStopsItsWrites) {
  ThreadPool pool(1);
  Event closed;
  Event write_failed;
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest, std::shared_ptr<Responder> r) {
    r->OnClose([&] { closed.Notify(); });
    pool.Submit([r, &write_failed] {
      r->StartStream(200, "text/event-stream");
      r->Write("data: first\n\n");
      const auto start = Clock::now();
      while (SecondsSince(start) < 5) {
        if (!r->Write("data: more\n\n")) {
          write_failed.Notify();
          break;
        }
        absl::SleepFor(absl::Milliseconds(5));
      }
      r->End();
    });
  });
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(kSimpleGet));
  ASSERT_EQ(conn->ReadUntil([](const std::string& s) { return absl::StrContains(s, "first"); },
                            absl::Seconds(3)),
            RawConn::Result::kMatched);
  conn->Close();
  EXPECT_TRUE(closed.Wait(absl::Seconds(1)));
  EXPECT_TRUE(write_failed.Wait(absl::Seconds(2)));
  EXPECT_TRUE(WaitFor([&] { return server->requests_in_flight() == 0; }));
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 0; }));
}

TEST(HttpServerTest, OnCloseOfAnAnsweredRequestNeverRunsForTheNextOne) {
  ResponderSlot slot;
  std::atomic<int> stale_runs{0};
  Event second_closed;
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    if (req.path == "/first") {
      r->Respond(200, "text/plain", "first");
      slot.Put(std::move(r));
      return;
    }
    // The first request's handler registers its OnClose late, after its answer ended and
    // while the second request on the same connection is open.
    r->OnClose([&] { second_closed.Notify(); });
    slot.Get(0)->OnClose([&] { stale_runs.fetch_add(1); });
    slot.Put(std::move(r));
  });
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send("GET /first HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_EQ(conn->ReadResponse(), RawConn::Result::kMatched);
  ASSERT_TRUE(conn->Send("GET /second HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(WaitFor([&] { return slot.size() == 2; }));
  absl::SleepFor(absl::Milliseconds(20));  // lets the late OnClose reach the I/O thread
  conn->Close();
  EXPECT_TRUE(second_closed.Wait(absl::Seconds(1)));
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 0; }));
  EXPECT_EQ(stale_runs.load(), 0);
  EXPECT_FALSE(slot.Get(0)->closed()) << "the first answer ended before the client left";
}

// --- 9. slow readers --------------------------------------------------------------------------

TEST(HttpServerTest, ClientThatStopsReadingIsDroppedOverThePendingBound) {
  HttpServerOptions o = LoopbackOptions();
  o.max_pending_write_bytes = 256 << 10;
  o.write_timeout = absl::Seconds(30);
  ThreadPool pool(1);
  Event closed;
  Event write_failed;
  std::atomic<int64_t> written{0};
  auto server = StartServer(o, [&](HttpRequest, std::shared_ptr<Responder> r) {
    r->OnClose([&] { closed.Notify(); });
    pool.Submit([r, &written, &write_failed] {
      r->StartStream(200, "application/octet-stream");
      const std::string piece(64 << 10, 'z');
      for (int i = 0; i < 4096; ++i) {  // at most 256 MB
        if (!r->Write(piece)) {
          write_failed.Notify();
          break;
        }
        written.fetch_add(static_cast<int64_t>(piece.size()));
        if (i % 8 == 0) absl::SleepFor(absl::Milliseconds(1));
      }
      r->End();
    });
  });
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port(), /*rcvbuf=*/4096);
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(kSimpleGet));  // and never reads
  ASSERT_TRUE(write_failed.Wait(absl::Seconds(10)));
  EXPECT_TRUE(closed.Wait(absl::Seconds(1)));
  EXPECT_LT(written.load(), int64_t{64} << 20) << "the socket buffers cannot hold that much";
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 0; }));
  EXPECT_EQ(server->requests_in_flight(), 0);
}

TEST(HttpServerTest, ClientThatStopsReadingIsDroppedAfterWriteTimeout) {
  HttpServerOptions o = LoopbackOptions();
  o.max_pending_write_bytes = int64_t{64} << 20;
  o.write_timeout = absl::Milliseconds(300);
  ThreadPool pool(1);
  Event write_failed;
  auto server = StartServer(o, [&](HttpRequest, std::shared_ptr<Responder> r) {
    pool.Submit([r, &write_failed] {
      r->StartStream(200, "application/octet-stream");
      const std::string piece(16 << 10, 'z');
      const auto start = Clock::now();
      while (SecondsSince(start) < 8) {  // ~16 MB/s: the bound is not what stops it
        if (!r->Write(piece)) {
          write_failed.Notify();
          break;
        }
        absl::SleepFor(absl::Milliseconds(1));
      }
      r->End();
    });
  });
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port(), /*rcvbuf=*/4096);
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(kSimpleGet));
  ASSERT_TRUE(write_failed.Wait(absl::Seconds(8)));
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 0; }));
}

// --- 10. connection limit ---------------------------------------------------------------------

TEST(HttpServerTest, ConnectionsOverTheLimitAreClosedAtOnce) {
  HttpServerOptions o = LoopbackOptions();
  o.max_connections = 4;
  auto server = StartServer(o, EchoHandler());
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawConn>> conns;
  for (int i = 0; i < 4; ++i) {
    conns.push_back(RawConn::Connect(server->port()));
    ASSERT_NE(conns.back(), nullptr);
  }
  ASSERT_TRUE(WaitFor([&] { return server->connections() == 4; }));
  auto fifth = RawConn::Connect(server->port());
  ASSERT_NE(fifth, nullptr);
  EXPECT_TRUE(fifth->WaitClosed(absl::Seconds(1)));
  for (auto& c : conns) EXPECT_FALSE(c->PeerClosedNow());
  // The four still work.
  ASSERT_TRUE(conns[0]->Send(kSimpleGet));
  ASSERT_EQ(conns[0]->ReadResponse(), RawConn::Result::kMatched);
  EXPECT_EQ(ParseResponse(conns[0]->received()).status, 200);
  // One goes: a new one is served.
  conns[3]->Close();
  ASSERT_TRUE(WaitFor([&] { return server->connections() == 3; }));
  auto another = RawConn::Connect(server->port());
  ASSERT_NE(another, nullptr);
  ASSERT_TRUE(another->Send(kSimpleGet));
  ASSERT_EQ(another->ReadResponse(), RawConn::Result::kMatched) << another->received();
  EXPECT_EQ(ParseResponse(another->received()).status, 200);
}

// --- 11. handlers that fail -------------------------------------------------------------------

TEST(HttpServerTest, HandlerThatThrowsOrDropsTheResponderGets500) {
  std::vector<int> rejected;
  std::mutex mu;
  HttpServerOptions o = LoopbackOptions();
  o.on_rejected = [&](int status) {
    std::lock_guard<std::mutex> lock(mu);
    rejected.push_back(status);
  };
  o.error_body = [](int status, const std::string& message) {
    return std::make_pair(std::string("application/json"),
                          absl::StrCat("{\"status\":", status, "}"));
  };
  auto server = StartServer(o, [&](HttpRequest req, std::shared_ptr<Responder> r) {
    if (req.path == "/throw") throw std::runtime_error("boom");
    if (req.path == "/drop") return;
    r->Respond(200, "text/plain", "fine");
  });
  ASSERT_NE(server, nullptr);
  Curl curl;
  const CurlResult thrown = curl.Get(Url(*server, "/throw"));
  ASSERT_TRUE(thrown.ok()) << thrown.error;
  EXPECT_EQ(thrown.status, 500);
  EXPECT_EQ(thrown.body, "{\"status\":500}");
  const CurlResult dropped = curl.Get(Url(*server, "/drop"));
  ASSERT_TRUE(dropped.ok()) << dropped.error;
  EXPECT_EQ(dropped.status, 500);
  const CurlResult fine = curl.Get(Url(*server, "/fine"));
  ASSERT_TRUE(fine.ok()) << fine.error;
  EXPECT_EQ(fine.status, 200);
  EXPECT_EQ(fine.new_connections, 0) << "a 500 of the server's own keeps the connection";
  EXPECT_TRUE(WaitFor([&] { return server->requests_in_flight() == 0; }));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(rejected, (std::vector<int>{500, 500}));
}

TEST(HttpServerTest, ResponderDroppedMidStreamClosesTheConnection) {
  ThreadPool pool(1);
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest, std::shared_ptr<Responder> r) {
    pool.Submit([r] {
      r->StartStream(200, "text/plain");
      r->Write("partial");
    });  // and drops it without End
  });
  ASSERT_NE(server, nullptr);
  Curl curl;
  const CurlResult r = curl.Get(Url(*server, "/s"), /*timeout_ms=*/3000);
  EXPECT_FALSE(r.ok()) << "the client must see an incomplete answer";
  EXPECT_NE(r.code, CURLE_OPERATION_TIMEDOUT) << r.error;
  EXPECT_EQ(r.body, "partial");
  EXPECT_TRUE(WaitFor([&] { return server->requests_in_flight() == 0; }));
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 0; }));
}

// --- 12. malformed requests -------------------------------------------------------------------

TEST(HttpServerTest, MalformedRequestsAre400) {
  std::atomic<int> calls{0};
  auto server = StartServer(LoopbackOptions(), EchoHandler(&calls));
  ASSERT_NE(server, nullptr);
  for (const char* bad : {"THIS IS NOT HTTP\r\n\r\n", "GET / HTTP/9\r\n\r\n",
                          "GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
                          "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n"}) {
    auto conn = RawConn::Connect(server->port());
    ASSERT_NE(conn, nullptr);
    ASSERT_TRUE(conn->Send(bad));
    ASSERT_EQ(conn->ReadResponse(), RawConn::Result::kMatched) << bad;
    EXPECT_EQ(ParseResponse(conn->received()).status, 400) << bad << conn->received();
    EXPECT_TRUE(conn->WaitClosed()) << bad;
  }
  EXPECT_EQ(calls.load(), 0);
  // A half request then a close is no error worth an answer.
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send("GET / HT"));
  conn->Reset();
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 0; }));
}

// --- 13. TLS ----------------------------------------------------------------------------------

class HttpServerTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string base = tmp != nullptr ? tmp : "/tmp";
    char dir_template[4096];
    snprintf(dir_template, sizeof(dir_template), "%s/tlsXXXXXX", base.c_str());
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = new std::string(dir_template);
    const std::string d = *dir_;
    {
      std::ofstream(d + "/server.ext")
          << "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
             "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n";
      std::ofstream(d + "/client.ext")
          << "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
             "extendedKeyUsage=clientAuth\n";
    }
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::vector<std::string> commands = {
        absl::StrCat("openssl req -x509 ", key, " -keyout ", d, "/ca.key -out ", d,
                     "/ca.pem -days 2 -subj /CN=smolserve-test-ca",
                     " -addext basicConstraints=critical,CA:TRUE",
                     " -addext keyUsage=critical,keyCertSign,cRLSign"),
        absl::StrCat("openssl req ", key, " -keyout ", d, "/server.key -out ", d,
                     "/server.csr -subj /CN=127.0.0.1"),
        absl::StrCat("openssl x509 -req -in ", d, "/server.csr -CA ", d, "/ca.pem -CAkey ", d,
                     "/ca.key -CAcreateserial -out ", d, "/server.pem -days 2 -extfile ", d,
                     "/server.ext"),
        absl::StrCat("openssl req ", key, " -keyout ", d, "/client.key -out ", d,
                     "/client.csr -subj /CN=client"),
        absl::StrCat("openssl x509 -req -in ", d, "/client.csr -CA ", d, "/ca.pem -CAkey ", d,
                     "/ca.key -CAcreateserial -out ", d, "/client.pem -days 2 -extfile ", d,
                     "/client.ext"),
    };
    for (const std::string& c : commands) {
      ASSERT_EQ(std::system((c + " >/dev/null 2>&1").c_str()), 0) << c;
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(dir_, nullptr) << "certificates were not made";
  }

  static std::string File(const std::string& name) { return *dir_ + "/" + name; }
  static HttpServerOptions TlsOptions() {
    HttpServerOptions o = LoopbackOptions();
    o.tls_cert = File("server.pem");
    o.tls_key = File("server.key");
    return o;
  }

  static std::string* dir_;
};
std::string* HttpServerTlsTest::dir_ = nullptr;

TEST_F(HttpServerTlsTest, HttpsGetAndStreamOverOneConnection) {
  ThreadPool pool(1);
  auto server = StartServer(TlsOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    if (req.path != "/stream") return r->Respond(200, "text/plain", "secret " + req.path);
    pool.Submit([r] {
      r->StartStream(200, "text/plain");
      for (int i = 0; i < 20; ++i) r->Write(absl::StrCat(i, ","));
      r->End();
    });
  });
  ASSERT_NE(server, nullptr);
  Curl curl;
  curl.TrustCa(File("ca.pem"));
  const CurlResult a = curl.Get(Url(*server, "/a", /*tls=*/true));
  ASSERT_TRUE(a.ok()) << a.error;
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "secret /a");
  const CurlResult b = curl.Get(Url(*server, "/stream", true));
  ASSERT_TRUE(b.ok()) << b.error;
  std::string expected;
  for (int i = 0; i < 20; ++i) absl::StrAppend(&expected, i, ",");
  EXPECT_EQ(b.body, expected);
  EXPECT_EQ(b.new_connections, 0);
  Curl by_name;
  by_name.TrustCa(File("ca.pem"));
  CurlRequest req;
  const CurlResult c = by_name.Perform(absl::StrCat("https://localhost:", server->port(), "/n"),
                                       req);
  // localhost may resolve to ::1 first; the server listens on 127.0.0.1 and curl falls back.
  ASSERT_TRUE(c.ok()) << c.error;
  EXPECT_EQ(c.body, "secret /n");
}

TEST_F(HttpServerTlsTest, PlainHttpToTheTlsPortFails) {
  std::atomic<int> calls{0};
  auto server = StartServer(TlsOptions(), EchoHandler(&calls));
  ASSERT_NE(server, nullptr);
  Curl curl;
  const CurlResult r = curl.Get(Url(*server, "/x", /*tls=*/false), 3000);
  EXPECT_FALSE(r.ok() && r.status == 200) << r.status;
  EXPECT_NE(r.code, CURLE_OPERATION_TIMEDOUT) << r.error;
  EXPECT_EQ(calls.load(), 0);
  // An untrusted server certificate is refused by the client.
  Curl untrusting;
  const CurlResult u = untrusting.Get(Url(*server, "/x", true), 3000);
  EXPECT_FALSE(u.ok());
  EXPECT_EQ(calls.load(), 0);
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 0; }));
}

TEST_F(HttpServerTlsTest, RequiredClientCertificate) {
  HttpServerOptions o = TlsOptions();
  o.tls_client_ca = File("ca.pem");
  std::atomic<int> calls{0};
  auto server = StartServer(o, EchoHandler(&calls));
  ASSERT_NE(server, nullptr);
  Curl anonymous;
  anonymous.TrustCa(File("ca.pem"));
  const CurlResult refused = anonymous.Get(Url(*server, "/x", true), 3000);
  EXPECT_FALSE(refused.ok() && refused.status == 200) << refused.status;
  EXPECT_NE(refused.code, CURLE_OPERATION_TIMEDOUT) << refused.error;
  EXPECT_EQ(calls.load(), 0);
  Curl known;
  known.TrustCa(File("ca.pem"));
  known.ClientCert(File("client.pem"), File("client.key"));
  const CurlResult served = known.Get(Url(*server, "/x", true));
  ASSERT_TRUE(served.ok()) << served.error;
  EXPECT_EQ(served.status, 200);
  EXPECT_EQ(served.body, "GET /x");
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(HttpServerTlsTest, DisconnectWhileAnsweredRunsOnClose) {
  ResponderSlot slot;
  Event closed;
  auto server = StartServer(TlsOptions(), [&](HttpRequest, std::shared_ptr<Responder> r) {
    r->OnClose([&] { closed.Notify(); });
    slot.Put(std::move(r));
  });
  ASSERT_NE(server, nullptr);
  Curl curl;
  curl.TrustCa(File("ca.pem"));
  const CurlResult r = curl.Get(Url(*server, "/wait", true), /*timeout_ms=*/300);
  EXPECT_EQ(r.code, CURLE_OPERATION_TIMEDOUT) << r.error;
  EXPECT_TRUE(closed.Wait(absl::Seconds(1)));
  ASSERT_EQ(slot.size(), 1u);
  EXPECT_TRUE(slot.Get()->closed());
  EXPECT_FALSE(slot.Get()->Write("x"));
  EXPECT_TRUE(WaitFor([&] { return server->connections() == 0; }));
}

TEST(HttpServerStartTest, BadTlsFilesAndAddressesAreErrors) {
  HttpServerOptions o = LoopbackOptions();
  o.tls_cert = "/nonexistent/cert.pem";
  o.tls_key = "/nonexistent/key.pem";
  auto bad_tls = HttpServer::Start(o, EchoHandler());
  EXPECT_EQ(bad_tls.status().code(), absl::StatusCode::kInvalidArgument);
  HttpServerOptions ca_only = LoopbackOptions();
  ca_only.tls_client_ca = "/nonexistent/ca.pem";
  EXPECT_EQ(HttpServer::Start(ca_only, EchoHandler()).status().code(),
            absl::StatusCode::kInvalidArgument);
  HttpServerOptions bad_host = LoopbackOptions();
  bad_host.host = "not an address";
  EXPECT_EQ(HttpServer::Start(bad_host, EchoHandler()).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = StartServer(LoopbackOptions(), EchoHandler());
  ASSERT_NE(first, nullptr);
  HttpServerOptions taken = LoopbackOptions();
  taken.port = first->port();
  EXPECT_EQ(HttpServer::Start(taken, EchoHandler()).status().code(),
            absl::StatusCode::kUnavailable);
}

// --- 14. Stop ---------------------------------------------------------------------------------

TEST(HttpServerTest, StopWaitsForTheRequestInFlightThenRefusesConnections) {
  ThreadPool pool(1);
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest, std::shared_ptr<Responder> r) {
    pool.Submit([r] {
      absl::SleepFor(absl::Milliseconds(300));
      r->Respond(200, "text/plain", "late but complete");
    });
  });
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  auto idle = RawConn::Connect(port);  // an idle connection: closed by Stop
  ASSERT_NE(idle, nullptr);
  CurlResult result;
  std::thread client([&] {
    Curl curl;
    result = curl.Get(Url(*server, "/slow"));
  });
  ASSERT_TRUE(WaitFor([&] { return server->requests_in_flight() == 1; }));
  const auto start = Clock::now();
  server->Stop(absl::Seconds(2));
  const double stop_seconds = SecondsSince(start);
  client.join();
  ASSERT_TRUE(result.ok()) << result.error;
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "late but complete");
  EXPECT_LT(stop_seconds, 1.5);
  EXPECT_TRUE(idle->WaitClosed(absl::Seconds(1)));
  EXPECT_EQ(RawConn::Connect(port), nullptr) << "a connection after Stop must be refused";
  server->Stop(absl::Seconds(2));  // idempotent
}

TEST(HttpServerTest, RequestArrivingDuringStopIs503) {
  ThreadPool pool(1);
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    if (req.path != "/slow") return r->Respond(200, "text/plain", "fast");
    pool.Submit([r] {
      absl::SleepFor(absl::Milliseconds(300));
      r->Respond(200, "text/plain", "slow");
    });
  });
  ASSERT_NE(server, nullptr);
  auto slow = RawConn::Connect(server->port());
  auto kept = RawConn::Connect(server->port());
  ASSERT_NE(slow, nullptr);
  ASSERT_NE(kept, nullptr);
  ASSERT_TRUE(kept->Send(kSimpleGet));
  ASSERT_EQ(kept->ReadResponse(), RawConn::Result::kMatched);
  const size_t first = kept->received().size();
  ASSERT_TRUE(WaitFor([&] { return server->requests_in_flight() == 0; }));  // kept is idle
  ASSERT_TRUE(slow->Send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(WaitFor([&] { return server->requests_in_flight() == 1; }));
  std::thread stopper([&] { server->Stop(absl::Seconds(2)); });
  struct Joiner {
    std::thread& t;
    ~Joiner() { t.join(); }
  } join_stopper{stopper};
  absl::SleepFor(absl::Milliseconds(50));  // Stop has begun (the slow answer is 250 ms away)
  ASSERT_TRUE(kept->Send(kSimpleGet));
  ASSERT_EQ(kept->ReadUntil([&](const std::string& s) { return HasResponse(s.substr(first)); },
                            absl::Seconds(2)),
            RawConn::Result::kMatched)
      << kept->received();
  const RawResponse refused = ParseResponse(kept->received().substr(first));
  EXPECT_EQ(refused.status, 503);
  EXPECT_TRUE(absl::StrContains(refused.head, "Connection: close")) << refused.head;
  ASSERT_EQ(slow->ReadResponse(), RawConn::Result::kMatched);
  const RawResponse answered = ParseResponse(slow->received());
  EXPECT_EQ(answered.body, "slow");
  EXPECT_TRUE(absl::StrContains(answered.head, "Connection: close")) << answered.head;
  EXPECT_TRUE(slow->WaitClosed(absl::Seconds(1)));
  EXPECT_TRUE(kept->WaitClosed(absl::Seconds(1)));
}

TEST(HttpServerTest, StopReturnsPromptlyWhenNothingIsInFlight) {
  auto server = StartServer(LoopbackOptions(), EchoHandler());
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  auto idle = RawConn::Connect(port);
  ASSERT_NE(idle, nullptr);
  Curl curl;
  ASSERT_TRUE(curl.Get(Url(*server, "/")).ok());  // a kept-alive connection too
  ASSERT_TRUE(WaitFor([&] { return server->connections() == 2; }));
  const auto start = Clock::now();
  server->Stop(absl::Seconds(5));
  EXPECT_LT(SecondsSince(start), 0.5);
  EXPECT_TRUE(idle->WaitClosed(absl::Seconds(1)));
  EXPECT_EQ(RawConn::Connect(port), nullptr);
}

TEST(HttpServerTest, StopAfterGraceClosesWhatIsStillAnswered) {
  ResponderSlot slot;
  Event closed;
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest, std::shared_ptr<Responder> r) {
    r->OnClose([&] { closed.Notify(); });
    slot.Put(std::move(r));
  });
  ASSERT_NE(server, nullptr);
  auto conn = RawConn::Connect(server->port());
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Send(kSimpleGet));
  ASSERT_TRUE(WaitFor([&] { return slot.size() == 1; }));
  const auto start = Clock::now();
  server->Stop(absl::Milliseconds(200));
  const double stop_seconds = SecondsSince(start);
  EXPECT_GE(stop_seconds, 0.19);
  EXPECT_LT(stop_seconds, 1.5);
  EXPECT_TRUE(closed.notified()) << "the work for a request cut off by Stop can be cancelled";
  EXPECT_TRUE(conn->WaitClosed(absl::Seconds(1)));
  EXPECT_TRUE(slot.Get()->closed());
  EXPECT_FALSE(slot.Get()->Write("x"));
  slot.Get()->Respond(200, "text/plain", "too late");
}

TEST(HttpServerTest, ResponderOutlivingTheServerIsHarmless) {
  ResponderSlot slot;
  std::atomic<int> on_close_runs{0};
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    r->OnClose([&] { on_close_runs.fetch_add(1); });
    if (req.path == "/stream") {
      r->StartStream(200, "text/plain");
      r->Write("before");
    }
    slot.Put(std::move(r));
  });
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawConn>> conns;
  for (const char* path : {"/plain", "/stream", "/dropped"}) {
    conns.push_back(RawConn::Connect(server->port()));
    ASSERT_NE(conns.back(), nullptr);
    ASSERT_TRUE(conns.back()->Send(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: t\r\n\r\n")));
  }
  ASSERT_TRUE(WaitFor([&] { return slot.size() == 3; }));
  // A worker holds the responders and answers after the server is gone.
  Event server_gone;
  std::thread worker([&] {
    ASSERT_TRUE(server_gone.Wait());
    std::shared_ptr<Responder> plain = slot.Get(0);
    std::shared_ptr<Responder> stream = slot.Get(1);
    EXPECT_TRUE(plain->closed());
    plain->Respond(200, "text/plain", "too late");
    plain->OnClose([] {});
    EXPECT_FALSE(stream->Write("after"));
    stream->End();
    EXPECT_TRUE(stream->closed());
    slot.Clear();  // the third is destroyed unanswered here
  });
  server.reset();
  EXPECT_EQ(on_close_runs.load(), 3) << "the connections were closed before the answers ended";
  server_gone.Notify();
  worker.join();
  for (auto& c : conns) EXPECT_TRUE(c->WaitClosed(absl::Seconds(1)));
  EXPECT_EQ(on_close_runs.load(), 3);
}

TEST(HttpServerTest, StopWhileStreamingUnderLoad) {
  // Writers keep going while the server is destroyed under them.
  ThreadPool pool(4);
  std::atomic<bool> stop_writing{false};
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest, std::shared_ptr<Responder> r) {
    pool.Submit([r, &stop_writing] {
      r->StartStream(200, "text/plain");
      while (!stop_writing.load() && r->Write("tick\n")) absl::SleepFor(absl::Microseconds(200));
      r->End();
    });
  });
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawConn>> conns;
  for (int i = 0; i < 4; ++i) {
    conns.push_back(RawConn::Connect(server->port()));
    ASSERT_NE(conns.back(), nullptr);
    ASSERT_TRUE(conns.back()->Send(kSimpleGet));
  }
  ASSERT_TRUE(WaitFor([&] { return server->requests_in_flight() == 4; }));
  absl::SleepFor(absl::Milliseconds(20));
  server.reset();
  for (auto& c : conns) EXPECT_TRUE(c->WaitClosed(absl::Seconds(2)));
  stop_writing = true;
}

// --- 15. concurrency --------------------------------------------------------------------------

TEST(HttpServerTest, ManyClientsManyRequestsHalfStreaming) {
  ThreadPool pool(4);
  auto server = StartServer(LoopbackOptions(), [&](HttpRequest req, std::shared_ptr<Responder> r) {
    pool.Submit([req = std::move(req), r] {
      if (req.path == "/stream") {
        r->StartStream(200, "text/plain");
        for (int i = 0; i < 10; ++i) r->Write(absl::StrCat(req.query, ":", i, ";"));
        r->End();
      } else {
        r->Respond(200, "text/plain", absl::StrCat("plain:", req.query));
      }
    });
  });
  ASSERT_NE(server, nullptr);
  std::atomic<int> correct{0};
  std::atomic<int> connections{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      Curl curl;
      for (int i = 0; i < 50; ++i) {
        const std::string id = absl::StrCat(t, "-", i);
        const bool stream = i % 2 == 1;
        const CurlResult r = curl.Get(Url(*server, absl::StrCat(stream ? "/stream" : "/plain",
                                                                 "?", id)));
        std::string expected;
        if (stream) {
          for (int k = 0; k < 10; ++k) absl::StrAppend(&expected, id, ":", k, ";");
        } else {
          expected = absl::StrCat("plain:", id);
        }
        if (r.ok() && r.status == 200 && r.body == expected) {
          correct.fetch_add(1);
        } else {
          ADD_FAILURE() << id << ": " << r.error << " " << r.status << " " << r.body;
        }
        connections.fetch_add(static_cast<int>(r.new_connections));
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(correct.load(), 400);
  EXPECT_EQ(connections.load(), 8) << "every client keeps its one connection";
  EXPECT_TRUE(WaitFor([&] { return server->requests_in_flight() == 0; }));
}

}  // namespace
}  // namespace smolserve::http
