#include "services/preprocess/server/http/http_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace smolserve::http {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

std::string HttpRequest::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

namespace {

// Posting to sessions is allowed while the server runs; Stop closes the gate first.
struct Gate {
  std::mutex mu;
  bool open = true;
};

using Callbacks = std::vector<std::function<void()>>;

void RunAll(Callbacks fns) {
  for (auto& fn : fns) fn();
}

// What a responder and its session share about one answer. Its OnClose callbacks live here,
// not in the session, so that they belong to this answer and never to the next request on the
// same connection.
class ResponseState {
 public:
  bool closed() const { return closed_.load(); }

  // The client went away before the end: the callbacks to run, once (none when the answer had
  // ended or this was known already).
  Callbacks MarkClosed() {
    Callbacks fns;
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_ || closed_.load()) return fns;
    closed_.store(true);
    fns.swap(on_close_);
    return fns;
  }

  // The answer ended (or was given up): its callbacks will never run.
  void MarkEnded() {
    Callbacks dropped;  // destroyed outside the lock: they may hold the responder
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    dropped.swap(on_close_);
  }

  // Keeps `fn` for MarkClosed; false when the client is gone already (the caller runs it).
  bool AddOnClose(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_.load()) return false;
    if (!ended_) on_close_.push_back(std::move(fn));
    return true;
  }

  std::atomic<int64_t> pending_bytes{0};  // queued chunk bytes not written yet

 private:
  std::mutex mu_;
  std::atomic<bool> closed_{false};
  bool ended_ = false;
  Callbacks on_close_;
};

// What a responder (or Stop) asks of a session; every method runs on the session's strand.
class SessionIface {
 public:
  virtual ~SessionIface() = default;
  virtual void SendFull(int status, std::string content_type, std::string body, Headers h) = 0;
  virtual void SendError(int status, const std::string& message) = 0;  // the server's own
  virtual void SendHeader(int status, std::string content_type, Headers h) = 0;
  virtual void SendChunk(std::shared_ptr<std::string> data) = 0;
  virtual void SendLast() = 0;
  virtual void SendAbort() = 0;  // the stream was given up: close after what is queued
  virtual void Abort() = 0;      // the client is too slow, or the server stops: drop it now
  // Fixed at construction: callable from any thread.
  virtual asio::any_io_executor executor() = 0;
};

std::chrono::steady_clock::duration Chrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

}  // namespace

struct HttpServer::Core {
  HttpServerOptions options;
  Handler handler;
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> in_flight{0};
  std::shared_ptr<Gate> gate = std::make_shared<Gate>();
  std::mutex stop_mu;
  bool stopped = false;
  std::atomic<bool> stopping{false};
  std::unique_ptr<ssl::context> tls;
  // Every live session, for Stop to close.
  std::mutex sessions_mu;
  uint64_t last_session = 0;
  std::unordered_map<uint64_t, std::weak_ptr<SessionIface>> sessions;
  // Declared after what handlers touch: destroying the context destroys pending handlers.
  asio::io_context ioc;
  asio::strand<asio::io_context::executor_type> accept_strand{ioc.get_executor()};
  tcp::acceptor acceptor{accept_strand};
  asio::steady_timer accept_retry{accept_strand};
  std::vector<std::thread> threads;
  int port = 0;

  std::pair<std::string, std::string> ErrorBody(int status, const std::string& message) const {
    if (options.error_body) return options.error_body(status, message);
    return {"text/plain; charset=utf-8", message + "\n"};
  }

  uint64_t Remember(std::weak_ptr<SessionIface> session) {
    std::lock_guard<std::mutex> lock(sessions_mu);
    sessions.emplace(++last_session, std::move(session));
    return last_session;
  }
  void Forget(uint64_t id) {
    std::lock_guard<std::mutex> lock(sessions_mu);
    sessions.erase(id);
  }
  std::vector<std::shared_ptr<SessionIface>> LiveSessions() {
    std::vector<std::shared_ptr<SessionIface>> live;
    std::lock_guard<std::mutex> lock(sessions_mu);
    for (const auto& [id, weak] : sessions) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
    return live;
  }

  // Closes the acceptor on its strand and waits (up to 1 s) for it: a connection attempted
  // after Stop is refused.
  void CloseAcceptor() {
    auto done = std::make_shared<std::promise<void>>();
    asio::post(accept_strand, [this, done] {
      beast::error_code ec;
      acceptor.close(ec);
      accept_retry.cancel();
      done->set_value();
    });
    done->get_future().wait_for(std::chrono::seconds(1));
  }
};

