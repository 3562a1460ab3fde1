// Speculative decoding, by prompt lookup and with a draft model: the
// proposer's guesses, and an engine that speculates giving exactly the tokens
// (and log-probabilities, texts, finish reasons) of one that does not, greedy
// or sampled, under batching, preemption, chunked prefill, LoRA adapters,
// stop sequences and length limits, on the bundled model and every fixture
// model; and sampled tokens that keep the model's distribution where guesses
// are fed, accepted and rejected (a chi-square test).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/engine.h"
#include "engine/ngram_proposer.h"
#include "lora/random_adapter.h"
#include "model/sequence_batch.h"
#include "test_support.h"

namespace flashneox {
namespace {

TEST(NgramProposer, ProposesWhatFollowedTheLongestMostRecentMatch) {
  std::vector<int32_t> out;
  // "2 3 4" occurred at 1: what followed it, up to the end of the text.
  EXPECT_EQ(propose_by_ngram({1, 2, 3, 4, 5, 9, 2, 3, 4}, 3, out), 3);
  EXPECT_EQ(out, (std::vector<int32_t>{5, 9, 2}));
  out.clear();
  EXPECT_EQ(propose_by_ngram({1, 2, 3, 4, 5, 9, 2, 3, 4}, 10, out), 5);
  EXPECT_EQ(out, (std::vector<int32_t>{5, 9, 2, 3, 4}));
  // No earlier "2 3 4": the two-token suffix "3 4", most recent first (at 5, not at 1).
  out.assign(1, 77);  // appends after what is there
  EXPECT_EQ(propose_by_ngram({7, 3, 4, 8, 1, 3, 4, 9, 2, 3, 4}, 2, out), 2);
  EXPECT_EQ(out, (std::vector<int32_t>{77, 9, 2}));
  out.clear();
  EXPECT_EQ(propose_by_ngram({1, 2, 3, 4}, 4, out), 0);  // nothing repeats
  EXPECT_EQ(propose_by_ngram({5}, 4, out), 0);
  EXPECT_EQ(propose_by_ngram({}, 4, out), 0);
  EXPECT_EQ(propose_by_ngram({5, 5}, 0, out), 0);
  EXPECT_TRUE(out.empty());
}

std::shared_ptr<const Tokenizer> shakespeare_tokenizer() {
  static std::shared_ptr<const Tokenizer> t = Tokenizer::from_file(testing::bundled_model() + "/tokenizer.json");
  return t;
}

struct Outcome {
  std::vector<RequestEvent> tokens;
  RequestEvent final_event;
};

Outcome drain(RequestHandle& handle) {
  Outcome out;
  RequestEvent e;
  while (handle.next(e, std::chrono::milliseconds(0)))
    (e.kind == RequestEvent::Kind::Token ? out.tokens.emplace_back() : out.final_event) = e;
  EXPECT_TRUE(handle.done());
  return out;
}

void expect_same(const Outcome& got, const Outcome& want, const std::string& what) {
  ASSERT_EQ(got.tokens.size(), want.tokens.size()) << what;
  for (size_t i = 0; i < got.tokens.size(); ++i) {
    EXPECT_EQ(got.tokens[i].token.id, want.tokens[i].token.id) << what << ", token " << i;
    EXPECT_EQ(got.tokens[i].token.logprob, want.tokens[i].token.logprob) << what << ", token " << i;
  }
  EXPECT_EQ(got.final_event.generated_text, want.final_event.generated_text) << what;
  EXPECT_EQ(got.final_event.finish_reason, want.final_event.finish_reason) << what;
}

// Greedy and seeded sampled requests (penalties, filters), prompts that quote
// themselves (where guesses hold), stop sequences and short length limits.
std::vector<GenerationRequest> requests() {
  const char* prompts[] = {
      "ROMEO:",
      "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\nFirst Citizen:\nBefore we "
      "proceed any further, hear me speak.",
      "KING RICHARD III:\nNow is the winter of our discontent\nMade glorious summer by this sun of York;\n\nKING "
      "RICHARD III:\nNow is the winter of",
      "JULIET:\nWherefore art thou", "O Romeo, Romeo, Romeo, Romeo,", "MENENIUS:\nI tell you, friends,"};
  std::vector<GenerationRequest> out;
  for (int i = 0; i < 12; ++i) {
    GenerationRequest r;
    r.prompt = shakespeare_tokenizer()->encode(prompts[i % 6]);
    r.params.max_new_tokens = 6 + (i * 7) % 29;
    r.params.ignore_eos_token = true;
    if (i % 4 == 3) r.params.stop = {"lord"};
    if (i % 3 == 1) {
      r.params.do_sample = true;
      r.params.seed = 500 + i;
      r.params.temperature = 0.5 + 0.2 * (i % 3);
      if (i % 2) r.params.top_k = 20;
      if (i % 5 == 0) r.params.repetition_penalty = 1.3;
    }
    out.push_back(r);
  }
  return out;
}

std::unique_ptr<Engine> bundled_engine(EngineOptions options) {
  if (options.kv_cache_bytes == 0) options.kv_cache_bytes = 64u << 20;
  if (options.max_total_tokens == 0) options.max_total_tokens = 256;
  return std::make_unique<Engine>(GptNeoxModel::load(testing::bundled_model()), shakespeare_tokenizer(), options);
}

// Each request alone without speculation, then all of them in a staggered
// batch that speculates (`options.speculate`), with adapter i % 3 (0: none).
void expect_speculation_changes_nothing(EngineOptions options, bool expect_preemption) {
  const ModelConfig c = ModelConfig::from_file(testing::bundled_model() + "/config.json");
  const std::vector<std::shared_ptr<const LoraAdapter>> adapters = {nullptr, random_lora_adapter(c, 8, 1, 0.05f),
                                                                    random_lora_adapter(c, 4, 2, 0.05f)};
  auto reqs = requests();
  for (size_t i = 0; i < reqs.size(); ++i) reqs[i].adapter = adapters[i % adapters.size()];
  std::vector<Outcome> plain;
  for (const auto& r : reqs) {
    auto engine = bundled_engine({});
    auto handle = engine->submit(r);
    engine->run_until_idle();
    plain.push_back(drain(*handle));
  }
  auto engine = bundled_engine(options);
  const int total_blocks = engine->stats().kv_blocks_total;
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (size_t i = 0; i < reqs.size(); ++i) {
    handles.push_back(engine->submit(reqs[i]));
    if (i % 3 == 2) engine->step();
  }
  engine->run_until_idle();
  for (size_t i = 0; i < reqs.size(); ++i) expect_same(drain(*handles[i]), plain[i], "request " + std::to_string(i));
  const EngineMetrics& m = engine->metrics();
  EXPECT_GT(m.speculated_tokens(), 0u);
  EXPECT_GT(m.accepted_speculated_tokens(), 0u);
  EXPECT_LT(m.accepted_speculated_tokens(), m.speculated_tokens());
  const auto by_outcome = m.requests_by_outcome();
  EXPECT_EQ(by_outcome.count("preempted") && by_outcome.at("preempted") > 0, expect_preemption);
  EXPECT_EQ(engine->stats().kv_blocks_free, total_blocks);
}

TEST(Speculation, GivesTheTokensOfPlainDecoding) {
  EngineOptions options;
  options.speculate = 5;
  expect_speculation_changes_nothing(options, false);
}

// 40 blocks of 4 tokens, far fewer than the batch needs (preemption), and a
// prefill budget of 24 tokens (chunked prefill), 3 guesses a step.
EngineOptions tight_options() {
  EngineOptions tight;
  tight.speculate = 3;
  tight.block_size = 4;
  tight.max_total_tokens = 128;
  const ModelConfig c = ModelConfig::from_file(testing::bundled_model() + "/config.json");
  tight.kv_cache_bytes = KvCache::block_bytes(c.num_layers, 4, c.num_heads, c.head_size) * 40;
  tight.max_batch_prefill_tokens = 24;
  tight.max_batch_total_tokens = 4096;
  return tight;
}

TEST(Speculation, GivesTheTokensOfPlainDecodingUnderPreemptionAndChunkedPrefill) {
  expect_speculation_changes_nothing(tight_options(), true);
}

// The bundled model as its own draft: every greedy guess holds, sampled ones
// only where the sample agrees; the tokens are plain decoding's either way.
TEST(Speculation, ADraftModelGivesTheTokensOfPlainDecoding) {
  EngineOptions options;
  options.draft_model = GptNeoxModel::load(testing::bundled_model());
  expect_speculation_changes_nothing(options, false);
}

TEST(Speculation, ADraftModelGivesTheTokensOfPlainDecodingUnderPreemption) {
  EngineOptions tight = tight_options();
  tight.draft_model = GptNeoxModel::load(testing::bundled_model());
  expect_speculation_changes_nothing(tight, true);
}

// A draft of random weights (the full-vocabulary fixture) guesses wrong
// nearly always: nothing changes but the speed. One of another vocabulary is refused.
TEST(Speculation, AWrongDraftChangesNothingAndAForeignOneIsRefused) {
  EngineOptions options;
  options.draft_model = GptNeoxModel::load(testing::fixture_model("neox-fullvocab"));
  auto engine = bundled_engine(options);
  auto plain = bundled_engine({});
  const auto reqs = requests();
  std::vector<std::shared_ptr<RequestHandle>> got, want;
  for (int i = 0; i < 4; ++i) {
    got.push_back(engine->submit(reqs[static_cast<size_t>(i)]));
    want.push_back(plain->submit(reqs[static_cast<size_t>(i)]));
  }
  engine->run_until_idle();
  plain->run_until_idle();
  for (int i = 0; i < 4; ++i) expect_same(drain(*got[i]), drain(*want[i]), "request " + std::to_string(i));
  EXPECT_GT(engine->metrics().speculated_tokens(), 0u);
  EXPECT_EQ(engine->stats().kv_blocks_free, engine->stats().kv_blocks_total);
  options.draft_model = GptNeoxModel::load(testing::fixture_model("neox-parallel"));  // 1,000 entries
  try {
    bundled_engine(options);
    ADD_FAILURE() << "a draft of another vocabulary was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary"), std::string::npos) << e.what();
  }
}

