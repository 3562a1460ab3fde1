#include "server/server.h"

#include <httplib.h>

#include <cstdio>

#include "server/http_util.h"

namespace flashneox {

Server::Server(Engine& engine, ServerOptions options)
    : engine_(engine), options_(std::move(options)), http_(std::make_unique<httplib::Server>()) {
  const int threads = options_.http_threads > 0 ? options_.http_threads
                                                : engine_.options().max_concurrent_requests + 16;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_payload_max_length(options_.max_body_bytes);
  http_->set_keep_alive_max_count(1000);
  try {
    chat_template_ = load_chat_template(engine_.model().directory());
  } catch (const Error& e) {
    std::fprintf(stderr, "flashneox: warning: %s; chat requests use the default template\n", e.what());
  }
  install_routes();
}

Server::~Server() { stop(); }

void Server::install_routes() {
  // Authentication first: every route but /health needs the bearer key.
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + options_.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    reply_error(res, ApiError(401, "unauthorized", "missing or wrong API key (Authorization: Bearer ...)"));
    return httplib::Server::HandlerResponse::Handled;
  });
  http_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;  // a route already explained itself
    if (res.status == 413) {
      reply_error(res, ApiError(413, "validation", "request body too large"));
    } else if (res.status == 404) {
      reply_error(res, ApiError(404, "not_found", "no such route"));
    } else if (res.status == 405) {
      reply_error(res, ApiError(405, "method_not_allowed", "method not allowed on this route"));
    }
  });
  http_->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      reply_error(res, ApiError(500, "internal", e.what()));
    } catch (...) {
      reply_error(res, ApiError(500, "internal", "unknown error"));
    }
  });
  install_generate_routes(*http_, *this);
  install_openai_routes(*http_, *this);
  install_service_routes(*http_, *this);
  install_playground_route(*http_);
}

int Server::bind() {
  if (options_.port == 0) {
    const int port = http_->bind_to_any_port(options_.host.c_str());
    if (port < 0) throw Error(concat("cannot listen on ", options_.host));
    options_.port = port;
    return port;
  }
  if (!http_->bind_to_port(options_.host.c_str(), options_.port))
    throw Error(concat("cannot listen on ", options_.host, ":", options_.port,
                       " (in use, or the address is not local)"));
  return options_.port;
}

void Server::serve() {
  engine_.start();
  http_->listen_after_bind();
}

void Server::stop() {
  if (http_) http_->stop();
  engine_.stop();
}

}  // namespace flashneox