namespace {

using Core = HttpServer::Core;

// One queued write of a response.
struct WriteOp {
  enum class Kind { kFull, kHeader, kChunk, kLast, kAbort };
  Kind kind = Kind::kFull;
  std::shared_ptr<bhttp::response<bhttp::string_body>> full;
  std::shared_ptr<bhttp::response<bhttp::empty_body>> header;
  std::shared_ptr<bhttp::response_serializer<bhttp::empty_body>> serializer;
  std::shared_ptr<std::string> data;
  bool terminal() const {
    return kind == Kind::kFull || kind == Kind::kLast || kind == Kind::kAbort;
  }
};

// Every method may be called from any thread. One mutex orders them, so that nothing of an
// answer is ever queued after its end (a Write racing an End from another thread).
class ResponderImpl final : public Responder {
 public:
  ResponderImpl(std::weak_ptr<SessionIface> session, std::shared_ptr<Gate> gate,
                std::shared_ptr<ResponseState> state, int64_t max_pending)
      : session_(std::move(session)), gate_(std::move(gate)), state_(std::move(state)),
        max_pending_(max_pending) {}

  // Unanswered: 500. A stream left without its end: the connection is closed after what was
  // queued, so that the client sees an incomplete answer instead of waiting for the rest.
  ~ResponderImpl() override {
    if (stage_ == kNone) {
      Post([](SessionIface& s) { s.SendError(500, "the request was not answered"); });
    } else if (stage_ == kStreaming) {
      Post([](SessionIface& s) { s.SendAbort(); });
    }
  }

  void Respond(int status, const std::string& content_type, std::string body,
               Headers headers) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (stage_ != kNone) return;
    stage_ = kDone;
    Post([status, content_type, body = std::move(body),
          headers = std::move(headers)](SessionIface& s) mutable {
      s.SendFull(status, std::move(content_type), std::move(body), std::move(headers));
    });
  }

  void StartStream(int status, const std::string& content_type, Headers headers) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (stage_ != kNone) return;
    stage_ = kStreaming;
    Post([status, content_type, headers = std::move(headers)](SessionIface& s) mutable {
      s.SendHeader(status, std::move(content_type), std::move(headers));
    });
  }

  bool Write(std::string data) override {
    auto gone = std::make_shared<Callbacks>();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stage_ != kStreaming || state_->closed()) return false;
      if (data.empty()) return true;  // an empty chunk would end the stream
      const int64_t size = static_cast<int64_t>(data.size());
      if (state_->pending_bytes.fetch_add(size) + size <= max_pending_) {
        auto shared = std::make_shared<std::string>(std::move(data));
        if (Post([shared](SessionIface& s) { s.SendChunk(shared); })) return true;
      }
      // Too slow to keep up (or the connection is gone): the OnClose callbacks run on the
      // session's strand, as the contract says, unless there is no session left.
      *gone = state_->MarkClosed();
      if (Post([gone](SessionIface& s) {
            RunAll(std::move(*gone));
            s.Abort();
          })) {
        return false;
      }
    }
    RunAll(std::move(*gone));
    return false;
  }

  void End() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (stage_ != kStreaming) return;
    stage_ = kDone;
    Post([](SessionIface& s) { s.SendLast(); });
  }

  bool closed() const override { return state_->closed(); }

  void OnClose(std::function<void()> fn) override {
    if (!state_->AddOnClose(fn)) fn();
  }

 private:
  enum Stage { kNone, kStreaming, kDone };

  // Runs `op` on the session's strand; false when the session or the server is gone.
  bool Post(std::function<void(SessionIface&)> op) {
    std::lock_guard<std::mutex> lock(gate_->mu);
    if (!gate_->open) return false;
    std::shared_ptr<SessionIface> s = session_.lock();
    if (s == nullptr) return false;
    asio::any_io_executor ex = s->executor();
    asio::post(ex, [s = std::move(s), op = std::move(op)]() mutable { op(*s); });
    return true;
  }

  const std::weak_ptr<SessionIface> session_;
  const std::shared_ptr<Gate> gate_;
  const std::shared_ptr<ResponseState> state_;
  const int64_t max_pending_;
  std::mutex mu_;
  Stage stage_ = kNone;
};

