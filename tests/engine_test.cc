// The serving engine: batch invariance (alone vs. in a mixed, staggered batch,
// with and without preemption), every block returned, sampling parameters,
// stop criteria and prompt log-probabilities.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/isa.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "lora/random_adapter.h"
#include "test_support.h"

namespace flashneox {
namespace {

std::shared_ptr<const Tokenizer> shakespeare_tokenizer() {
  static std::shared_ptr<const Tokenizer> t =
      Tokenizer::from_file(testing::bundled_model() + "/tokenizer.json");
  return t;
}

std::unique_ptr<Engine> make_engine(EngineOptions options = {}) {
  if (options.kv_cache_bytes == 0) options.kv_cache_bytes = 64u << 20;
  if (options.max_total_tokens == 0) options.max_total_tokens = 256;
  return std::make_unique<Engine>(GptNeoxModel::load(testing::bundled_model()),
                                  shakespeare_tokenizer(), options);
}

struct Outcome {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  RequestEvent final_event;
};

// Drains every event a handle has (the engine must have finished it).
Outcome drain(RequestHandle& handle) {
  Outcome out;
  RequestEvent e;
  while (handle.next(e, std::chrono::milliseconds(0))) {
    if (e.kind == RequestEvent::Kind::Token) {
      out.tokens.push_back(e.token.id);
      out.logprobs.push_back(*e.token.logprob);
    } else {
      out.final_event = e;
    }
  }
  EXPECT_TRUE(handle.done());
  return out;
}

// 16 requests of different lengths and kinds (greedy, seeded sampling with
// various filters and penalties).
std::vector<GenerationRequest> mixed_requests() {
  const char* prompts[] = {"ROMEO:", "First Citizen:\nBefore we proceed any further, hear me speak.",
                           "To be, or not to be", "KING RICHARD III:\nNow is the winter of",
                           "O", "JULIET:\nWherefore art thou", "MENENIUS:\nI tell you, friends,",
                           "What say you?"};
  std::vector<GenerationRequest> out;
  for (int i = 0; i < 16; ++i) {
    GenerationRequest r;
    r.prompt = shakespeare_tokenizer()->encode(prompts[i % 8]);
    r.params.max_new_tokens = 8 + (i * 5) % 23;
    r.params.ignore_eos_token = true;
    if (i % 2 == 1) {
      r.params.do_sample = true;
      r.params.seed = 1000 + i;
      r.params.temperature = 0.7 + 0.1 * (i % 4);
      if (i % 4 == 1) r.params.top_k = 40;
      if (i % 8 == 3) r.params.top_p = 0.9;
      if (i % 8 == 7) r.params.typical_p = 0.8;
      if (i % 3 == 0) r.params.repetition_penalty = 1.2;
    }
    out.push_back(r);
  }
  return out;
}

Outcome run_alone(const GenerationRequest& request, DType kv_dtype = DType::F32) {
  EngineOptions options;
  options.kv_cache_dtype = kv_dtype;
  auto engine = make_engine(options);
  auto handle = engine->submit(request);
  engine->run_until_idle();
  return drain(*handle);
}

// Each request gives the same tokens alone and in a staggered batch of all
// 16; with `adapters`, request i runs with adapters[i % size] (null: none).
void expect_batch_invariant(EngineOptions options, bool expect_preemption,
                            const std::vector<std::shared_ptr<const LoraAdapter>>& adapters = {}) {
  auto requests = mixed_requests();
  for (size_t i = 0; i < requests.size() && !adapters.empty(); ++i) requests[i].adapter = adapters[i % adapters.size()];
  std::vector<Outcome> alone;
  for (const auto& r : requests) alone.push_back(run_alone(r, options.kv_cache_dtype));

  auto engine = make_engine(options);
  const int total_blocks = engine->stats().kv_blocks_total;
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (size_t i = 0; i < requests.size(); ++i) {
    handles.push_back(engine->submit(requests[i]));
    if (i % 3 == 2) engine->step();  // arrivals spread over steps
  }
  engine->run_until_idle();
  for (size_t i = 0; i < requests.size(); ++i) {
    const Outcome together = drain(*handles[i]);
    EXPECT_EQ(together.tokens, alone[i].tokens) << "request " << i;
    EXPECT_EQ(together.final_event.generated_text, alone[i].final_event.generated_text);
  }
  const auto by_outcome = engine->metrics().requests_by_outcome();
  const bool preempted = by_outcome.count("preempted") && by_outcome.at("preempted") > 0;
  EXPECT_EQ(preempted, expect_preemption);
  EXPECT_EQ(engine->stats().kv_blocks_free, total_blocks);
}

TEST(Engine, BatchInvariantAcrossMixedStaggeredRequests) {
  expect_batch_invariant({}, false);
}

TEST(Engine, BatchInvariantWithAnF16Cache) {
  EngineOptions f16;
  f16.kv_cache_dtype = DType::F16;
  f16.kv_cache_bytes = 32u << 20;
  f16.max_total_tokens = 256;
  const auto requests = mixed_requests();
  std::vector<Outcome> alone;
  for (int i = 0; i < 4; ++i) {
    auto engine = make_engine(f16);
    auto h = engine->submit(requests[i]);
    engine->run_until_idle();
    alone.push_back(drain(*h));
  }
  auto engine = make_engine(f16);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 4; ++i) handles.push_back(engine->submit(requests[i]));
  engine->run_until_idle();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(drain(*handles[i]).tokens, alone[i].tokens) << i;
}

// 40 blocks of 4 tokens: far less than 16 requests need at once.
EngineOptions tight_options() {
  EngineOptions tight;
  tight.block_size = 4;
  tight.max_total_tokens = 64;
  const ModelConfig c = ModelConfig::from_file(testing::bundled_model() + "/config.json");
  tight.kv_cache_bytes = KvCache::block_bytes(c.num_layers, 4, c.num_heads, c.head_size) * 40;
  tight.max_batch_prefill_tokens = 24;  // long prompts are chunked too
  tight.max_batch_total_tokens = 4096;  // admit optimistically: blocks run out mid-generation
  return tight;
}

TEST(Engine, BatchInvariantUnderPreemption) { expect_batch_invariant(tight_options(), true); }

// Random adapters of the bundled model's shape, large enough to change what it says.
std::vector<std::shared_ptr<const LoraAdapter>> bundled_adapters() {
  const ModelConfig c = ModelConfig::from_file(testing::bundled_model() + "/config.json");
  return {nullptr, random_lora_adapter(c, 8, 1, 0.05f), random_lora_adapter(c, 16, 2, 0.05f),
          random_lora_adapter(c, 4, 3, 0.05f)};
}

TEST(Engine, AdaptersStayBatchInvariantUnderPreemptionAndChunkedPrefill) {
  expect_batch_invariant(tight_options(), true, bundled_adapters());
}

TEST(Engine, AdaptersStayBatchInvariantWithAnF16Cache) {
  EngineOptions f16;
  f16.kv_cache_dtype = DType::F16;
  expect_batch_invariant(f16, false, bundled_adapters());
}

TEST(Engine, GreedyMatchesTheBundledReference) {
  auto engine = make_engine();
  GenerationRequest r;
  r.prompt = {51, 14519, 48, 27};  // "ROMEO:"
  r.params.max_new_tokens = 48;
  r.params.ignore_eos_token = true;
  auto handle = engine->submit(r);
  engine->run_until_idle();
  const Outcome out = drain(*handle);
  const std::vector<int32_t> want = {187, 48, 13, 619, 17991, 13, 309, 1833, 2028, 19615, 13, 187,
                                     1898, 309, 1833, 320, 247, 637, 15, 187, 187, 51, 14519, 48,
                                     27, 187, 42, 1833, 2028, 19615, 13, 187, 1898, 309, 1833, 320,
                                     594, 1199, 281, 320, 247, 637, 15, 187, 187, 51, 14519, 48};
  EXPECT_EQ(out.tokens, want);
  EXPECT_EQ(out.final_event.finish_reason, FinishReason::Length);
  EXPECT_EQ(out.final_event.generated_tokens, 48);
}

// The first `count` tokens of Tiny Shakespeare.
std::vector<int32_t> shakespeare_tokens(size_t count) {
  std::ifstream in(testing::test_data("tinyshakespeare.txt"));
  std::string text(20000, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  std::vector<int32_t> ids = shakespeare_tokenizer()->encode(text);
  if (ids.size() < count) throw Error("tinyshakespeare.txt is too short for this test");
  ids.resize(count);
  return ids;
}

GenerationRequest with_question(const std::vector<int32_t>& prefix, const char* question) {
  GenerationRequest r;
  r.prompt = prefix;
  for (int32_t id : shakespeare_tokenizer()->encode(question)) r.prompt.push_back(id);
  r.params.max_new_tokens = 12;
  r.params.ignore_eos_token = true;
  r.params.top_n_tokens = 3;
  return r;
}

// Token ids equal, log-probabilities (chosen and top 3) within `tolerance`.
void expect_same_outcome(RequestHandle& got_handle, RequestHandle& want_handle, float tolerance) {
  std::vector<RequestEvent> got, want;
  for (auto [handle, out] : {std::pair{&got_handle, &got}, std::pair{&want_handle, &want}}) {
    RequestEvent e;
    while (handle->next(e, std::chrono::milliseconds(0)))
      if (e.kind == RequestEvent::Kind::Token) out->push_back(e);
  }
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].token.id, want[i].token.id) << "token " << i;
    EXPECT_NEAR(*got[i].token.logprob, *want[i].token.logprob, tolerance) << "token " << i;
    ASSERT_EQ(got[i].token.top_tokens.size(), want[i].token.top_tokens.size());
    for (size_t k = 0; k < got[i].token.top_tokens.size(); ++k) {
      EXPECT_EQ(got[i].token.top_tokens[k].id, want[i].token.top_tokens[k].id);
      EXPECT_NEAR(*got[i].token.top_tokens[k].logprob, *want[i].token.top_tokens[k].logprob, tolerance);
    }
  }
}