// The draft trained for the bundled model (tests/data/draft-shakespeare):
// the same tokens, and its guesses hold often (it agrees with the bundled
// model's greedy choice on about half the held-out tokens).
TEST(Speculation, TheTrainedDraftGuessesRightOften) {
  EngineOptions options;
  options.draft_model = GptNeoxModel::load(testing::test_data("draft-shakespeare"));
  auto engine = bundled_engine(options);
  auto plain = bundled_engine({});
  std::vector<std::shared_ptr<RequestHandle>> got, want;
  for (const char* prompt : {"ROMEO:", "JULIET:\nWherefore art thou", "KING RICHARD III:\nNow is the winter of"}) {
    GenerationRequest r;
    r.prompt = shakespeare_tokenizer()->encode(prompt);
    r.params.max_new_tokens = 40;
    r.params.ignore_eos_token = true;
    got.push_back(engine->submit(r));
    want.push_back(plain->submit(r));
  }
  engine->run_until_idle();
  plain->run_until_idle();
  for (size_t i = 0; i < got.size(); ++i) expect_same(drain(*got[i]), drain(*want[i]), "prompt " + std::to_string(i));
  const EngineMetrics& m = engine->metrics();
  EXPECT_GT(m.accepted_speculated_tokens(), m.speculated_tokens() / 4)
      << m.accepted_speculated_tokens() << " of " << m.speculated_tokens();
}