// One connection: reads requests one after another (keep-alive), hands each to the handler,
// writes its answer. Everything runs on the connection's strand. While a request is answered
// the session holds itself (the responder holds it weakly), until the answer ends or the
// connection closes.
template <class Stream>
class Session final : public SessionIface,
                      public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

  Session(Core* core, Stream stream)
      : core_(core), stream_(std::move(stream)), executor_(stream_.get_executor()),
        deadline_(executor_) {
    core_->connections.fetch_add(1);
  }
  ~Session() override {
    EndRequest();
    if (id_ != 0) core_->Forget(id_);
    core_->connections.fetch_sub(1);
  }

  // Registers the session for Stop (on the acceptor's strand, before Stop can look), then
  // runs its first steps on its own strand.
  void Start() {
    id_ = core_->Remember(this->weak_from_this());
    asio::post(executor_, [self = this->shared_from_this()] { self->Begin(); });
  }

  asio::any_io_executor executor() override { return executor_; }

  void SendFull(int status, std::string content_type, std::string body, Headers h) override {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(status), version_);
    Decorate(*res, content_type, h);
    res->body() = std::move(body);
    res->prepare_payload();
    if (head_) res->body().clear();  // the length of what a GET would get, without it
    WriteOp op;
    op.full = std::move(res);
    Enqueue(std::move(op));
  }

  void SendError(int status, const std::string& message) override {
    if (core_->options.on_rejected) core_->options.on_rejected(status);
    auto [content_type, body] = core_->ErrorBody(status, message);
    SendFull(status, content_type, body, {});
  }

  // HTTP/1.1: chunked. HTTP/1.0 knows no chunks: the data goes as it is and the connection's
  // end is the body's.
  void SendHeader(int status, std::string content_type, Headers h) override {
    chunked_ = version_ >= 11;
    if (!chunked_) keep_alive_ = false;
    WriteOp op;
    op.kind = WriteOp::Kind::kHeader;
    op.header = std::make_shared<bhttp::response<bhttp::empty_body>>(
        static_cast<bhttp::status>(status), version_);
    Decorate(*op.header, content_type, h);
    if (chunked_) op.header->chunked(true);
    op.serializer = std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(*op.header);
    Enqueue(std::move(op));
  }

  void SendChunk(std::shared_ptr<std::string> data) override {
    WriteOp op;
    op.kind = WriteOp::Kind::kChunk;
    op.data = std::move(data);
    Enqueue(std::move(op));
  }

  void SendLast() override {
    WriteOp op;
    op.kind = WriteOp::Kind::kLast;
    Enqueue(std::move(op));
  }

  void SendAbort() override {
    WriteOp op;
    op.kind = WriteOp::Kind::kAbort;
    Enqueue(std::move(op));
  }

  void Abort() override { Close(); }

 private:
  enum class Phase { kHandshake, kReading, kIdle, kWriting };

  void Begin() {
    if constexpr (kTls) {
      Arm(core_->options.request_timeout, Phase::kHandshake);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                self->Disarm();
                                if (ec) return self->Close();
                                self->ReadRequest(self->core_->options.request_timeout);
                              });
    } else {
      ReadRequest(core_->options.request_timeout);
    }
  }

  template <class Body>
  void Decorate(bhttp::response<Body>& res, const std::string& content_type, const Headers& h) {
    res.set(bhttp::field::server, "smolserve");
    res.set(bhttp::field::content_type, content_type);
    for (const auto& [name, value] : h) res.set(name, value);
    res.keep_alive(keep_alive_ && !core_->stopping.load());
  }

  // --- deadlines -------------------------------------------------------------------------
  void Arm(absl::Duration d, Phase phase) {
    phase_ = phase;
    const uint64_t gen = ++deadline_gen_;
    deadline_.expires_after(Chrono(d));
    deadline_.async_wait([self = this->shared_from_this(), gen](beast::error_code ec) {
      if (ec || gen != self->deadline_gen_) return;
      self->OnDeadline();
    });
  }

  void Disarm() {
    ++deadline_gen_;
    deadline_.cancel();
  }

  void OnDeadline() {
    if (phase_ == Phase::kReading) {
      timed_out_ = true;  // the read fails with operation_aborted: answered 408
      beast::error_code ec;
      beast::get_lowest_layer(stream_).cancel(ec);
      return;
    }
    Close();  // a handshake, an idle connection, a write: the client is gone or too slow
  }

  // --- reading ---------------------------------------------------------------------------
  void ReadRequest(absl::Duration timeout) {
    if (socket_closed_) return;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(core_->options.max_header_bytes));
    parser_->body_limit(static_cast<uint64_t>(core_->options.max_body_bytes));
    timed_out_ = false;
    Arm(timeout, Phase::kReading);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, size_t) {
                               self->OnHeader(ec);
                             });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return ReadFailed(ec);
    version_ = parser_->get().version();
    const auto length = parser_->content_length();
    if (length && *length > static_cast<uint64_t>(core_->options.max_body_bytes)) {
      return Reject(413, absl::StrCat("the request body of ", *length, " bytes is over the limit of ",
                                      core_->options.max_body_bytes, " bytes"));
    }
    if (version_ >= 11 && !parser_->is_done() &&
        absl::AsciiStrToLower(std::string(parser_->get()[bhttp::field::expect])) == "100-continue") {
      auto res = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                       version_);
      bhttp::async_write(stream_, *res,
                         [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
                           if (ec) return self->Close();
                           self->ReadBody();
                         });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->ReadFailed(ec);
                        self->Disarm();
                        self->Dispatch();
                      });
  }

  void ReadFailed(beast::error_code ec) {
    Disarm();
    if (timed_out_) {
      // Nothing of a request came (a new or kept-alive connection left idle): closed silently.
      if (buffer_.size() == 0 && !parser_->got_some()) return Close();
      return Reject(408, "the request did not arrive in time");
    }
    if (ec == bhttp::error::body_limit) return Reject(413, "the request body is over the limit");
    if (ec == bhttp::error::header_limit) return Reject(431, "the request headers are too large");
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == ssl::error::stream_truncated || socket_closed_ || buffer_.size() == 0) {
      return Close();
    }
    Reject(400, "malformed HTTP request");
  }

  // An answer of the server's own, then the connection is closed.
  void Reject(int status, const std::string& message) {
    if (socket_closed_) return;
    keep_alive_ = false;
    rejected_ = true;
    SendError(status, message);
  }

  void Dispatch() {
    if (core_->stopping.load()) return Reject(503, "the server is shutting down");
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == bhttp::verb::head;
    chunked_ = true;
    HttpRequest r;
    r.method = std::string(req.method_string());
    const std::string target(req.target());
    const size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) r.query = target.substr(q + 1);
    for (const auto& field : req) {
      r.headers[absl::AsciiStrToLower(std::string(field.name_string()))] = std::string(field.value());
    }
    r.body = std::move(req.body());
    beast::error_code ec;
    const auto peer = beast::get_lowest_layer(stream_).remote_endpoint(ec);
    if (!ec) r.remote = peer.address().to_string();
    parser_.reset();
    response_ = std::make_shared<ResponseState>();
    request_open_ = true;
    hold_ = this->shared_from_this();
    core_->in_flight.fetch_add(1);
    auto responder = std::make_shared<ResponderImpl>(this->weak_from_this(), core_->gate, response_,
                                                     core_->options.max_pending_write_bytes);
    StartWatch();
    try {
      core_->handler(std::move(r), std::move(responder));
    } catch (...) {
      // The responder, destroyed unanswered, answers 500.
    }
  }

  // A read stays pending while a request is answered: it returns when the client closes the
  // connection, or when it sends its next request early. That one is kept in buffer_ and read
  // once this answer ends; no read is pending meanwhile (a pending read could not be taken
  // back to read the request), so a client that pipelines is not watched.
  void StartWatch() {
    if (watching_ || socket_closed_ || buffer_.size() > 0) return;
    watching_ = true;
    stream_.async_read_some(buffer_.prepare(1024),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              self->OnWatch(ec, n);
                            });
  }

  void OnWatch(beast::error_code ec, size_t n) {
    watching_ = false;
    if (ec) return Close();  // the client went away: Close tells the responder
    buffer_.commit(n);
    if (awaiting_next_) {
      awaiting_next_ = false;
      Disarm();
      ReadRequest(core_->options.request_timeout);
    }
  }

  // The client is gone before the answer ended: the responder's OnClose callbacks run.
  void ClientGone() {
    if (response_ != nullptr) RunAll(response_->MarkClosed());
  }

  // --- writing ---------------------------------------------------------------------------
  void Enqueue(WriteOp op) {
    if (socket_closed_) return;
    queue_.push_back(std::move(op));
    Pump();
  }

  void Pump() {
    if (writing_ || queue_.empty() || socket_closed_) return;
    WriteOp& op = queue_.front();
    if (op.kind == WriteOp::Kind::kAbort) {
      if (response_ != nullptr) response_->MarkEnded();  // nobody is left to tell
      return Close();
    }
    writing_ = true;
    Arm(core_->options.write_timeout, Phase::kWriting);
    auto done = [self = this->shared_from_this()](beast::error_code ec, size_t) {
      self->OnWrite(ec);
    };
    const bool body = !head_;  // a HEAD request gets the header only
    switch (op.kind) {
      case WriteOp::Kind::kFull: bhttp::async_write(stream_, *op.full, std::move(done)); break;
      case WriteOp::Kind::kHeader:
        bhttp::async_write_header(stream_, *op.serializer, std::move(done));
        break;
      case WriteOp::Kind::kChunk:
        if (body && chunked_) {
          asio::async_write(stream_, bhttp::make_chunk(asio::buffer(*op.data)), std::move(done));
        } else if (body) {
          asio::async_write(stream_, asio::buffer(*op.data), std::move(done));
        } else {
          asio::post(executor_, [done = std::move(done)]() mutable { done({}, 0); });
        }
        break;
      case WriteOp::Kind::kLast:
        if (body && chunked_) {
          asio::async_write(stream_, bhttp::make_chunk_last(), std::move(done));
        } else {
          asio::post(executor_, [done = std::move(done)]() mutable { done({}, 0); });
        }
        break;
      case WriteOp::Kind::kAbort: break;
    }
  }

  void OnWrite(beast::error_code ec) {
    writing_ = false;
    Disarm();
    WriteOp op = std::move(queue_.front());
    queue_.pop_front();
    if (op.data != nullptr && response_ != nullptr) {
      response_->pending_bytes.fetch_sub(static_cast<int64_t>(op.data->size()));
    }
    if (ec) return Close();
    if (!op.terminal()) return Pump();
    if (response_ != nullptr) response_->MarkEnded();
    EndRequest();
    if (rejected_) return LingerClose();
    if (!keep_alive_ || core_->stopping.load()) return Close();
    NextRequest();
  }

  // After an answer on a kept-alive connection. The watch is pending only while nothing came.
  void NextRequest() {
    if (watching_) {
      awaiting_next_ = true;  // OnWatch reads the next request when it comes
      Arm(core_->options.idle_timeout, Phase::kIdle);
      return;
    }
    ReadRequest(buffer_.size() > 0 ? core_->options.request_timeout
                                   : core_->options.idle_timeout);
  }

  // After an answer of our own to a request we did not read whole: stop sending, then read
  // and drop what the client still sends (bounded in bytes and time) so that it sees the
  // answer instead of a connection reset, then close.
  void LingerClose() {
    if (socket_closed_) return;
    beast::error_code ec;
    beast::get_lowest_layer(stream_).shutdown(tcp::socket::shutdown_send, ec);
    Arm(absl::Seconds(2), Phase::kIdle);
    Drain();
  }

  void Drain() {
    if (socket_closed_ || drained_ > (int64_t{4} << 20)) return Close();
    buffer_.consume(buffer_.size());
    beast::get_lowest_layer(stream_).async_read_some(
        buffer_.prepare(16384), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
          if (ec) return self->Close();
          self->drained_ += static_cast<int64_t>(n);
          self->Drain();
        });
  }

  // The request is answered (or the connection closed). The caller holds the session.
  void EndRequest() {
    if (!request_open_) return;
    request_open_ = false;
    core_->in_flight.fetch_sub(1);
    hold_.reset();
  }

  void Close() {
    if (socket_closed_) return;
    socket_closed_ = true;
    Disarm();
    ClientGone();
    EndRequest();
    beast::error_code ec;
    beast::get_lowest_layer(stream_).shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(stream_).close(ec);
  }

  Core* core_;
  Stream stream_;
  const asio::any_io_executor executor_;
  asio::steady_timer deadline_;
  uint64_t id_ = 0;
  uint64_t deadline_gen_ = 0;
  Phase phase_ = Phase::kReading;
  bool timed_out_ = false;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool chunked_ = true;
  bool watching_ = false;
  bool awaiting_next_ = false;
  bool request_open_ = false;
  bool socket_closed_ = false;
  bool writing_ = false;
  bool rejected_ = false;
  int64_t drained_ = 0;
  std::shared_ptr<ResponseState> response_;
  std::shared_ptr<Session> hold_;  // while a request is open
  std::deque<WriteOp> queue_;
};

