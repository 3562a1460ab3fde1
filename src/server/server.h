// The HTTP server: TGI/LoRAX generate routes, OpenAI-compatible routes,
// service routes (/health, /info, /metrics, /tokenize) and a playground page,
// over one engine that runs in its own thread.
#pragma once

#include <memory>
#include <string>

#include "engine/engine.h"
#include "lora/adapter_store.h"
#include "server/chat_template.h"
#include "server/http/http_server.h"
#include "server/http/router.h"

namespace flashneox {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;              // empty: no authentication
  std::string model_id;             // reported by /info and /v1/models
  HttpLimits http;                  // 0 handler threads: max_concurrent_requests + 16
  AccessLogFormat access_log = AccessLogFormat::Text;
  AdapterStoreOptions adapters;     // where per-request LoRA adapters come from
  std::vector<std::pair<std::string, std::string>> preload_adapters;  // (name, dir), --adapter NAME=DIR
};

class Server {
 public:
  Server(Engine& engine, ServerOptions options);
  ~Server();

  // Binds; returns the port (useful with port 0). Throws Error when it cannot.
  int bind();
  void start();  // the engine loop and the HTTP threads; returns at once
  // Graceful stop: no new connections or requests; running requests get up to
  // `timeout_s` to finish, then end (streams with an error event, others with
  // a 503); the engine stops last.
  void shutdown(double timeout_s);

  Engine& engine() { return engine_; }
  // The model's tokenizer_config.json chat template, if it has one we can run.
  const ModelChatTemplate& chat_template() const { return chat_template_; }
  const ServerOptions& options() const { return options_; }
  const Router& router() const { return router_; }
  AdapterStore& adapters() { return *adapters_; }
  // The adapter a request names (empty id: none), as an ApiError when it cannot be had.
  std::shared_ptr<const LoraAdapter> adapter_for(const std::string& id, const std::string& source);
  std::shared_ptr<const LoraAdapter> merged_adapter_for(const MergeSpec& spec, const std::string& source);

 private:
  void install_routes();

  Engine& engine_;
  ServerOptions options_;
  Router router_;
  std::unique_ptr<AdapterStore> adapters_;
  std::unique_ptr<HttpServer> http_;
  ModelChatTemplate chat_template_;
};

// Route groups, each in its own file.
void install_generate_routes(Router& router, Server& server);
void install_openai_routes(Router& router, Server& server);
void install_service_routes(Router& router, Server& server);
void install_playground_route(Router& router);

// Compares in time that depends only on the lengths (for secrets).
bool constant_time_equals(const std::string& a, const std::string& b);

}  // namespace flashneox
