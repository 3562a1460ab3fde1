#include "engine/engine.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <unordered_set>

#include "core/error.h"
#include "core/memory_size.h"
#include "engine/draft_proposer.h"
#include "engine/ngram_proposer.h"
#include "engine/sampler.h"
#include "model/sequence_batch.h"

namespace flashneox {

struct Engine::Sequence {
  uint64_t id = 0;
  std::shared_ptr<RequestHandle> handle;
  SamplingParams params;
  std::vector<int32_t> tokens;  // prompt, then generated
  int prompt_len = 0;
  int computed = 0;             // tokens whose K/V are in the cache
  std::vector<int32_t> blocks;
  PrefixKeys prefix;            // its blocks' keys in the prefix cache
  std::shared_ptr<const LoraAdapter> adapter;  // null: the base model
  std::optional<uint64_t> seed;
  std::mt19937_64 rng;          // the request's own stream: batch-independent
  TokenCounts counts;
  std::unique_ptr<StreamDecoder> stream;
  std::string text;
  std::vector<TokenInfo> prefill;  // decoder_input_details
  std::vector<int32_t> step_input; // a speculative step's input: the last token, then the guesses
  int guesses = 0;                 // this step's guesses (step_input[1..])
  int guess_limit = 0;             // with a draft model: the most guesses next time (0: as many as wanted)
  int guess_misses = 0;            // speculative steps in a row where no guess held
  int guess_pause = 0;             // decode steps left before guessing again
  int32_t grammar_state = 0;       // with params.grammar: where the text so far leaves it
  bool prefill_scored = false;
  bool finished = false;
  bool started = false;
  Clock::time_point queued_at, started_at, last_token_at;