TEST(Speculation, ARequestTurnsItOnOrOff) {
  GenerationRequest r = requests()[1];  // a prompt that repeats itself
  for (const auto& [engine_default, request, speculates] :
       {std::tuple{0, std::optional<int>{}, false}, {0, std::optional<int>{4}, true},
        {4, std::optional<int>{0}, false}, {4, std::optional<int>{}, true}}) {
    EngineOptions options;
    options.speculate = engine_default;
    auto engine = bundled_engine(options);
    r.params.speculate = request;
    auto handle = engine->submit(r);
    engine->run_until_idle();
    drain(*handle);
    EXPECT_EQ(engine->metrics().speculated_tokens() > 0, speculates) << engine_default;
  }
  r.params.speculate = kMaxSpeculate + 1;
  EXPECT_THROW(bundled_engine({})->submit(r), Error);
}

// The model's last-row logits for `tokens`, one prefill on a fresh cache.
std::vector<float> last_logits(GptNeoxModel& model, const std::vector<int32_t>& tokens) {
  const int block_size = 16;
  auto cache = model.make_cache(blocks_for(static_cast<int>(tokens.size()), block_size), block_size);
  std::vector<int32_t> blocks(static_cast<size_t>(cache->num_blocks()));
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<int32_t>(i);
  SequenceStep step{tokens.data(), static_cast<int>(tokens.size()), 0, &blocks, false};
  return model.forward(make_batch({step}, block_size, true), *cache).logits;
}

// What a sampled request draws from: softmax(logits / t) over the k largest.
std::map<int32_t, double> top_k_distribution(const std::vector<float>& logits, int k, double t) {
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  std::map<int32_t, double> p;
  double sum = 0;
  for (int i = 0; i < k; ++i) sum += p[ids[i]] = std::exp((logits[ids[i]] - logits[ids[0]]) / t);
  for (auto& [id, q] : p) q /= sum;
  return p;
}