void Accept(Core* core) {
  core->acceptor.async_accept(asio::make_strand(core->ioc), [core](beast::error_code ec,
                                                                   tcp::socket socket) {
    if (core->stopping.load()) return;
    if (ec) {
      // e.g. out of file descriptors: try again shortly instead of spinning.
      core->accept_retry.expires_after(std::chrono::milliseconds(50));
      core->accept_retry.async_wait([core](beast::error_code) { Accept(core); });
      return;
    }
    if (core->connections.load() >= core->options.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else if (core->tls != nullptr) {
      std::make_shared<Session<ssl::stream<tcp::socket>>>(
          core, ssl::stream<tcp::socket>(std::move(socket), *core->tls))->Start();
    } else {
      std::make_shared<Session<tcp::socket>>(core, std::move(socket))->Start();
    }
    Accept(core);
  });
}

absl::StatusOr<std::unique_ptr<ssl::context>> MakeTls(const HttpServerOptions& o) {
  if (o.tls_cert.empty() && o.tls_key.empty()) {
    if (!o.tls_client_ca.empty()) {
      return absl::InvalidArgumentError("a TLS client CA needs a certificate and key");
    }
    return std::unique_ptr<ssl::context>();
  }
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  beast::error_code ec;
  ctx->use_certificate_chain_file(o.tls_cert, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("TLS certificate '", o.tls_cert, "': ", ec.message()));
  ctx->use_private_key_file(o.tls_key, ssl::context::pem, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("TLS key '", o.tls_key, "': ", ec.message()));
  if (!o.tls_client_ca.empty()) {
    ctx->load_verify_file(o.tls_client_ca, ec);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat("TLS client CA '", o.tls_client_ca, "': ", ec.message()));
    }
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<Core> core) : core_(std::move(core)) {}

