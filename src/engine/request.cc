#include "engine/request.h"

namespace flashneox {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::Length: return "length";
    case FinishReason::EosToken: return "eos_token";
    case FinishReason::StopSequence: return "stop_sequence";
    case FinishReason::Cancelled: return "cancelled";
  }
  return "?";
}

bool RequestHandle::next(RequestEvent& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!ready_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
  out = std::move(events_.front());
  events_.pop_front();
  return true;
}

void RequestHandle::cancel() {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_ = true;
}

bool RequestHandle::cancelled() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cancelled_;
}

bool RequestHandle::done() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_;
}

void RequestHandle::push(RequestEvent event) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (event.kind != RequestEvent::Kind::Token) done_ = true;
    events_.push_back(std::move(event));
  }
  ready_.notify_all();
}

}  // namespace flashneox