// Pearson's statistic of `counts` against `p`; categories expected fewer than 5
// times are pooled. Fails the test when it passes the 1e-4 critical value.
void expect_fits(const std::map<int32_t, int>& counts, const std::map<int32_t, double>& p, const std::string& what) {
  int n = 0;
  for (const auto& [id, c] : counts) {
    EXPECT_TRUE(p.count(id)) << what << ": token " << id << " lies outside the top-k";
    n += c;
  }
  ASSERT_GT(n, 0) << what;
  double stat = 0, pooled_expected = 0, pooled_seen = 0;
  int categories = 0;
  for (const auto& [id, q] : p) {
    const double expected = q * n;
    const double seen = counts.count(id) ? counts.at(id) : 0;
    if (expected < 5) {
      pooled_expected += expected;
      pooled_seen += seen;
      continue;
    }
    stat += (seen - expected) * (seen - expected) / expected;
    ++categories;
  }
  if (pooled_expected >= 5) {
    stat += (pooled_seen - pooled_expected) * (pooled_seen - pooled_expected) / pooled_expected;
    ++categories;
  }
  // Chi-square quantiles at 1 - 1e-4, by degrees of freedom (categories - 1).
  const double critical[] = {0, 15.14, 18.42, 21.11, 23.51, 25.74, 27.86, 29.88, 31.83};
  ASSERT_GE(categories, 2) << what;
  EXPECT_LT(stat, critical[categories - 1]) << what << ": chi-square " << stat << " over " << n << " draws, "
                                            << categories << " categories";
}

// Sampling stays a draw from the model's distribution when guesses are fed.
// The prompt opens with "a b c d" and ends with "a b": after a first token c
// the lookup guesses d (and what followed it), so the second token is sampled
// from a row that carries a guess, and the third either beside the accepted d
// in the same forward or, after a rejection, in a later step. 4,000 seeded
// requests on a fixture's 1,000-token vocabulary, top-k 8: the frequencies of
// each fit the model's probabilities (chi-square).
TEST(Speculation, SampledTokensKeepTheModelsDistribution) {
  const std::string dir = testing::fixture_model("neox-parallel");
  std::shared_ptr<GptNeoxModel> model = GptNeoxModel::load(dir);
  std::shared_ptr<const Tokenizer> tokenizer = Tokenizer::from_file(testing::test_data("pythia-tokenizer.json"));
  const int k = 8;
  const double temperature = 0.4;
  std::vector<int32_t> base;  // the longest reference prompt
  for (const auto& p : testing::load_reference(dir).prompts)
    if (p.size() > base.size()) base = p;
  ASSERT_GE(base.size(), 3u);
  const int32_t a = base[base.size() - 2], b = base.back();
  auto prompt_with = [&](int32_t c, int32_t d) {
    std::vector<int32_t> p = {a, b, c, d};
    p.insert(p.end(), base.begin(), base.end());
    return p;
  };
  auto plus = [](std::vector<int32_t> v, std::initializer_list<int32_t> more) {
    v.insert(v.end(), more);
    return v;
  };
  auto distribution = [&](const std::vector<int32_t>& tokens) {
    return top_k_distribution(last_logits(*model, tokens), k, temperature);
  };
  auto likeliest = [&](const std::vector<int32_t>& tokens) {
    const std::vector<float> l = last_logits(*model, tokens);
    return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
  };
  // c and d: the model's likeliest continuations of the prompt they open.
  int32_t c = likeliest(base), d = likeliest(plus(base, {c}));
  for (int i = 0; i < 4; ++i) {
    c = likeliest(prompt_with(c, d));
    d = likeliest(plus(prompt_with(c, d), {c}));
  }
  const std::vector<int32_t> prompt = prompt_with(c, d);
  const auto p_first = distribution(prompt);
  const auto p_after_c = distribution(plus(prompt, {c}));
  ASSERT_TRUE(p_first.count(c) && p_after_c.count(d));
  ASSERT_GT(p_first.at(c) * p_after_c.at(d), 0.03) << "the guess should hold often enough to count";

  EngineOptions options;
  options.speculate = 4;
  options.kv_cache_bytes = 32u << 20;
  options.max_total_tokens = static_cast<int>(prompt.size()) + 3;
  options.max_concurrent_requests = 512;
  const int requests = 4000;
  std::map<std::vector<int32_t>, int> counts[3];  // by the tokens before: {}, {t1}, {t1, t2}
  Engine engine(model, tokenizer, options);
  for (int start = 0; start < requests; start += 500) {
    std::vector<std::shared_ptr<RequestHandle>> handles;
    for (int i = start; i < start + 500; ++i) {
      GenerationRequest r;
      r.prompt = prompt;
      r.params.max_new_tokens = 3;
      r.params.ignore_eos_token = true;
      r.params.do_sample = true;
      r.params.seed = 1000 + i;
      r.params.temperature = temperature;
      r.params.top_k = k;
      handles.push_back(engine.submit(r));
    }
    engine.run_until_idle();
    for (auto& h : handles) {
      const Outcome o = drain(*h);
      ASSERT_EQ(o.tokens.size(), 3u);
      std::vector<int32_t> t;
      for (int j = 0; j < 3; ++j) {
        std::vector<int32_t> key = t;
        key.push_back(o.tokens[j].token.id);
        ++counts[j][key];
        t.push_back(o.tokens[j].token.id);
      }
    }
  }
  // The draws of position j that followed `before`, by token.
  auto draws = [&](const std::vector<int32_t>& before) {
    std::map<int32_t, int> out;
    for (const auto& [key, n] : counts[before.size()])
      if (std::equal(before.begin(), before.end(), key.begin())) out[key.back()] += n;
    return out;
  };
  const EngineMetrics& m = engine.metrics();
  EXPECT_GT(static_cast<double>(m.accepted_speculated_tokens()), 0.8 * p_first.at(c) * p_after_c.at(d) * requests);
  expect_fits(draws({}), p_first, "first token");
  expect_fits(draws({c}), p_after_c, "second token after a guess was fed");
  expect_fits(draws({c, d}), distribution(plus(prompt, {c, d})), "third token beside the accepted guess");
  // After a rejected guess: the likeliest second token other than d.
  const auto seconds = draws({c});
  int32_t other = -1;
  for (const auto& [id, n] : seconds)
    if (id != d && (other < 0 || n > seconds.at(other))) other = id;
  expect_fits(draws({c, other}), distribution(plus(prompt, {c, other})), "third token after a rejection");
}