HttpServer::~HttpServer() { Stop(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              Handler handler) {
  auto core = std::make_unique<Core>();
  core->options = options;
  core->handler = std::move(handler);
  auto tls = MakeTls(options);
  if (!tls.ok()) return tls.status();
  core->tls = *std::move(tls);
  beast::error_code ec;
  const auto address = asio::ip::make_address(options.host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("bad HTTP host '", options.host, "'"));
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(options.port));
  core->acceptor.open(endpoint.protocol(), ec);
  if (!ec) core->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) core->acceptor.bind(endpoint, ec);
  if (!ec) core->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("HTTP: cannot listen on ", options.host, ":",
                                               options.port, ": ", ec.message()));
  }
  core->port = core->acceptor.local_endpoint().port();
  Accept(core.get());
  const int threads = std::max(1, options.io_threads);
  for (int i = 0; i < threads; ++i) {
    core->threads.emplace_back([c = core.get()] { c->ioc.run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(core)));
}

int HttpServer::port() const { return core_->port; }
int64_t HttpServer::connections() const { return core_->connections.load(); }
int64_t HttpServer::requests_in_flight() const { return core_->in_flight.load(); }

void HttpServer::Stop(absl::Duration grace) {
  {
    std::lock_guard<std::mutex> lock(core_->stop_mu);
    if (core_->stopped) return;
    core_->stopped = true;
  }
  Core* c = core_.get();
  c->stopping.store(true);  // from now on requests are answered 503 and connections close
  c->CloseAcceptor();
  const absl::Time end = absl::Now() + grace;
  while (c->in_flight.load() > 0 && absl::Now() < end) absl::SleepFor(absl::Milliseconds(5));
  {
    std::lock_guard<std::mutex> lock(c->gate->mu);
    c->gate->open = false;
  }
  // Closes every connection (the OnClose callbacks of what is still answered run); the
  // sessions then end and the I/O threads run out of work.
  for (std::shared_ptr<SessionIface>& s : c->LiveSessions()) {
    asio::any_io_executor ex = s->executor();
    asio::post(ex, [s = std::move(s)] { s->Abort(); });
  }
  const absl::Time drained = absl::Now() + absl::Seconds(1);
  while (c->connections.load() > 0 && absl::Now() < drained) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  c->ioc.stop();
  for (auto& t : c->threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace smolserve::http
