#include "server/http/http_server.h"

#include <sys/resource.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <optional>
#include <thread>

#include "core/error.h"
#include "core/allocator.h"

namespace flashneox {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

// A JSON error body in the shape every route uses ({"error", "error_type"}).
std::string error_body(const std::string& message, const std::string& type) {
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return "{\"error\":\"" + escaped + "\",\"error_type\":\"" + type + "\"}";
}

// Runs handlers: a fixed set of threads over a queue.
class HandlerPool {
 public:
  void start(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and nothing left
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
      release_thread_memory();
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace

struct HttpServer::Impl {
  std::atomic<int> open{0};
  std::atomic<int> in_flight{0};
  std::atomic<bool> shutting_down{false};
  std::atomic<bool> stopped{false};
  const Router& router;
  HttpLimits limits;
  AccessLog log;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor{net::make_strand(ioc)};
  std::vector<std::thread> io_threads;
  HandlerPool handlers;

  Impl(const Router& r, HttpLimits l, AccessLogFormat f) : router(r), limits(l), log(f) {}
  void accept();
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server) {
    beast::error_code ec;
    const auto endpoint = stream_.socket().remote_endpoint(ec);
    client_ = ec ? "?" : endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    ++server_.open;
  }
  ~Session() { --server_.open; }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
  }

