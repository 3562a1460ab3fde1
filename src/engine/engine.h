// The serving engine: a waiting queue and a running batch over one model and
// one paged KV cache. Every step admits waiting requests (first come, first
// served) within the limits, prefills them in chunks, decodes every running
// sequence in the same forward, samples, streams tokens out and retires
// finished sequences at once. When blocks run out, the most recently admitted
// sequence is preempted (its blocks freed, recomputed later). Whole blocks
// of computed tokens are kept for later requests that start the same way
// (prefix caching, cache/block_manager.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cache/block_manager.h"
#include "core/error.h"
#include "engine/metrics.h"
#include "engine/request.h"
#include "model/gpt_neox.h"
#include "structured/grammar.h"
#include "structured/token_trie.h"
#include "tokenizer/tokenizer.h"

namespace flashneox {

struct EngineOptions {
  int block_size = 16;
  size_t kv_cache_bytes = 0;        // 0: min(20% of available memory, 2 GiB)
  DType kv_cache_dtype = DType::F32;  // F32, or F16 for half the memory and decode traffic
  int max_input_length = 0;         // 0: max_total_tokens - 1
  int max_total_tokens = 0;         // prompt + new tokens; 0: min(max_position_embeddings, 2048)
  int max_batch_prefill_tokens = 4096;  // prompt tokens per forward (longer prompts are chunked)
  int max_batch_total_tokens = 0;   // tokens the running batch may reach; 0: the cache's capacity
  int max_concurrent_requests = 128;  // waiting + running; more are refused
  int max_batch_size = 256;         // running sequences
  int max_active_adapters = 128;    // distinct LoRA adapters in the running batch
  // Reuse the K/V of whole blocks of prompt (and earlier output) another
  // request computed: a shared system prompt or chat history is prefilled once.
  bool prefix_caching = true;
  // Speculative decoding by prompt lookup: up to this many tokens proposed
  // per decode step, verified in the same forward (0: off; a request's
  // `speculate` overrides it). Proposals count against the prefill budget.
  int speculate = 0;
  // Guesses come from this smaller model with the same vocabulary (greedy,
  // its own KV cache) instead of prompt lookup; speculate defaults to 4 with it.
  std::shared_ptr<GptNeoxModel> draft_model;
};

// Refusal because the engine is full (HTTP 429), distinct from bad input.
class DraftProposer;

class OverloadedError : public Error {
 public:
  using Error::Error;
};

// Refusal because the engine is stopping (HTTP 503).
class ShuttingDownError : public Error {
 public:
  using Error::Error;
};

struct EngineStats {
  int waiting = 0;
  int running = 0;
  int kv_blocks_total = 0;
  int kv_blocks_used = 0;
  int kv_blocks_free = 0;    // never used, or holding a cached prefix nobody uses
  int kv_blocks_cached = 0;  // of the free ones, those holding a cached prefix
};

class Engine {
 public:
  // The model may be shared with callers that run it directly (the Python
  // API's logits), as long as they never run it during a step().
  Engine(std::shared_ptr<GptNeoxModel> model, std::shared_ptr<const Tokenizer> tokenizer,
         EngineOptions options = {});
  ~Engine();

  // Validates and queues a request. Throws Error for bad input (prompt too
  // long, parameters out of range) and OverloadedError when full.
  std::shared_ptr<RequestHandle> submit(GenerationRequest request);

  // Runs one scheduling step on the calling thread; false when there was
  // nothing to do. Not for use while the background loop runs.
  bool step();
  void run_until_idle();

  // The background loop for a server: steps while there is work.
  void start();
  void stop();
  // Ends every request (queued or running) with a Failed event carrying
  // `message` and status 503, and refuses new ones with ShuttingDownError.
  // Safe from any thread; done by the loop at its next step (or here when
  // no loop runs).
  void abort_all(const std::string& message);

  EngineStats stats() const;
  const EngineOptions& options() const { return options_; }
  const EngineMetrics& metrics() const { return metrics_; }
  const GptNeoxModel& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  size_t kv_cache_bytes() const { return cache_->bytes(); }
  size_t workspace_bytes() const { return workspace_.bytes(); }  // activations of the largest step

 private:
  struct Sequence;
  struct Planned;
  void take_inbox();
  void drop_cancelled();
  std::vector<Planned> plan();
  void preempt(std::list<std::unique_ptr<Sequence>>::iterator it);
  void run(std::vector<Planned>& work);
  // Speculation: guesses for every decoding sequence that wants them (seq.step_input, seq.guesses),
  // from the draft model or by prompt lookup, within the step's `budget`.
  void guess(int budget);
  int guess_room(Sequence& seq, int budget);  // the most guesses seq may take now
  // Emits the tokens of a speculative step's rows while the guesses hold.
  void verify(Sequence& seq, int proposals, float* logits);
  void emit_token(Sequence& seq, float* logits);
  // The tokens seq's grammar allows now (EOS only where it is complete).
  const uint64_t* grammar_mask(Sequence& seq);
  void finish(Sequence& seq, FinishReason reason);
  // Ends a sequence with a Failed event; counted like any other ending.
  void fail(Sequence& seq, const std::string& message, int status, const std::string& outcome);
  void fail_everything();  // the abort_all() work, on the engine's thread
  int potential_tokens(const Sequence& seq) const;

  std::shared_ptr<GptNeoxModel> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  EngineOptions options_;
  std::unique_ptr<KvCache> cache_;
  ForwardWorkspace workspace_;  // sized at start for the largest step
  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<DraftProposer> draft_;  // with options.draft_model
  EngineMetrics metrics_;
  std::unique_ptr<TokenTrie> token_trie_;  // built when the first constrained request samples
  std::vector<uint64_t> grammar_mask_;     // scratch

  mutable std::mutex inbox_mutex_;
  std::condition_variable inbox_ready_;
  std::vector<std::unique_ptr<Sequence>> inbox_;
  uint64_t next_id_ = 1;
  std::atomic<int> in_system_{0};  // waiting + running + inbox, for max_concurrent_requests

  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::list<std::unique_ptr<Sequence>> running_;  // in admission order
  std::atomic<int> waiting_count_{0}, running_count_{0};  // read by stats()

  std::thread loop_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> aborting_{false};
  std::string abort_message_;  // guarded by inbox_mutex_
};

}  // namespace flashneox