// A request whose first 1,000 tokens another request computed prefills only
// what follows them, and says what a cold run says.
TEST(Engine, PrefixCacheSkipsASharedPrefixAndKeepsTheLogits) {
  const std::vector<int32_t> prefix = shakespeare_tokens(1000);
  const GenerationRequest first = with_question(prefix, "\n\nROMEO:");
  const GenerationRequest second = with_question(prefix, "\n\nJULIET:\nO Romeo");
  EngineOptions options;
  options.max_total_tokens = 1100;
  options.prefix_caching = false;
  auto cold = make_engine(options);
  auto want = cold->submit(second);
  cold->run_until_idle();
  EXPECT_EQ(cold->metrics().prefix_hit_tokens(), 0u);

  options.prefix_caching = true;
  auto warm = make_engine(options);
  auto a = warm->submit(first);
  warm->run_until_idle();
  EXPECT_EQ(warm->metrics().prefix_hit_tokens(), 0u);
  EXPECT_GT(warm->stats().kv_blocks_cached, 0);
  auto got = warm->submit(second);
  warm->run_until_idle();
  // Every whole block of the shared 1,000 tokens (and of "\n\n", the same in both).
  const int block = options.block_size;
  size_t common = 0;
  while (common < first.prompt.size() && first.prompt[common] == second.prompt[common]) ++common;
  EXPECT_GE(common, 1000u);
  EXPECT_EQ(warm->metrics().prefix_hit_tokens(), common / block * block);
  EXPECT_EQ(warm->metrics().prefix_lookup_tokens(), first.prompt.size() + second.prompt.size());
  expect_same_outcome(*got, *want, 1e-5f);
  EXPECT_EQ(warm->stats().kv_blocks_used, 0);
}