 private:
  // ---- reading a request (on the strand) ----
  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.limits.max_header_bytes));
    parser_->body_limit(server_.limits.max_body_bytes);
    stream_.expires_after(ms(first_ ? server_.limits.header_timeout_s : server_.limits.keep_alive_timeout_s));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec == http::error::header_limit) return reply_and_close(431, "request headers are too large", "validation");
    if (ec == http::error::body_limit)  // a Content-Length over the limit is known with the headers
      return reply_and_close(413, concat("request body too large (limit ", server_.limits.max_body_bytes, " bytes)"),
                             "validation");
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof)
      return close();
    if (ec) return reply_and_close(400, concat("malformed HTTP request: ", ec.message()), "validation");
    auto& req = parser_->get();
    if (std::distance(req.begin(), req.end()) > server_.limits.max_header_count)
      return reply_and_close(431, concat("more than ", server_.limits.max_header_count, " request headers"),
                             "validation");
    arrived_ = Clock::now();
    arrived_wall_ = std::chrono::system_clock::now();
    method_ = std::string(req.method_string());
    const std::string target(req.target());
    const size_t q = target.find('?');
    path_ = target.substr(0, q);
    query_ = q == std::string::npos ? "" : target.substr(q + 1);
    if (server_.shutting_down) return reply_and_close(503, "the server is shutting down", "unavailable");
    std::string allow;
    switch (server_.router.find(method_, path_, &handler_, &allow)) {
      case Router::Match::NoPath:
        return reply_simple(404, error_body("no such route", "not_found"), {});
      case Router::Match::WrongMethod:
        return reply_simple(405, error_body(concat(method_, " is not allowed on ", path_, " (allowed: ", allow, ")"),
                                            "method_not_allowed"),
                            allow);
      case Router::Match::Found:
        break;
    }
    if (req.has_content_length() && parser_->content_length() &&
        *parser_->content_length() > server_.limits.max_body_bytes)
      return reply_and_close(413, concat("request body too large (limit ", server_.limits.max_body_bytes, " bytes)"),
                             "validation");
    body_deadline_ = Clock::now() + 12 * ms(server_.limits.body_read_timeout_s);
    if (beast::iequals(req[http::field::expect], "100-continue") && !parser_->is_done()) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(ms(server_.limits.write_timeout_s));
      return net::async_write(stream_, net::buffer(kContinue),
                              [self = shared_from_this()](beast::error_code e, size_t) {
                                if (e) return self->close();
                                self->read_body();
                              });
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return dispatch_request();
    if (Clock::now() > body_deadline_) return close();
    stream_.expires_after(ms(server_.limits.body_read_timeout_s));
    http::async_read_some(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec == http::error::body_limit)
        return self->reply_and_close(
            413, concat("request body too large (limit ", self->server_.limits.max_body_bytes, " bytes)"), "validation");
      if (ec) return self->close();
      self->read_body();
    });
  }

  // ---- handing the request to a handler thread ----
  void dispatch_request() {
    stream_.expires_never();
    auto req = std::make_shared<HttpRequest>();
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    req->method = method_;
    req->path = path_;
    req->query = query_;
    for (const auto& field : msg) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req->headers.emplace_back(std::move(name), std::string(field.value()));
    }
    req->body = std::move(msg.body());
    req->client = client_;
    gone_ = std::make_shared<std::atomic<bool>>(false);
    req->gone = gone_;
    parser_.reset();
    response_done_ = false;
    ++server_.in_flight;
    watch();
    const HttpHandler* handler = handler_;
    server_.handlers.post([self = shared_from_this(), req, handler] { self->handle(*req, *handler); });
  }

  // While a handler runs, a read stays posted so that a client that closes
  // its connection is noticed at once (it cancels its request). Bytes of a
  // pipelined next request are kept in the buffer for the next parse.
  void watch() {
    watching_ = true;
    stream_.socket().async_read_some(
        buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->watching_ = false;
          if (!ec) {
            self->buffer_.commit(n);
            if (!self->response_done_ && self->buffer_.size() < (64u << 10)) return self->watch();
          } else if (ec != net::error::operation_aborted) {
            self->peer_closed_ = true;
            self->gone_->store(true);
          }
          if (self->response_done_) self->next_request();
        });
  }

  // ---- on a handler thread ----
  void handle(const HttpRequest& req, const HttpHandler& handler) {
    HttpResponse res;
    try {
      handler(req, res);
    } catch (const std::exception& e) {
      res = HttpResponse();
      res.status = 500;
      res.body = error_body(e.what(), "internal");
    }
    if (!res.stream) {
      write_whole(res);
    } else {
      stream_response(res);
    }
  }

  template <class Message>
  void add_headers(Message& msg, const HttpResponse& res) {
    msg.set(http::field::content_type, res.content_type);
    for (const auto& [name, value] : res.headers) msg.set(name, value);
    msg.keep_alive(keep_alive_ && !server_.shutting_down);
  }

  // Written from the handler thread, which waits for the write: the body is
  // freed by the thread that built it (a thread-caching allocator keeps
  // memory freed by other threads until the owner runs again).
  void write_whole(HttpResponse& res) {
    http::response<http::string_body> msg(static_cast<http::status>(res.status), 11);
    add_headers(msg, res);
    msg.body() = std::move(res.body);  // no copy of a large body
    msg.prepare_payload();
    const bool written = on_strand([this, &msg](std::function<void(beast::error_code)> done) {
      stream_.expires_after(ms(server_.limits.write_timeout_s));
      http::async_write(stream_, msg, [done](beast::error_code ec, size_t) { done(ec); });
    });
    const int status = res.status;
    const AccessInfo info = res.access;
    net::post(stream_.get_executor(), [self = shared_from_this(), status, info, written] {
      self->finish_response(status, info, written);
    });
  }

  // Posts `op(done)` to the strand and waits for done(ec): a handler thread
  // writes through the connection's strand, never beside it.
  bool on_strand(const std::function<void(std::function<void(beast::error_code)>)>& op) {
    auto promise = std::make_shared<std::promise<beast::error_code>>();
    auto future = promise->get_future();
    net::post(stream_.get_executor(), [self = shared_from_this(), op, promise] {
      op([promise](beast::error_code ec) { promise->set_value(ec); });
    });
    // The stream's write deadline ends every write in time; only a stopped
    // server (whose I/O threads run nothing more) leaves an operation pending.
    while (future.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready)
      if (server_.stopped) return false;
    try {
      return !future.get();
    } catch (const std::future_error&) {  // the server stopped: the operation never ran
      return false;
    }
  }

  class Sink : public StreamSink {
   public:
    explicit Sink(Session& s) : s_(s) {}
    bool write(std::string_view data) override {
      if (failed_ || s_.gone_->load()) return false;
      auto chunk = std::make_shared<std::string>(data);
      failed_ = !s_.on_strand([this, chunk](std::function<void(beast::error_code)> done) {
        s_.stream_.expires_after(ms(s_.server_.limits.write_timeout_s));
        net::async_write(s_.stream_, http::make_chunk(net::buffer(*chunk)),
                         [chunk, done](beast::error_code ec, size_t) { done(ec); });
      });
      if (failed_) s_.gone_->store(true);
      return !failed_;
    }
    bool client_gone() const override { return failed_ || s_.gone_->load(); }
    bool failed_ = false;

   private:
    Session& s_;
  };

  void stream_response(HttpResponse& res) {
    auto header = std::make_shared<http::response<http::empty_body>>(static_cast<http::status>(res.status), 11);
    add_headers(*header, res);
    header->chunked(true);
    auto serializer = std::make_shared<http::response_serializer<http::empty_body>>(*header);
    Sink sink(*this);
    sink.failed_ = !on_strand([this, header, serializer](std::function<void(beast::error_code)> done) {
      stream_.expires_after(ms(server_.limits.write_timeout_s));
      http::async_write_header(stream_, *serializer,
                               [header, serializer, done](beast::error_code ec, size_t) { done(ec); });
    });
    if (!sink.failed_) {
      try {
        res.stream(sink);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "flashneox: stream failed: %s\n", e.what());
        sink.failed_ = true;
      }
    }
    bool ok = !sink.failed_;
    if (ok)
      ok = on_strand([this](std::function<void(beast::error_code)> done) {
        stream_.expires_after(ms(server_.limits.write_timeout_s));
        net::async_write(stream_, http::make_chunk_last(), [done](beast::error_code ec, size_t) { done(ec); });
      });
    const int status = ok ? res.status : 499;
    const AccessInfo info = res.access;
    net::post(stream_.get_executor(), [self = shared_from_this(), status, info, ok] {
      self->finish_response(status, info, ok);
    });
  }

  // ---- after the response (on the strand) ----
  void finish_response(int status, const AccessInfo& info, bool written) {
    AccessRecord record;
    record.time = arrived_wall_;
    record.client = client_;
    record.method = method_;
    record.path = path_;
    record.status = status;
    record.info = info;
    record.total_seconds = std::chrono::duration<double>(Clock::now() - arrived_).count();
    server_.log.write(record);
    --server_.in_flight;
    if (!written) keep_alive_ = false;
    response_done_ = true;
    if (watching_) {
      beast::error_code ignored;
      stream_.socket().cancel(ignored);  // the watch's handler moves on
    } else {
      next_request();
    }
  }

  void next_request() {
    response_done_ = false;
    if (!keep_alive_ || peer_closed_ || server_.shutting_down) return close();
    first_ = false;
    read_header();
  }

  // Small replies written from the strand itself (errors before a handler).
  void reply_simple(int status, std::string body, const std::string& allow, bool close_after = false) {
    auto msg = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    msg->set(http::field::content_type, "application/json");
    if (!allow.empty()) msg->set(http::field::allow, allow);
    // A body we did not read cannot be skipped safely: close after answering.
    const bool keep = !close_after && keep_alive_after_error();
    msg->keep_alive(keep);
    msg->body() = std::move(body);
    msg->prepare_payload();
    AccessRecord record;
    record.time = std::chrono::system_clock::now();
    record.client = client_;
    record.method = method_.empty() ? "-" : method_;
    record.path = path_.empty() ? "-" : path_;
    record.status = status;
    server_.log.write(record);
    stream_.expires_after(ms(server_.limits.write_timeout_s));
    http::async_write(stream_, *msg, [self = shared_from_this(), msg, keep](beast::error_code ec, size_t) {
      if (ec || !keep) return self->close();
      self->first_ = false;
      self->read_header();
    });
  }
  void reply_and_close(int status, const std::string& message, const std::string& type) {
    reply_simple(status, error_body(message, type), {}, /*close_after=*/true);
  }
  bool keep_alive_after_error() const {
    return parser_ && parser_->is_header_done() && parser_->is_done() && parser_->get().keep_alive() &&
           !server_.shutting_down;
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  HttpServer::Impl& server_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string client_, method_, path_, query_;
  const HttpHandler* handler_ = nullptr;
  Clock::time_point arrived_, body_deadline_;
  std::chrono::system_clock::time_point arrived_wall_;
  std::shared_ptr<std::atomic<bool>> gone_;
  bool first_ = true;
  bool keep_alive_ = false;
  bool watching_ = false;
  bool response_done_ = false;
  bool peer_closed_ = false;
};

