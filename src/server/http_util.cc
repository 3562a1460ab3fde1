#include "server/http_util.h"

namespace flashneox {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void reply_json(HttpResponse& res, const json& body, int status) {
  res.status = status;
  res.content_type = "application/json";
  res.body = dump(body);
}

void reply_error(HttpResponse& res, const ApiError& error) {
  reply_json(res, {{"error", error.what()}, {"error_type", error.type()}}, error.status());
}

void guarded(HttpResponse& res, const std::function<void()>& handler) {
  try {
    handler();
  } catch (const ApiError& e) {
    reply_error(res, e);
  } catch (const json::exception& e) {
    reply_error(res, validation_error(e.what()));
  } catch (const std::exception& e) {
    reply_error(res, ApiError(500, "internal", e.what()));
  }
}

std::shared_ptr<RequestHandle> submit_or_throw(Engine& engine, GenerationRequest request) {
  try {
    return engine.submit(std::move(request));
  } catch (const ShuttingDownError& e) {
    throw ApiError(503, "unavailable", e.what());
  } catch (const OverloadedError& e) {
    throw ApiError(429, "overloaded", e.what());
  } catch (const Error& e) {
    throw validation_error(e.what());
  }
}

void record_access(HttpResponse& res, const RequestEvent& f) {
  res.access.prompt_tokens = f.prompt_tokens;
  res.access.generated_tokens = f.generated_tokens;
  res.access.queue_seconds = seconds_between(f.queued_at, f.started_at);
}

Collected collect(RequestHandle& handle, const HttpRequest& req) {
  Collected out;
  RequestEvent e;
  bool cancelled = false;
  for (;;) {
    if (!cancelled && req.client_gone()) {
      handle.cancel();  // the engine ends it at its next step and frees its blocks
      cancelled = true;
    }
    if (!handle.next(e, std::chrono::milliseconds(50))) continue;
    if (e.kind == RequestEvent::Kind::Token) {
      out.tokens.push_back(std::move(e.token));
      continue;
    }
    if (e.kind == RequestEvent::Kind::Failed) throw ApiError(e.error_status, e.error_type, e.error);
    if (e.finish_reason == FinishReason::Cancelled)
      throw ApiError(499, "cancelled", "the client closed the connection");
    out.final_event = std::move(e);
    return out;
  }
}

void stream_events(HttpResponse& res, std::shared_ptr<RequestHandle> handle, EventFormatter on_event,
                   std::string finale) {
  res.content_type = "text/event-stream";
  res.set_header("Cache-Control", "no-cache");
  HttpResponse* response = &res;  // alive while the stream runs: the transport owns it
  res.stream = [handle, on_event, finale, response](StreamSink& sink) {
    Clock::time_point idle_since = Clock::now();
    RequestEvent event;
    for (;;) {
      if (!handle->next(event, std::chrono::milliseconds(100))) {
        if (sink.client_gone()) break;
        // A comment line now and then keeps proxies from timing the stream out.
        if (Clock::now() - idle_since > std::chrono::milliseconds(500)) {
          idle_since = Clock::now();
          if (!sink.write(": keep-alive\n\n")) break;
        }
        continue;
      }
      idle_since = Clock::now();
      bool written = true;
      for (const std::string& payload : on_event(event))
        if (!(written = sink.write("data:" + payload + "\n\n"))) break;
      if (!written) break;
      if (event.kind != RequestEvent::Kind::Token) {
        if (event.kind == RequestEvent::Kind::Finished) record_access(*response, event);
        if (!finale.empty()) sink.write("data: " + finale + "\n\n");
        return;
      }
    }
    handle->cancel();  // the client went away: free what the request holds
  };
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace flashneox