// Eight requests with one 200-token prefix arrive at once: the first computes
// it, the others wait a step and share it, and each says what it says alone.
TEST(Engine, ABurstWithOnePrefixComputesItOnce) {
  const std::vector<int32_t> prefix = shakespeare_tokens(200);
  const char* questions[] = {"\nA:", "\nB:", "\nC:", "\nD:", "\nE:", "\nF:", "\nG:", "\nH:"};
  EngineOptions options;
  options.max_total_tokens = 300;
  options.prefix_caching = false;
  auto plain = make_engine(options);
  options.prefix_caching = true;
  auto cached = make_engine(options);
  std::vector<std::shared_ptr<RequestHandle>> want, got;
  for (const char* q : questions) {
    want.push_back(plain->submit(with_question(prefix, q)));
    got.push_back(cached->submit(with_question(prefix, q)));
  }
  plain->run_until_idle();
  cached->run_until_idle();
  for (size_t i = 0; i < want.size(); ++i) expect_same_outcome(*got[i], *want[i], 1e-5f);
  EXPECT_EQ(cached->metrics().prefix_hit_tokens(), 7u * (200 / 16 * 16));
}

// A cache of 40 blocks of 4 tokens, far too small to keep every prompt: old
// prefixes are evicted and outputs stay exactly what they are without caching.
TEST(Engine, PrefixCacheEvictsUnderATinyCacheAndStaysExact) {
  EngineOptions tight = tight_options();
  tight.prefix_caching = false;
  auto plain = make_engine(tight);
  tight.prefix_caching = true;
  auto cached = make_engine(tight);
  const auto requests = mixed_requests();
  for (int round = 0; round < 2; ++round) {
    for (const GenerationRequest& r : requests) {
      auto want = plain->submit(r);
      plain->run_until_idle();
      auto got = cached->submit(r);
      cached->run_until_idle();
      expect_same_outcome(*got, *want, 0.0f);
    }
  }
  EXPECT_GT(cached->metrics().prefix_hit_tokens(), 0u);
  EXPECT_EQ(cached->stats().kv_blocks_used, 0);
  EXPECT_EQ(cached->stats().kv_blocks_free, cached->stats().kv_blocks_total);
}

