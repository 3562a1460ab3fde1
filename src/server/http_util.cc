#include "server/http_util.h"

#include <httplib.h>

namespace flashneox {

using nlohmann::json;

void reply_json(httplib::Response& res, const json& body, int status) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void reply_error(httplib::Response& res, const ApiError& error) {
  reply_json(res, {{"error", error.what()}, {"error_type", error.type()}}, error.status());
}

void guarded(httplib::Response& res, const std::function<void()>& handler) {
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
  } catch (const OverloadedError& e) {
    throw ApiError(429, "overloaded", e.what());
  } catch (const Error& e) {
    throw validation_error(e.what());
  }
}

Collected collect(RequestHandle& handle) {
  Collected out;
  RequestEvent e;
  for (;;) {
    if (!handle.next(e, std::chrono::milliseconds(1000))) continue;
    if (e.kind == RequestEvent::Kind::Token) {
      out.tokens.push_back(std::move(e.token));
      continue;
    }
    if (e.kind == RequestEvent::Kind::Failed) throw ApiError(500, "generation", e.error);
    out.final_event = std::move(e);
    return out;
  }
}

void stream_events(httplib::Response& res, std::shared_ptr<RequestHandle> handle,
                   EventFormatter on_event, std::string finale) {
  auto finished = std::make_shared<bool>(false);
  auto idle_since = std::make_shared<Clock::time_point>(Clock::now());
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [handle, on_event, finale, finished, idle_since](size_t, httplib::DataSink& sink) {
        if (*finished) {
          sink.done();
          return true;
        }
        RequestEvent event;
        if (!handle->next(event, std::chrono::milliseconds(250))) {
          // A comment line now and then: writing is how a vanished client shows.
          if (Clock::now() - *idle_since > std::chrono::milliseconds(500)) {
            *idle_since = Clock::now();
            static const std::string ping = ": keep-alive\n\n";
            if (!sink.write(ping.data(), ping.size())) {
              handle->cancel();
              return false;
            }
          }
          return true;
        }
        *idle_since = Clock::now();
        for (const std::string& payload : on_event(event)) {
          const std::string line = "data:" + payload + "\n\n";
          if (!sink.write(line.data(), line.size())) {
            handle->cancel();
            return false;
          }
        }
        if (event.kind != RequestEvent::Kind::Token) {
          if (!finale.empty()) {
            const std::string line = "data: " + finale + "\n\n";
            sink.write(line.data(), line.size());
          }
          *finished = true;
          sink.done();
        }
        return true;
      },
      [handle](bool) {
        if (!handle->done()) handle->cancel();  // connection closed early
      });
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace flashneox
