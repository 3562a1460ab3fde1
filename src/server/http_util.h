#pragma once
// Helpers the route files share: JSON replies, error replies, and driving a
// request's events into a response (all at once, or as server-sent events
// that notice a client that went away).
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/engine.h"
#include "server/api_error.h"

namespace httplib {
class Response;
}

namespace flashneox {

void reply_json(httplib::Response& res, const nlohmann::json& body, int status = 200);
void reply_error(httplib::Response& res, const ApiError& error);
// Runs `handler`, turning any exception into the right error reply.
void guarded(httplib::Response& res, const std::function<void()>& handler);
// Submits to the engine, mapping refusals to 422 / 429.
std::shared_ptr<RequestHandle> submit_or_throw(Engine& engine, GenerationRequest request);

// Waits for every event of a request; the tokens in order and the final event.
struct Collected {
  std::vector<GeneratedToken> tokens;
  RequestEvent final_event;
};
Collected collect(RequestHandle& handle);

// Streams a request as server-sent events. `on_event` turns each event into
// the `data:` payloads to send (none, one or more); `finale` is sent after the
// final event (e.g. "[DONE]"). A client that disconnects cancels the request.
using EventFormatter = std::function<std::vector<std::string>(const RequestEvent&)>;
void stream_events(httplib::Response& res, std::shared_ptr<RequestHandle> handle,
                   EventFormatter on_event, std::string finale = "");

double seconds_between(Clock::time_point a, Clock::time_point b);

}  // namespace flashneox