// Two requests share a prefix; one is cancelled mid-generation, another is
// preempted and recomputed: the survivor's blocks stay intact (every output
// as alone) and every block comes back.
TEST(Engine, CancellationAndPreemptionNeverFreeASharedBlock) {
  const std::vector<int32_t> prefix = shakespeare_tokens(40);
  std::vector<GenerationRequest> requests;
  for (const char* q : {"\nROMEO:", "\nJULIET:", "\nMENENIUS:", "\nKING RICHARD III:"}) {
    requests.push_back(with_question(prefix, q));
    requests.back().params.max_new_tokens = 16;
  }
  std::vector<std::shared_ptr<RequestHandle>> alone;
  EngineOptions options = tight_options();  // 4-token blocks
  const ModelConfig c = ModelConfig::from_file(testing::bundled_model() + "/config.json");
  options.kv_cache_bytes = KvCache::block_bytes(c.num_layers, 4, c.num_heads, c.head_size) * 20;
  for (const auto& r : requests) {
    options.prefix_caching = false;
    auto e = make_engine(options);
    alone.push_back(e->submit(r));
    e->run_until_idle();
  }
  options.prefix_caching = true;
  auto engine = make_engine(options);
  auto doomed = engine->submit(requests[0]);
  std::vector<std::shared_ptr<RequestHandle>> together;
  for (size_t i = 1; i < requests.size(); ++i) together.push_back(engine->submit(requests[i]));
  for (int i = 0; i < 6; ++i) engine->step();
  doomed->cancel();
  engine->run_until_idle();
  for (size_t i = 1; i < requests.size(); ++i) expect_same_outcome(*together[i - 1], *alone[i], 0.0f);
  EXPECT_GT(engine->metrics().prefix_hit_tokens(), 0u);
  EXPECT_GT(engine->metrics().requests_by_outcome().count("preempted"), 0u);
  EXPECT_EQ(engine->stats().kv_blocks_free, engine->stats().kv_blocks_total);
}

TEST(Engine, CancellationReturnsEveryBlock) {
  auto engine = make_engine();
  const int total = engine->stats().kv_blocks_total;
  GenerationRequest r;
  r.prompt = shakespeare_tokenizer()->encode("ROMEO:");
  r.params.max_new_tokens = 200;
  r.params.ignore_eos_token = true;
  auto running = engine->submit(r);
  auto waiting = engine->submit(r);
  for (int i = 0; i < 5; ++i) engine->step();
  EXPECT_LT(engine->stats().kv_blocks_free, total);
  running->cancel();
  waiting->cancel();
  engine->run_until_idle();
  EXPECT_EQ(engine->stats().kv_blocks_free, total);
  EXPECT_EQ(drain(*running).final_event.finish_reason, FinishReason::Cancelled);
  EXPECT_EQ(drain(*waiting).final_event.finish_reason, FinishReason::Cancelled);
}

TEST(Engine, StopSequenceMatchesAcrossTokens) {
  auto engine = make_engine();
  GenerationRequest r;
  r.prompt = shakespeare_tokenizer()->encode("ROMEO:");
  r.params.max_new_tokens = 48;
  r.params.stop = {"lord, I'll"};  // spans several tokens of the greedy text
  auto handle = engine->submit(r);
  engine->run_until_idle();
  const Outcome out = drain(*handle);
  EXPECT_EQ(out.final_event.finish_reason, FinishReason::StopSequence);
  EXPECT_EQ(out.final_event.generated_text, "\nO, my lord, I'll");
}

