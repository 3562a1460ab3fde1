// What a client hands the engine and what it gets back: a generation request
// and a thread-safe stream of events (tokens, then one final event).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampling_params.h"
#include "lora/lora_adapter.h"

namespace flashneox {

enum class FinishReason { Length, EosToken, StopSequence, Cancelled };
const char* finish_reason_name(FinishReason reason);  // "length", "eos_token", ...

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids
  SamplingParams params;
  std::shared_ptr<const LoraAdapter> adapter;  // null: the base model; held while the request runs
};

struct TokenInfo {
  int32_t id = 0;
  std::string text;               // the text this token completes (never a broken character)
  std::optional<float> logprob;
  bool special = false;
};

struct GeneratedToken : TokenInfo {
  std::vector<TokenInfo> top_tokens;  // top_n_tokens alternatives
};

using Clock = std::chrono::steady_clock;

struct RequestEvent {
  enum class Kind { Token, Finished, Failed };
  Kind kind = Kind::Token;
  GeneratedToken token;  // Token: the new token
  // Finished:
  FinishReason finish_reason = FinishReason::Length;
  std::string generated_text;
  int generated_tokens = 0;
  int prompt_tokens = 0;
  std::optional<uint64_t> seed;
  std::vector<TokenInfo> prefill;  // with decoder_input_details
  Clock::time_point queued_at, started_at, finished_at;
  // Failed: what went wrong, and how an HTTP server should answer it.
  std::string error;
  int error_status = 500;              // 503 when the server is shutting down
  std::string error_type = "generation";
};

// The engine pushes, one client thread pops. Cancelling is a request the
// engine honours at its next step, freeing everything the request held.
class RequestHandle {
 public:
  explicit RequestHandle(uint64_t id) : id_(id) {}
  uint64_t id() const { return id_; }

  // Waits up to `timeout` for the next event; false on timeout.
  bool next(RequestEvent& out, std::chrono::milliseconds timeout);
  void cancel();
  bool cancelled() const;
  bool done() const;  // the final event has been pushed

  void push(RequestEvent event);  // engine side

 private:
  const uint64_t id_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<RequestEvent> events_;
  bool cancelled_ = false;
  bool done_ = false;
};

}  // namespace flashneox
