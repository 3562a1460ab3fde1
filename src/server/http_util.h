#pragma once
// Helpers the route files share: JSON replies, error replies, and driving a
// request's events into a response (all at once, or as server-sent events),
// cancelling the request when its client goes away.
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/http/http_message.h"

namespace flashneox {

// JSON text; invalid UTF-8 in strings is replaced, never a throw.
std::string dump(const nlohmann::json& j);
void reply_json(HttpResponse& res, const nlohmann::json& body, int status = 200);
void reply_error(HttpResponse& res, const ApiError& error);
// Runs `handler`, turning any exception into the right error reply.
void guarded(HttpResponse& res, const std::function<void()>& handler);
// Submits to the engine, mapping refusals to 422 / 429 / 503.
std::shared_ptr<RequestHandle> submit_or_throw(Engine& engine, GenerationRequest request);

// Waits for every event of a request; the tokens in order and the final event.
// A failed request throws its ApiError; a client that disconnects cancels the
// request (within a step) and gets ApiError 499, which nobody reads but the log.
struct Collected {
  std::vector<GeneratedToken> tokens;
  RequestEvent final_event;
};
Collected collect(RequestHandle& handle, const HttpRequest& req);

// Streams a request as server-sent events. `on_event` turns each event into
// the `data:` payloads to send (none, one or more); `finale` is sent after the
// final event (e.g. "[DONE]"). A client that disconnects cancels the request.
using EventFormatter = std::function<std::vector<std::string>(const RequestEvent&)>;
void stream_events(HttpResponse& res, std::shared_ptr<RequestHandle> handle, EventFormatter on_event,
                   std::string finale = "");

// The access log's token and queue figures from a request's final event.
void record_access(HttpResponse& res, const RequestEvent& final_event);

double seconds_between(Clock::time_point a, Clock::time_point b);

}  // namespace flashneox