// Over the connection limit: a 503 written at once, then closed.
void refuse_connection(tcp::socket socket) {
  static const std::string kBusy = [] {
    const std::string body = error_body("too many open connections; try again later", "overloaded");
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
           "Retry-After: 1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  auto s = std::make_shared<tcp::socket>(std::move(socket));
  net::async_write(*s, net::buffer(kBusy), [s](beast::error_code, size_t) {
    beast::error_code ignored;
    s->shutdown(tcp::socket::shutdown_both, ignored);
    s->close(ignored);
  });
}

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      if (open.load() >= limits.max_connections) {
        refuse_connection(std::move(socket));
      } else {
        std::make_shared<Session>(std::move(socket), *this)->start();
      }
    } else if (ec == net::error::no_descriptors) {
      std::fprintf(stderr, "flashneox: out of file descriptors; refusing connections for a moment\n");
    }
    accept();
  });
}

HttpServer::HttpServer(const Router& router, HttpLimits limits, AccessLogFormat log_format)
    : impl_(std::make_unique<Impl>(router, limits, log_format)) {}

HttpServer::~HttpServer() { stop(); }

int HttpServer::listen(const std::string& host, int port) {
  // Every connection is a descriptor: make room for the connection limit.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 &&
      files.rlim_cur < static_cast<rlim_t>(impl_->limits.max_connections) + 64) {
    impl_->limits.max_connections = std::max<int>(16, static_cast<int>(files.rlim_cur) - 64);
    std::fprintf(stderr, "flashneox: warning: the open-file limit allows only %d connections\n",
                 impl_->limits.max_connections);
  }
  beast::error_code ec;
  const auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) throw Error(concat("--host '", host, "' is not an IP address"));
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  auto& a = impl_->acceptor;
  a.open(endpoint.protocol(), ec);
  // SO_REUSEADDR only lets a restart bind past old TIME_WAIT sockets; unlike
  // SO_REUSEPORT it never lets two live servers share the port.
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    a.close(ignored);
    throw Error(concat("cannot listen on ", host, ":", port, ": ", ec.message()));
  }
  return a.local_endpoint().port();
}

void HttpServer::start() {
  Impl& s = *impl_;
  s.work.emplace(net::make_work_guard(s.ioc));
  s.handlers.start(std::max(1, s.limits.handler_threads));
  net::post(s.acceptor.get_executor(), [&s] { s.accept(); });
  for (int i = 0; i < std::max(1, s.limits.io_threads); ++i) s.io_threads.emplace_back([&s] { s.ioc.run(); });
}

void HttpServer::stop_accepting() {
  Impl& s = *impl_;
  s.shutting_down = true;
  std::promise<void> closed;
  net::post(s.acceptor.get_executor(), [&s, &closed] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    closed.set_value();
  });
  if (!s.io_threads.empty()) closed.get_future().wait_for(std::chrono::seconds(2));
}

int HttpServer::in_flight() const { return impl_->in_flight.load(); }
int HttpServer::open_connections() const { return impl_->open.load(); }

void HttpServer::stop() {
  Impl& s = *impl_;
  if (s.io_threads.empty()) return;
  s.shutting_down = true;
  s.stopped = true;
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.io_threads) t.join();
  s.io_threads.clear();
  s.handlers.stop();
}

}  // namespace flashneox