TEST(Engine, EndOfSequenceStopsUnlessIgnored) {
  // Force the eos token (id 0) with negative penalties, a bonus for seen tokens.
  auto engine = make_engine();
  GenerationRequest r;
  // Ten eos tokens in the prompt: frequency and presence penalties of -2
  // lift eos by 22 logits, so greedy decoding picks it at once.
  r.prompt = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 51, 14519, 48, 27};
  r.params.presence_penalty = -2.0;
  r.params.frequency_penalty = -2.0;
  r.params.max_new_tokens = 30;
  auto h1 = engine->submit(r);
  r.params.ignore_eos_token = true;
  auto h2 = engine->submit(r);
  engine->run_until_idle();
  const Outcome stopped = drain(*h1), ignored = drain(*h2);
  // Greedy, so deterministic: the boosted eos does come up, and only the run
  // that ignores it goes on to the length limit.
  ASSERT_NE(std::find(ignored.tokens.begin(), ignored.tokens.end(), 0), ignored.tokens.end());
  EXPECT_EQ(stopped.final_event.finish_reason, FinishReason::EosToken);
  EXPECT_EQ(stopped.tokens.back(), 0);
  EXPECT_LT(stopped.tokens.size(), 30u);
  EXPECT_EQ(ignored.final_event.finish_reason, FinishReason::Length);
  EXPECT_EQ(ignored.tokens.size(), 30u);
}

TEST(Engine, RefusesWhatCanNeverRun) {
  EngineOptions o;
  o.max_total_tokens = 32;
  o.max_concurrent_requests = 2;
  auto engine = make_engine(o);
  GenerationRequest r;
  r.prompt = std::vector<int32_t>(40, 5);
  EXPECT_THROW(engine->submit(r), Error);  // longer than max_input_length
  r.prompt = {5, 6};
  r.params.max_new_tokens = 31;
  EXPECT_THROW(engine->submit(r), Error);  // prompt + new > max_total_tokens
  r.params.max_new_tokens = 4;
  r.params.top_p = 1.5;
  try {
    engine->submit(r);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("top_p"), std::string::npos);
  }
  r.params.top_p.reset();
  r.prompt = {};
  EXPECT_THROW(engine->submit(r), Error);
  r.prompt = {5};
  engine->submit(r);
  engine->submit(r);
  EXPECT_THROW(engine->submit(r), OverloadedError);
  engine->run_until_idle();
  EXPECT_NO_THROW(engine->submit(r));  // room again once they finished
}

TEST(Engine, PromptLogprobsMatchTheReferenceLogits) {
  // neox-parallel with the real tokenizer: ids < 1000 decode fine.
  EngineOptions options;
  options.kv_cache_bytes = 8u << 20;
  options.max_total_tokens = 64;
  auto engine = std::make_unique<Engine>(GptNeoxModel::load(testing::fixture_model("neox-parallel")),
                                         shakespeare_tokenizer(), options);
  const auto ref = testing::load_reference(testing::fixture_model("neox-parallel"));
  GenerationRequest r;
  r.prompt = ref.prompts[2];
  r.params.max_new_tokens = 2;
  r.params.decoder_input_details = true;
  r.params.top_n_tokens = 3;
  auto handle = engine->submit(r);
  engine->run_until_idle();
  const Outcome out = drain(*handle);
  const auto logits = ref.logits(2);
  const int vocab = 1000;
  ASSERT_EQ(out.final_event.prefill.size(), r.prompt.size());
  EXPECT_FALSE(out.final_event.prefill[0].logprob.has_value());
  for (size_t i = 1; i < r.prompt.size(); ++i) {
    const float want = Sampler::logprob_of(logits.data() + (i - 1) * vocab, vocab, r.prompt[i]);
    EXPECT_NEAR(*out.final_event.prefill[i].logprob, want, 1e-3) << i;
  }
  EXPECT_EQ(out.tokens[0], ref.greedy[2][0]);
  EXPECT_NEAR(out.logprobs[0],
              Sampler::logprob_of(logits.data() + (r.prompt.size() - 1) * vocab, vocab, out.tokens[0]), 1e-3);
}

