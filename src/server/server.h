// The HTTP server: TGI/LoRAX generate routes, OpenAI-compatible routes,
// service routes (/health, /info, /metrics, /tokenize) and a playground page,
// over one engine that runs in its own thread.
#pragma once

#include <memory>
#include <string>

#include "engine/engine.h"
#include "server/chat_template.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace flashneox {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;            // empty: no authentication
  size_t max_body_bytes = 1 << 20;  // larger bodies get 413
  std::string model_id;           // reported by /info and /v1/models
  int http_threads = 0;           // 0: max_concurrent_requests + 16
};

class Server {
 public:
  Server(Engine& engine, ServerOptions options);
  ~Server();

  // Binds; returns the port (useful with port 0). Throws Error when it cannot.
  int bind();
  void serve();  // blocks until stop()
  void stop();

  Engine& engine() { return engine_; }
  // The model's tokenizer_config.json chat template, if it has one we can run.
  const ModelChatTemplate& chat_template() const { return chat_template_; }
  const ServerOptions& options() const { return options_; }

 private:
  void install_routes();

  Engine& engine_;
  ServerOptions options_;
  std::unique_ptr<httplib::Server> http_;
  ModelChatTemplate chat_template_;
};

// Route groups, each in its own file.
void install_generate_routes(httplib::Server& http, Server& server);
void install_openai_routes(httplib::Server& http, Server& server);
void install_service_routes(httplib::Server& http, Server& server);
void install_playground_route(httplib::Server& http);

}  // namespace flashneox