// Every fixture model, greedy, its reference prompts decoded together: the
// same tokens with and without speculation.
TEST(Speculation, EveryFixtureModelDecodesTheSameTokens) {
  std::shared_ptr<const Tokenizer> tokenizer = Tokenizer::from_file(testing::test_data("pythia-tokenizer.json"));
  for (const std::string& name : testing::fixture_model_names()) {
    const std::string dir = testing::fixture_model(name);
    const auto ref = testing::load_reference(dir);
    std::shared_ptr<GptNeoxModel> model = GptNeoxModel::load(dir);
    size_t longest = 0;
    for (const auto& p : ref.prompts) longest = std::max(longest, p.size());
    const int new_tokens = 24;
    std::vector<Outcome> runs[2];
    for (int speculate : {0, 4}) {
      EngineOptions options;
      options.speculate = speculate;
      options.kv_cache_bytes = 16u << 20;
      const int wanted = static_cast<int>(longest) + new_tokens;
      options.max_total_tokens = model->config().rope_scaling == RopeScaling::Dynamic  // may pass the trained length
                                     ? wanted
                                     : std::min(model->config().max_position_embeddings, wanted);
      options.max_input_length = options.max_total_tokens - 1;
      Engine engine(model, tokenizer, options);
      std::vector<std::shared_ptr<RequestHandle>> handles;
      for (const auto& prompt : ref.prompts) {
        GenerationRequest r;
        r.prompt = prompt;
        r.params.max_new_tokens = std::max(1, options.max_total_tokens - static_cast<int>(prompt.size()));
        r.params.ignore_eos_token = true;
        handles.push_back(engine.submit(r));
      }
      engine.run_until_idle();
      for (auto& h : handles) runs[speculate > 0].push_back(drain(*h));
      // (Dynamic rope: its prompts already pass the trained length, where nothing is guessed.)
      if (speculate > 0 && model->config().rope_scaling != RopeScaling::Dynamic) {
        EXPECT_GT(engine.metrics().speculated_tokens(), 0u) << name;
      }
    }
    for (size_t i = 0; i < ref.prompts.size(); ++i) expect_same(runs[1][i], runs[0][i], name + " prompt " + std::to_string(i));
  }
}

}  // namespace
}  // namespace flashneox