  int generated() const { return static_cast<int>(tokens.size()) - prompt_len; }
};

struct Engine::Planned {
  Sequence* seq;
  int count;          // tokens this forward brings
  bool keep_all;      // logits for every row (prompt log-probabilities)
  int proposals = 0;  // speculative: count - 1 guessed tokens after the last one (seq->step_input)
};

Engine::Engine(std::shared_ptr<GptNeoxModel> model, std::shared_ptr<const Tokenizer> tokenizer,
               EngineOptions options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(options) {
  const ModelConfig& c = model_->config();
  EngineOptions& o = options_;
  if (o.block_size <= 0) throw Error("block size must be positive");
  if (o.max_total_tokens <= 0) o.max_total_tokens = std::min(c.max_position_embeddings, 2048);
  if (o.max_total_tokens > c.max_position_embeddings && c.rope_scaling != RopeScaling::Dynamic)
    throw Error(concat("max_total_tokens (", o.max_total_tokens, ") is more than the model's max_position_embeddings (",
                       c.max_position_embeddings, "): positions past it are untrained"));
  if (o.max_input_length <= 0) o.max_input_length = o.max_total_tokens - 1;
  if (o.max_input_length >= o.max_total_tokens)
    throw Error(concat("max_input_length (", o.max_input_length,
                       ") must be smaller than max_total_tokens (", o.max_total_tokens, ")"));
  if (o.max_batch_prefill_tokens <= 0) throw Error("max_batch_prefill_tokens must be positive");
  if (o.max_concurrent_requests <= 0) throw Error("max_concurrent_requests must be positive");
  if (o.max_batch_size <= 0) throw Error("max_batch_size must be positive");
  if (o.max_active_adapters <= 0) throw Error("max_active_adapters must be positive");
  const size_t block_bytes =
      KvCache::block_bytes(c.num_layers, o.block_size, model_->local_heads(), c.head_size, o.kv_cache_dtype);
  if (o.kv_cache_bytes == 0)
    o.kv_cache_bytes = std::min(available_memory_bytes() / 5, size_t{2} << 30);
  const int num_blocks = static_cast<int>(std::min<size_t>(o.kv_cache_bytes / block_bytes, 1 << 30));
  const int needed = blocks_for(o.max_total_tokens, o.block_size);
  if (num_blocks < needed)
    throw Error(concat("the KV cache budget (", o.kv_cache_bytes, " bytes) holds ",
                       num_blocks * o.block_size, " tokens, fewer than max_total_tokens (",
                       o.max_total_tokens, ")"));
  if (o.max_batch_total_tokens <= 0) o.max_batch_total_tokens = num_blocks * o.block_size;
  if (o.max_batch_total_tokens < o.max_total_tokens)
    throw Error("max_batch_total_tokens must be at least max_total_tokens");
  cache_ = model_->make_cache(num_blocks, o.block_size, o.kv_cache_dtype);
  // A step holds at most the prefill budget plus one decode token per sequence.
  workspace_.reserve(c, static_cast<int64_t>(o.max_batch_prefill_tokens) + o.max_batch_size);
  blocks_ = std::make_unique<BlockManager>(num_blocks, o.block_size, o.prefix_caching);
  if (o.draft_model) {  // as many tokens in its cache as in the model's
    draft_ = std::make_unique<DraftProposer>(o.draft_model, c.vocab_size, num_blocks, o.block_size);
    if (o.speculate <= 0) o.speculate = 4;
  }
}

Engine::~Engine() { stop(); }

std::shared_ptr<RequestHandle> Engine::submit(GenerationRequest request) {
  const SamplingParams& p = request.params;
  p.validate();
  const int prompt_len = static_cast<int>(request.prompt.size());
  if (prompt_len == 0) throw Error("`inputs` must not be empty");
  if (prompt_len > options_.max_input_length)
    throw Error(concat("`inputs` must have less than ", options_.max_input_length + 1,
                       " tokens. Given: ", prompt_len));
  if (static_cast<int64_t>(prompt_len) + p.max_new_tokens > options_.max_total_tokens)
    throw Error(concat("`inputs` tokens + `max_new_tokens` must be <= ", options_.max_total_tokens,
                       ". Given: ", prompt_len, " `inputs` tokens and ", p.max_new_tokens,
                       " `max_new_tokens`"));
  for (int32_t id : request.prompt)
    if (id < 0 || id >= model_->config().vocab_size)
      throw Error(concat("token id ", id, " is outside the vocabulary"));
  if (request.adapter && static_cast<int>(request.adapter->layers.size()) != model_->config().num_layers)
    throw Error(concat("adapter '", request.adapter->name, "' was loaded for another model"));
  if (aborting_) throw ShuttingDownError("the server is shutting down");
  if (in_system_.fetch_add(1) >= options_.max_concurrent_requests) {
    in_system_.fetch_sub(1);
    metrics_.count_request("overloaded");
    throw OverloadedError(concat("Model is overloaded: max_concurrent_requests (",
                                 options_.max_concurrent_requests, ") reached"));
  }
  auto seq = std::make_unique<Sequence>();
  seq->params = p;
  seq->adapter = std::move(request.adapter);
  if (seq->adapter) seq->prefix.salt = seq->adapter->uid;
  seq->prompt_len = prompt_len;
  seq->tokens = std::move(request.prompt);
  for (int32_t id : seq->tokens) seq->counts.add(id);
  if (p.sampling()) {
    seq->seed = p.seed ? *p.seed : std::random_device{}() * 0x9e3779b97f4a7c15ull ^ std::random_device{}();
    seq->rng.seed(*seq->seed);
  }
  seq->stream = std::make_unique<StreamDecoder>(*tokenizer_, /*skip_special_tokens=*/true);
  if (p.grammar) seq->grammar_state = p.grammar->start();
  if (p.decoder_input_details) {
    for (int32_t id : seq->tokens) {
      TokenInfo t;
      t.id = id;
      t.text = id < tokenizer_->vocab_size() ? tokenizer_->decode({id}) : "";
      t.special = tokenizer_->is_special(id);
      seq->prefill.push_back(std::move(t));
    }
  }
  seq->queued_at = Clock::now();
  std::lock_guard<std::mutex> lock(inbox_mutex_);
  seq->id = next_id_++;
  seq->handle = std::make_shared<RequestHandle>(seq->id);
  auto handle = seq->handle;
  inbox_.push_back(std::move(seq));
  inbox_ready_.notify_one();
  return handle;
}

void Engine::take_inbox() {
  std::lock_guard<std::mutex> lock(inbox_mutex_);
  for (auto& seq : inbox_) waiting_.push_back(std::move(seq));
  inbox_.clear();
}

void Engine::drop_cancelled() {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->handle->cancelled()) {
      finish(**it, FinishReason::Cancelled);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = running_.begin(); it != running_.end();) {
    if ((*it)->handle->cancelled()) {
      finish(**it, FinishReason::Cancelled);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
}

int Engine::potential_tokens(const Sequence& seq) const {
  return seq.prompt_len + seq.params.max_new_tokens;
}

void Engine::preempt(std::list<std::unique_ptr<Sequence>>::iterator it) {
  // Recompute later: free the blocks, keep prompt + generated tokens, and go
  // back to the front of the queue (it was admitted before everyone waiting).
  std::unique_ptr<Sequence> seq = std::move(*it);
  running_.erase(it);
  blocks_->release(seq->blocks);
  if (draft_) draft_->forget(seq->id);
  seq->computed = 0;
  seq->prefix.published = 0;
  metrics_.count_request("preempted");
  waiting_.push_front(std::move(seq));
}

std::vector<Engine::Planned> Engine::plan() {
  std::vector<Planned> work;
  int budget = options_.max_batch_prefill_tokens;
  guess(budget);
  // Running sequences first: decodes (one token) and prefill chunks.
  for (auto it = running_.begin(); it != running_.end();) {
    Sequence& s = **it;
    const int need = static_cast<int>(s.tokens.size()) - s.computed;
    if (need == 1) {  // a decode step, speculative when guesses were made and fit
      const int proposals = std::min(s.guesses, budget);
      if (proposals > 0 && blocks_->reserve(s.blocks, s.computed + 1 + proposals)) {
        budget -= proposals;
        work.push_back({&s, 1 + proposals, false, proposals});
        ++it;
        continue;
      }
    }
    const int count = need == 1 ? 1 : std::min(need, budget);
    if (count == 0) {
      ++it;
      continue;
    }
    bool ok = blocks_->reserve(s.blocks, s.computed + count);
    while (!ok && std::next(it) != running_.end()) {
      preempt(std::prev(running_.end()));  // the most recently admitted
      ok = blocks_->reserve(s.blocks, s.computed + count);
    }
    if (!ok) {
      auto next = std::next(it);
      preempt(it);
      it = next;
      continue;
    }
    if (need > 1) budget -= count;
    work.push_back({&s, count, s.params.decoder_input_details && !s.prefill_scored});
    ++it;
  }
  // With prefix caching, the whole blocks running sequences have yet to
  // compute: a request that would compute the same ones waits for them and
  // then shares them (a burst of requests with one system prompt computes it
  // once).
  std::unordered_set<uint64_t> pending;
  auto note_pending = [&](Sequence& s) {
    if (!blocks_->prefix_caching()) return;
    const int whole = static_cast<int>(s.tokens.size()) / options_.block_size;
    blocks_->hash_blocks(s.tokens, whole, s.prefix);
    for (int i = s.prefix.published; i < whole; ++i) pending.insert(s.prefix.hashes[static_cast<size_t>(i)]);
  };
  // Then admit waiting requests in arrival order while they fit. At most
  // max_active_adapters distinct adapters run at once; a request whose adapter
  // would pass the cap waits at the head of the queue and nobody behind it is
  // admitted, so the running adapters drain and no adapter starves behind a
  // busy one (first come, first served across adapters).
  int batch_tokens = 0;
  std::set<const LoraAdapter*> active;
  for (const auto& s : running_) {
    batch_tokens += potential_tokens(*s);
    if (s->adapter) active.insert(s->adapter.get());
    note_pending(*s);
  }
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int>(running_.size()) < options_.max_batch_size) {
    Sequence& s = *waiting_.front();
    if (s.adapter && !active.count(s.adapter.get()) &&
        static_cast<int>(active.size()) >= options_.max_active_adapters)
      break;
    if (!running_.empty() && batch_tokens + potential_tokens(s) > options_.max_batch_total_tokens) break;
    const bool keep_all = s.params.decoder_input_details && !s.prefill_scored;
    const int total = static_cast<int>(s.tokens.size());
    // Cached blocks first; at least the last token is computed here, for its
    // logits (and prompt log-probabilities need every row computed).
    s.computed = blocks_->share_prefix(s.blocks, s.tokens, keep_all ? 0 : total - 1, s.prefix);
    const size_t next_block = static_cast<size_t>(s.computed / options_.block_size);
    const bool coming = next_block < s.prefix.hashes.size() && pending.count(s.prefix.hashes[next_block]);
    const int count = std::min(total - s.computed, budget);
    // Nobody jumps the queue: when this one waits, for blocks or for its prefix, so does everyone behind it.
    if (coming || !blocks_->reserve(s.blocks, s.computed + count)) {
      blocks_->release(s.blocks);
      s.computed = 0;
      s.prefix.published = 0;
      break;
    }
    if (blocks_->prefix_caching()) metrics_.count_prefix_lookup(static_cast<uint64_t>(total), static_cast<uint64_t>(s.computed));
    if (!s.started) {
      s.started = true;
      s.started_at = Clock::now();
    }
    batch_tokens += potential_tokens(s);
    budget -= count;
    if (s.adapter) active.insert(s.adapter.get());
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    note_pending(s);
    work.push_back({&s, count, keep_all});
  }
  return work;
}

int Engine::guess_room(Sequence& s, int budget) {
  const int wanted = s.params.speculate.value_or(options_.speculate);
  if (wanted <= 0) return 0;
  if (s.guess_pause > 0) {  // text that does not repeat itself: wasted rows, so guess ever more rarely
    --s.guess_pause;
    return 0;
  }
  // Never guess past what the request may still emit (this step emits one more than it guesses).
  const int room = std::min(s.params.max_new_tokens - s.generated(),
                            options_.max_total_tokens - static_cast<int>(s.tokens.size())) - 1;
  int most = std::min({wanted, room, budget});
  if (s.guess_limit > 0) most = std::min(most, s.guess_limit);
  const ModelConfig& c = model_->config();
  if (c.rope_scaling == RopeScaling::Dynamic)  // past the trained length a forward's rotations depend on its longest
    most = std::min(most, c.max_position_embeddings - static_cast<int>(s.tokens.size()));  // row: guess only within it
  return std::max(most, 0);
}

void Engine::guess(int budget) {
  std::vector<DraftProposer::Request> asks;
  std::vector<Sequence*> asking;
  for (const auto& seq : running_) {
    Sequence& s = *seq;
    s.guesses = 0;
    if (static_cast<int>(s.tokens.size()) - s.computed != 1) continue;  // prefilling
    const int most = guess_room(s, budget);
    if (most == 0) continue;
    s.step_input.assign(1, s.tokens.back());
    if (draft_) {
      asks.push_back({s.id, &s.tokens, s.computed, most, &s.step_input});
      asking.push_back(&s);
    } else {
      s.guesses = propose_by_ngram(s.tokens, most, s.step_input);
    }
    budget -= most;
  }
  if (asks.empty()) return;
  draft_->propose(asks);
  for (Sequence* s : asking) s->guesses = static_cast<int>(s->step_input.size()) - 1;
}

void Engine::run(std::vector<Planned>& work) {
  std::vector<SequenceStep> steps;
  bool prefill = false;
  for (const Planned& w : work) {
    Sequence& s = *w.seq;
    const int32_t* tokens = w.proposals > 0 ? s.step_input.data() : s.tokens.data() + s.computed;
    steps.push_back({tokens, w.count, s.computed, &s.blocks, w.keep_all || w.proposals > 0, s.adapter.get()});
    prefill = prefill || w.count > 1 || s.computed == 0;
  }
  const ForwardBatch batch = make_batch(steps, options_.block_size, prefill);
  ForwardOutput out = model_->forward(batch, *cache_, &workspace_);
  metrics_.batch_size.observe(static_cast<double>(work.size()));
  const int32_t vocab = model_->config().vocab_size;
  int64_t row = 0;
  for (const Planned& w : work) {
    Sequence& s = *w.seq;
    if (w.proposals > 0) {
      verify(s, w.proposals, out.logits.data() + row * vocab);
      row += w.count;
      continue;
    }
    if (w.keep_all) {  // logprob of each prompt token given the ones before it
      for (int r = 0; r < w.count; ++r) {
        const int target = s.computed + r + 1;
        if (target < s.prompt_len)
          s.prefill[target].logprob =
              Sampler::logprob_of(out.logits.data() + (row + r) * vocab, vocab, s.tokens[target]);
      }
    }
    const int rows = w.keep_all ? w.count : 1;
    s.computed += w.count;
    blocks_->publish(s.blocks, s.tokens, s.computed, s.prefix);  // K/V written: others may share them
    if (s.computed >= s.prompt_len) s.prefill_scored = true;
    if (s.computed == static_cast<int>(s.tokens.size()))
      emit_token(s, out.logits.data() + (row + rows - 1) * vocab);
    row += rows;
  }
}

// Row j of `logits` follows the last token and the first j guesses. Each row
// is sampled exactly as a decode step would sample it (the forward gives a
// row the same bits whatever else it holds; the request's random stream
// advances once per emitted token either way), so the output is the one
// decoding without speculation gives, greedy or sampled. While the emitted
// token equals the guess that was fed in after it, the next row is valid
// too: its K/V are kept (computed advances) and it is sampled in turn. For a
// guess that is one token with certainty, accepting it exactly when a sample
// of the model's distribution equals it is the rejection-sampling rule.
void Engine::verify(Sequence& s, int proposals, float* logits) {
  const int32_t vocab = model_->config().vocab_size;
  int accepted = 0;
  s.computed += 1;
  blocks_->publish(s.blocks, s.tokens, s.computed, s.prefix);
  for (int j = 0; j <= proposals; ++j) {
    emit_token(s, logits + static_cast<int64_t>(j) * vocab);
    if (s.finished || j == proposals || s.tokens.back() != s.step_input[static_cast<size_t>(j) + 1]) break;
    ++accepted;
    s.computed += 1;
    blocks_->publish(s.blocks, s.tokens, s.computed, s.prefix);
  }
  metrics_.count_speculation(static_cast<uint64_t>(proposals), static_cast<uint64_t>(accepted));
  s.guess_misses = accepted > 0 ? 0 : s.guess_misses + 1;
  // Each draft guess costs a draft forward: guess one more than held last time.
  if (draft_) s.guess_limit = accepted + 1;
  s.guess_pause = s.guess_misses > 1 ? std::min(1 << (s.guess_misses - 1), 16) : 0;
}

namespace {
// False when any value is NaN or infinite (exponent bits all set).
bool all_finite(const float* x, int32_t n) {
  uint32_t bad = 0;
  for (int32_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, 4);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}
}  // namespace

void Engine::emit_token(Sequence& s, float* logits) {
  const int32_t vocab = model_->config().vocab_size;
  if (!all_finite(logits, vocab)) {
    // Damaged weights or an overflow: never sample from garbage.
    fail(s, concat("the model produced NaN or infinite logits at position ", s.tokens.size(),
                   "; the weights may be damaged (check them with `--check-weights`)"),
         500, "error");
    return;
  }
  TokenChoice choice;
  if (s.params.grammar) {
    Grammar& grammar = *s.params.grammar;
    const Sampler::Constraint constraint{
        [&](int32_t id) {  // EOS where the text is complete; text tokens that keep it alive
          if (id == model_->config().eos_token_id) return grammar.accepting(s.grammar_state);
          if (id >= tokenizer_->vocab_size() || tokenizer_->is_special(id)) return false;
          const std::string& bytes = tokenizer_->token_bytes(id);
          return !bytes.empty() && grammar.advance(s.grammar_state, bytes) != Grammar::kDead;
        },
        [&] { return grammar_mask(s); }};
    try {
      choice = Sampler::choose(logits, vocab, s.params, s.counts, s.rng, &constraint);  // scratches the row
    } catch (const Error& e) {  // the grammar's budgets (GrammarError), or no token fits
      fail(s, e.what(), 422, "error");
      return;
    }
  } else {
    choice = Sampler::choose(logits, vocab, s.params, s.counts, s.rng);  // scratches the row
  }
  s.tokens.push_back(choice.id);
  s.counts.add(choice.id);

  auto token_text = [&](int32_t id) {
    return id < tokenizer_->vocab_size() ? tokenizer_->decode({id}) : std::string();
  };
  RequestEvent event;
  event.kind = RequestEvent::Kind::Token;
  event.token.id = choice.id;
  event.token.logprob = choice.logprob;
  event.token.special = tokenizer_->is_special(choice.id);
  const std::string piece =
      choice.id < tokenizer_->vocab_size() ? s.stream->push(choice.id) : std::string();
  event.token.text = event.token.special ? token_text(choice.id) : piece;
  s.text += piece;
  for (const auto& [id, lp] : choice.top) {
    TokenInfo t;
    t.id = id;
    t.text = token_text(id);
    t.logprob = lp;
    t.special = tokenizer_->is_special(id);
    event.token.top_tokens.push_back(std::move(t));
  }
  const Clock::time_point now = Clock::now();
  const double since = std::chrono::duration<double>(
                           now - (s.generated() == 1 ? s.queued_at : s.last_token_at)).count();
  (s.generated() == 1 ? metrics_.time_to_first_token : metrics_.inter_token_latency).observe(since);
  s.last_token_at = now;
  s.handle->push(std::move(event));

  const SamplingParams& p = s.params;
  const bool eos = choice.id == model_->config().eos_token_id;
  if (eos && (!p.ignore_eos_token || p.grammar)) {  // with a grammar, EOS is only allowed once it is complete
    finish(s, FinishReason::EosToken);
    return;
  }
  bool complete = false;  // the grammar's text is whole and nothing may follow
  if (p.grammar) {
    try {  // the grammar's budgets hold here too (GrammarError)
      s.grammar_state = p.grammar->advance(s.grammar_state, tokenizer_->token_bytes(choice.id));
      complete = !p.grammar->can_continue(s.grammar_state);
    } catch (const Error& e) {
      fail(s, e.what(), 422, "error");
      return;
    }
  }
  for (const std::string& stop : p.stop) {
    // Only where the new text could complete it: matches across token boundaries.
    const size_t from = s.text.size() > piece.size() + stop.size()
                            ? s.text.size() - piece.size() - stop.size() + 1
                            : 0;
    if (!piece.empty() && s.text.find(stop, from) != std::string::npos) {
      finish(s, FinishReason::StopSequence);
      return;
    }
  }
  if (complete) {
    finish(s, FinishReason::EosToken);
    return;
  }
  if (s.generated() >= p.max_new_tokens ||
      static_cast<int>(s.tokens.size()) >= options_.max_total_tokens)
    finish(s, FinishReason::Length);
}

const uint64_t* Engine::grammar_mask(Sequence& s) {
  Grammar& grammar = *s.params.grammar;
  const int32_t vocab = model_->config().vocab_size;
  if (!token_trie_) token_trie_ = std::make_unique<TokenTrie>(*tokenizer_, vocab);
  const std::vector<uint64_t>& allowed = grammar.allowed_tokens(s.grammar_state, *token_trie_);
  grammar_mask_.assign(allowed.begin(), allowed.end());
  const int32_t eos = model_->config().eos_token_id;
  if (eos >= 0 && eos < vocab) {
    const uint64_t eos_bit = uint64_t{1} << (eos % 64);
    if (grammar.accepting(s.grammar_state)) grammar_mask_[static_cast<size_t>(eos / 64)] |= eos_bit;
    else grammar_mask_[static_cast<size_t>(eos / 64)] &= ~eos_bit;
  }
  for (const uint64_t word : grammar_mask_)
    if (word) return grammar_mask_.data();
  throw Error(concat(grammar.description(), ": no token of this vocabulary can continue the text"));
}

void Engine::finish(Sequence& s, FinishReason reason) {
  s.finished = true;
  if (!s.blocks.empty()) blocks_->release(s.blocks);
  if (draft_) draft_->forget(s.id);
  RequestEvent event;
  event.kind = RequestEvent::Kind::Finished;
  event.finish_reason = reason;
  event.generated_text = s.text + s.stream->finish();
  event.generated_tokens = s.generated();
  event.prompt_tokens = s.prompt_len;
  event.seed = s.seed;
  event.prefill = std::move(s.prefill);
  event.queued_at = s.queued_at;
  event.started_at = s.started ? s.started_at : Clock::now();
  event.finished_at = Clock::now();
  metrics_.count_request(finish_reason_name(reason));
  metrics_.count_tokens(static_cast<uint64_t>(s.generated()), static_cast<uint64_t>(s.prompt_len));
  metrics_.end_to_end_latency.observe(
      std::chrono::duration<double>(event.finished_at - s.queued_at).count());
  s.handle->push(std::move(event));
  in_system_.fetch_sub(1);
}

void Engine::fail(Sequence& s, const std::string& message, int status, const std::string& outcome) {
  s.finished = true;
  if (!s.blocks.empty()) blocks_->release(s.blocks);
  if (draft_) draft_->forget(s.id);
  RequestEvent event;
  event.kind = RequestEvent::Kind::Failed;
  event.error = message;
  event.error_status = status;
  event.error_type = status == 503 ? "unavailable" : "generation";
  metrics_.count_request(outcome);
  metrics_.count_tokens(static_cast<uint64_t>(s.generated()), static_cast<uint64_t>(s.prompt_len));
  s.handle->push(std::move(event));
  in_system_.fetch_sub(1);
}

void Engine::abort_all(const std::string& message) {
  {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    abort_message_ = message;
  }
  aborting_ = true;
  inbox_ready_.notify_all();
  if (!loop_.joinable()) fail_everything();
}

void Engine::fail_everything() {
  take_inbox();
  std::string message;
  {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    message = abort_message_;
  }
  for (auto& s : waiting_) fail(*s, message, 503, "shutdown");
  for (auto& s : running_) fail(*s, message, 503, "shutdown");
  waiting_.clear();
  running_.clear();
  waiting_count_ = 0;
  running_count_ = 0;
}

bool Engine::step() {
  if (aborting_) {
    fail_everything();
    return false;
  }
  take_inbox();
  drop_cancelled();
  if (waiting_.empty() && running_.empty()) {
    waiting_count_ = 0;
    running_count_ = 0;
    return false;
  }
  std::vector<Planned> work = plan();
  if (!work.empty()) {
    try {
      run(work);
    } catch (const std::exception& e) {
      // An internal failure fails the batch it hit, never the server.
      for (Planned& w : work)
        if (!w.seq->finished) fail(*w.seq, e.what(), 500, "error");
    }
  }
  running_.remove_if([](const std::unique_ptr<Sequence>& s) { return s->finished; });
  waiting_count_ = static_cast<int>(waiting_.size());
  running_count_ = static_cast<int>(running_.size());
  return !work.empty();
}

void Engine::run_until_idle() {
  while (step()) {
  }
}

void Engine::start() {
  if (loop_.joinable()) return;
  stopping_ = false;
  loop_ = std::thread([this] {
    while (!stopping_) {
      if (aborting_) fail_everything();
      if (step()) continue;
      std::unique_lock<std::mutex> lock(inbox_mutex_);
      inbox_ready_.wait_for(lock, std::chrono::milliseconds(20),
                            [&] { return stopping_ || aborting_ || !inbox_.empty(); });
    }
  });
}

void Engine::stop() {
  stopping_ = true;
  inbox_ready_.notify_all();
  if (loop_.joinable()) loop_.join();
  // Nothing is left waiting on a loop that no longer runs.
  if (!aborting_) abort_all("the engine has stopped");
  fail_everything();
}

EngineStats Engine::stats() const {
  EngineStats s;
  {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    s.waiting = static_cast<int>(inbox_.size());
  }
  s.waiting += waiting_count_;
  s.running = running_count_;
  s.kv_blocks_total = blocks_->num_blocks();
  s.kv_blocks_free = blocks_->free_blocks_snapshot();  // exact once a request's final event is out
  s.kv_blocks_used = s.kv_blocks_total - s.kv_blocks_free;
  s.kv_blocks_cached = blocks_->cached_blocks_snapshot();
  return s;
}

}  // namespace flashneox