TEST(Engine, NanLogitsFailTheRequestNotTheEngine) {
  // A copy of the bundled model with one NaN in the final layer norm: every
  // row's logits become NaN. The request fails with a clear error, its blocks
  // come back, and the engine goes on.
  namespace fs = std::filesystem;
  const std::string dir = testing::make_temp_dir("nan-model");
  for (const char* f : {"config.json", "tokenizer.json"})
    fs::copy_file(testing::bundled_model() + "/" + f, dir + "/" + f);
  std::ifstream in(testing::bundled_model() + "/model.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  uint64_t len;
  std::memcpy(&len, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, len));
  const auto& entry = header["gpt_neox.final_layer_norm.weight"];
  ASSERT_EQ(entry["dtype"], "F16");
  const uint16_t f16_nan = 0x7e00;
  std::memcpy(&bytes[8 + len + entry["data_offsets"][0].get<size_t>()], &f16_nan, 2);
  std::ofstream(dir + "/model.safetensors", std::ios::binary) << bytes;

  EngineOptions options;
  options.kv_cache_bytes = 16u << 20;
  options.max_total_tokens = 256;
  Engine engine(GptNeoxModel::load(dir), shakespeare_tokenizer(), options);
  const int total = engine.stats().kv_blocks_total;
  GenerationRequest r;
  r.prompt = shakespeare_tokenizer()->encode("ROMEO:");
  r.params.max_new_tokens = 5;
  auto handle = engine.submit(r);
  engine.run_until_idle();
  const Outcome out = drain(*handle);
  EXPECT_TRUE(out.tokens.empty());  // nothing sampled from garbage
  RequestEvent last;
  auto again = engine.submit(r);
  engine.run_until_idle();
  while (again->next(last, std::chrono::milliseconds(0))) {
  }
  EXPECT_EQ(last.kind, RequestEvent::Kind::Failed);
  EXPECT_NE(last.error.find("NaN or infinite logits"), std::string::npos) << last.error;
  EXPECT_EQ(last.error_status, 500);
  EXPECT_EQ(engine.stats().kv_blocks_free, total);
  fs::remove_all(dir);
}

TEST(Engine, AbortAllEndsEveryRequestWith503AndRefusesNewOnes) {
  auto engine = make_engine();
  const int total = engine->stats().kv_blocks_total;
  GenerationRequest r;
  r.prompt = shakespeare_tokenizer()->encode("ROMEO:");
  r.params.max_new_tokens = 100;
  auto running = engine->submit(r);
  engine->step();
  auto waiting = engine->submit(r);
  engine->abort_all("shutting down");
  for (auto* h : {running.get(), waiting.get()}) {
    RequestEvent e, last;
    while (h->next(e, std::chrono::milliseconds(0))) last = e;
    EXPECT_EQ(last.kind, RequestEvent::Kind::Failed);
    EXPECT_EQ(last.error_status, 503);
    EXPECT_EQ(last.error, "shutting down");
  }
  EXPECT_THROW(engine->submit(r), ShuttingDownError);
  EXPECT_EQ(engine->stats().kv_blocks_free, total);
}

TEST(Engine, AdapterCapRotatesInsteadOfStarving) {
  // One adapter at a time: requests for lora-a keep arriving, one for lora-b
  // arrives in between. lora-b must run before the lora-a requests that came
  // after it (first come, first served across adapters), not after all of them.
  const std::string base = testing::fixture_model("neox-parallel");
  auto model = GptNeoxModel::load(base);
  auto a = LoraAdapter::load(base + "/adapters/lora-a", "a", model->config());
  auto b = LoraAdapter::load(base + "/adapters/lora-b", "b", model->config());
  EngineOptions options;
  options.kv_cache_bytes = 8u << 20;
  options.max_total_tokens = 64;
  options.max_active_adapters = 1;
  Engine engine(std::move(model), shakespeare_tokenizer(), options);
  auto request = [](std::shared_ptr<const LoraAdapter> adapter) {
    GenerationRequest r;
    r.prompt = {5, 7, 9, 11};
    r.params.max_new_tokens = 6;
    r.params.ignore_eos_token = true;
    r.adapter = std::move(adapter);
    return r;
  };
  std::vector<std::shared_ptr<RequestHandle>> early, late;
  for (int i = 0; i < 3; ++i) early.push_back(engine.submit(request(a)));
  engine.step();  // the first lora-a requests run
  auto for_b = engine.submit(request(b));
  for (int i = 0; i < 3; ++i) late.push_back(engine.submit(request(a)));
  engine.run_until_idle();
  auto final_event = [](RequestHandle& h) {
    RequestEvent e, last;
    while (h.next(e, std::chrono::milliseconds(0))) last = e;
    EXPECT_EQ(last.kind, RequestEvent::Kind::Finished);
    return last;
  };
  const RequestEvent b_done = final_event(*for_b);
  // lora-b waited for the earlier lora-a requests (one adapter at a time) ...
  for (auto& h : early) EXPECT_LE(final_event(*h).finished_at, b_done.started_at);
  // ... and the later lora-a requests waited for lora-b.
  for (auto& h : late) EXPECT_GE(final_event(*h).started_at, b_done.finished_at) << "lora-a jumped ahead of lora-b";
  EXPECT_EQ(engine.stats().kv_blocks_free, engine.stats().kv_blocks_total);
}

