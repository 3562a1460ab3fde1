// What a route sees of an HTTP exchange: a fully read request, and a response
// that is either a body or a stream written from the handler's own thread.
// Nothing here depends on the transport (src/server/http/http_server.cc).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flashneox {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query
  std::string query;   // after '?', undecoded
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string client;  // "address:port"
  // Set by the transport when the client closes its side before the response
  // is complete: long-running handlers poll it to cancel their work.
  std::shared_ptr<const std::atomic<bool>> gone;

  // The first header of that (lower-case) name, or "".
  std::string header(std::string_view name) const;
  bool client_gone() const { return gone && gone->load(); }
};

// Where a streamed response's bytes go. write() blocks until the bytes are
// handed to the socket (or the write deadline passes); false once the client
// is gone, after which the handler should stop.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual bool write(std::string_view data) = 0;
  virtual bool client_gone() const = 0;
};

// What the access log reports beside method, route, status and times.
struct AccessInfo {
  int prompt_tokens = -1;      // -1: not a generation request
  int generated_tokens = -1;
  double queue_seconds = -1.0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, the status line and headers go out first (chunked), then this
  // runs on the handler's thread and writes the body through the sink.
  std::function<void(StreamSink&)> stream;
  AccessInfo access;

  void set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

}  // namespace flashneox
