#include "server/server.h"

#include <chrono>
#include <cstdio>
#include <thread>

#include "server/api_error.h"
#include "server/http_util.h"

namespace flashneox {

bool constant_time_equals(const std::string& a, const std::string& b) {
  // Every byte of the longer string is read whatever matches, so the time
  // says nothing about how much of a guess was right.
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() != b.size() ? 1u : 0u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

Server::Server(Engine& engine, ServerOptions options) : engine_(engine), options_(std::move(options)) {
  options_.adapters.weight_dtype = lora_dtype_for(engine_.model().weights().dtype);
  adapters_ = std::make_unique<AdapterStore>(engine_.model().config(), options_.adapters);
  for (const auto& [name, dir] : options_.preload_adapters) adapters_->preload(name, dir);
  if (options_.http.handler_threads <= 0)
    options_.http.handler_threads = engine_.options().max_concurrent_requests + 16;
  try {
    chat_template_ = load_chat_template(engine_.model().directory());
  } catch (const Error& e) {
    std::fprintf(stderr, "flashneox: warning: %s; chat requests use the default template\n", e.what());
  }
  install_routes();
  http_ = std::make_unique<HttpServer>(router_, options_.http, options_.access_log);
}

Server::~Server() {
  if (http_) http_->stop();
  engine_.stop();
}

void Server::install_routes() {
  install_generate_routes(router_, *this);
  install_openai_routes(router_, *this);
  install_service_routes(router_, *this);
  install_playground_route(router_);
  // Authentication: every route but /health needs the bearer key.
  if (options_.api_key.empty()) return;
  router_.wrap([this](const std::string& path, HttpHandler inner) -> HttpHandler {
    if (path == "/health") return inner;
    return [this, inner](const HttpRequest& req, HttpResponse& res) {
      if (constant_time_equals(req.header("authorization"), "Bearer " + options_.api_key)) return inner(req, res);
      reply_error(res, ApiError(401, "unauthorized", "missing or wrong API key (Authorization: Bearer ...)"));
    };
  });
}

std::shared_ptr<const LoraAdapter> Server::adapter_for(const std::string& id, const std::string& source) {
  if (id.empty()) return nullptr;
  try {
    return adapters_->get(id, source);
  } catch (const AdapterError& e) {
    throw ApiError(e.status(), "validation", e.what());
  }
}

std::shared_ptr<const LoraAdapter> Server::merged_adapter_for(const MergeSpec& spec, const std::string& source) {
  try {
    return adapters_->get_merged(spec, source);
  } catch (const AdapterError& e) {
    throw ApiError(e.status(), "validation", e.what());
  }
}

int Server::bind() {
  options_.port = http_->listen(options_.host, options_.port);
  return options_.port;
}

void Server::start() {
  engine_.start();
  http_->start();
}

void Server::shutdown(double timeout_s) {
  using namespace std::chrono;
  http_->stop_accepting();
  const auto deadline = steady_clock::now() + milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (http_->in_flight() > 0 && steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
  if (http_->in_flight() > 0)
    std::fprintf(stderr, "flashneox: ending %d request(s) still running after %.0f s\n", http_->in_flight(), timeout_s);
  engine_.abort_all("the server is shutting down");
  // The handlers now see their final events; give them a moment to write them.
  const auto grace = steady_clock::now() + seconds(5);
  while (http_->in_flight() > 0 && steady_clock::now() < grace) std::this_thread::sleep_for(milliseconds(10));
  http_->stop();
  engine_.stop();
}

}  // namespace flashneox