TEST(Engine, AdapterRequestsAreBatchInvariant) {
  // The same seeded lora-b request alone and beside base and lora-a requests.
  const std::string base = testing::fixture_model("neox-parallel");
  auto make = [&] {
    EngineOptions options;
    options.kv_cache_bytes = 8u << 20;
    options.max_total_tokens = 64;
    return std::make_unique<Engine>(GptNeoxModel::load(base), shakespeare_tokenizer(), options);
  };
  auto model_config = GptNeoxModel::load(base)->config();
  auto a = LoraAdapter::load(base + "/adapters/lora-a", "a", model_config);
  auto b = LoraAdapter::load(base + "/adapters/lora-b", "b", model_config);
  GenerationRequest r;
  r.prompt = {3, 1, 4, 1, 5, 9, 2, 6};
  r.params.max_new_tokens = 12;
  r.params.do_sample = true;
  r.params.seed = 11;
  r.params.ignore_eos_token = true;
  r.adapter = b;
  auto alone_engine = make();
  auto alone = alone_engine->submit(r);
  alone_engine->run_until_idle();
  auto mixed_engine = make();
  std::vector<std::shared_ptr<RequestHandle>> others;
  for (auto adapter : {std::shared_ptr<const LoraAdapter>(), a, b}) {
    GenerationRequest o = r;
    o.prompt = {8, 8, 2};
    o.adapter = adapter;
    others.push_back(mixed_engine->submit(o));
  }
  mixed_engine->step();
  auto mixed = mixed_engine->submit(r);
  mixed_engine->run_until_idle();
  EXPECT_EQ(drain(*alone).tokens, drain(*mixed).tokens);
}

TEST(Sampler, AnyPositiveTemperatureIsFiniteAndTinyOnesAreGreedy) {
  // 1e-300 once overflowed to inf - inf = NaN and picked the last token.
  const std::vector<float> base = {1.0f, 3.0f, 2.0f, 0.5f, 2.9f, -1.0f};
  TokenCounts none;
  std::mt19937_64 rng(3);
  for (double t : {1e-300, 1e-30, 1e-8}) {
    for (int i = 0; i < 20; ++i) {
      SamplingParams p;
      p.do_sample = true;
      p.temperature = t;
      p.top_n_tokens = 2;
      std::vector<float> l = base;
      const TokenChoice c = Sampler::choose(l.data(), 6, p, none, rng);
      EXPECT_EQ(c.id, 1) << t;
      EXPECT_EQ(c.logprob, 0.0f);
      for (const auto& [id, lp] : c.top) EXPECT_FALSE(std::isnan(lp));
    }
  }
  SamplingParams huge;  // a huge temperature is uniform, still finite
  huge.temperature = 1e300;
  std::vector<float> l = base;
  const TokenChoice c = Sampler::choose(l.data(), 6, huge, none, rng);
  EXPECT_NEAR(c.logprob, -std::log(6.0f), 1e-5);
}

// Greedy without log-probabilities takes the same token and reports 0, with
// and without a grammar; asking for alternatives computes it anyway.
TEST(Sampler, GreedySkipsTheLogSoftmaxWhenNotAsked) {
  const std::vector<float> base = {1.0f, 3.0f, 2.0f, 0.5f, 2.9f, -1.0f};
  TokenCounts none;
  std::mt19937_64 rng(1);
  Sampler::Constraint not_one{[](int32_t id) { return id != 1; }, [] {
                                static const uint64_t allowed = 0b111101;
                                return &allowed;
                              }};
  const std::vector<const Sampler::Constraint*> constraints = {nullptr, &not_one};
  for (const Sampler::Constraint* constraint : constraints) {
    SamplingParams with, without, alternatives;
    without.logprobs = false;
    alternatives.logprobs = false;
    alternatives.top_n_tokens = 2;
    std::vector<float> a = base, b = base, c = base;
    const TokenChoice asked = Sampler::choose(a.data(), 6, with, none, rng, constraint);
    const TokenChoice plain = Sampler::choose(b.data(), 6, without, none, rng, constraint);
    const TokenChoice alts = Sampler::choose(c.data(), 6, alternatives, none, rng, constraint);
    EXPECT_EQ(asked.id, constraint ? 4 : 1);
    EXPECT_EQ(plain.id, asked.id);
    EXPECT_LT(asked.logprob, 0.0f);
    EXPECT_EQ(plain.logprob, 0.0f);
    EXPECT_EQ(alts.logprob, asked.logprob);
    EXPECT_EQ(alts.top.size(), 2u);
  }
}

TEST(Sampler, FiltersAndSeeds) {
  const int vocab = 6;
  const std::vector<float> base = {1.0f, 3.0f, 2.0f, 0.5f, 2.9f, -1.0f};
  TokenCounts none;
  std::mt19937_64 rng(1);
  auto choose = [&](SamplingParams p, std::mt19937_64& r) {
    std::vector<float> l = base;
    return Sampler::choose(l.data(), vocab, p, none, r);
  };
  SamplingParams greedy;
  EXPECT_EQ(choose(greedy, rng).id, 1);
  SamplingParams k1;
  k1.top_k = 1;
  k1.temperature = 5.0;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(choose(k1, rng).id, 1);  // top_k 1 is greedy
  SamplingParams top_p;
  top_p.top_p = 0.01;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(choose(top_p, rng).id, 1);
  SamplingParams k2;
  k2.top_k = 2;
  std::map<int, int> seen;
  for (int i = 0; i < 200; ++i) ++seen[choose(k2, rng).id];
  EXPECT_EQ(seen.size(), 2u);  // only tokens 1 and 4
  EXPECT_TRUE(seen.count(1) && seen.count(4));
  SamplingParams seeded;
  seeded.do_sample = true;
  std::mt19937_64 a(99), b(99);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(choose(seeded, a).id, choose(seeded, b).id);
  // Repetition penalty divides positive scores of seen tokens.
  TokenCounts seen1;
  seen1.add(1);
  SamplingParams rep;
  rep.repetition_penalty = 2.0;
  std::vector<float> l = base;
  EXPECT_EQ(Sampler::choose(l.data(), vocab, rep, seen1, rng).id, 4);
  // Greedy logprob and top-n alternatives come from the same distribution.
  SamplingParams top3;
  top3.top_n_tokens = 3;
  const TokenChoice c = choose(top3, rng);
  ASSERT_EQ(c.top.size(), 3u);
  EXPECT_EQ(c.top[0].first, 1);
  EXPECT_EQ(c.top[1].first, 4);
  EXPECT_FLOAT_EQ(c.top[0].second, c.logprob);
  double total = 0;
  for (float v : base) total += std::exp(v);
  EXPECT_NEAR(c.logprob, 3.0 - std::log(total), 1e-5);
}

// Log-probabilities over a full vocabulary stay within 1e-6 of a double
// log-softmax on every instruction set, with the same bits on each (one float
// running total over 50k terms was off by 6e-5), however wide the logits spread.
TEST(Sampler, LogprobOverAFullVocabularyIsAccurateAndTheSameOnEveryIsa) {
  const int32_t vocab = 50304;
  std::mt19937 gen(5);
  for (float spread : {0.5f, 3.0f, 30.0f}) {
    std::normal_distribution<float> dist(0.0f, spread);
    std::vector<float> logits(static_cast<size_t>(vocab));
    for (float& v : logits) v = dist(gen);
    const float max = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (float v : logits) sum += std::exp(static_cast<double>(v) - max);
    for (int32_t id : {0, 7, vocab - 1}) {
      const double want = logits[static_cast<size_t>(id)] - (max + std::log(sum));
      std::vector<float> got;
      for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
        if (static_cast<int>(isa) > static_cast<int>(supported_isa())) continue;
        limit_isa(isa);
        got.push_back(Sampler::logprob_of(logits.data(), vocab, id));
      }
      limit_isa(Isa::Avx512);  // back to the best this CPU has
      EXPECT_NEAR(got[0], want, 1e-6 * std::max(1.0, std::fabs(want))) << "spread " << spread << ", id " << id;
      for (float g : got) EXPECT_EQ(g, got[0]);
    }
  }
}

TEST(SamplingParams, RefusalsNameTheParameter) {
  auto refuses = [](SamplingParams p, const std::string& name) {
    try {
      p.validate();
      ADD_FAILURE() << name << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  SamplingParams p;
  p.temperature = -1;
  refuses(p, "temperature");
  p = {};
  p.top_k = 0;
  refuses(p, "top_k");
  p = {};
  p.typical_p = 0;
  refuses(p, "typical_p");
  p = {};
  p.repetition_penalty = 0;
  refuses(p, "repetition_penalty");
  p = {};
  p.frequency_penalty = 3;
  refuses(p, "frequency_penalty");
  p = {};
  p.max_new_tokens = 0;
  refuses(p, "max_new_tokens");
  p = {};
  p.top_n_tokens = 11;
  refuses(p, "top_n_tokens");
  p = {};
  p.stop = {""};
  refuses(p, "stop");
}

}  // namespace
}  // namespace flashneox
