// Constrained decoding through the engine on the bundled model: every
// output a grammar completes is in its language (greedy and sampled, every
// filter), EOS comes only where the text is complete, a cut-off output says
// `length`, free requests batched with constrained ones keep their text, and
// a grammar past its budget fails alone.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "structured/grammar.h"
#include "test_support.h"

namespace flashneox {
namespace {

using json = nlohmann::ordered_json;

std::shared_ptr<const Tokenizer> tokenizer() {
  static std::shared_ptr<const Tokenizer> t = Tokenizer::from_file(testing::bundled_model() + "/tokenizer.json");
  return t;
}

std::unique_ptr<Engine> make_engine() {
  EngineOptions options;
  options.kv_cache_bytes = 64u << 20;
  options.max_total_tokens = 512;
  return std::make_unique<Engine>(GptNeoxModel::load(testing::bundled_model()), tokenizer(), options);
}

RequestEvent final_event(RequestHandle& handle) {
  RequestEvent e, last;
  while (handle.next(e, std::chrono::milliseconds(0)))
    if (e.kind != RequestEvent::Kind::Token) last = e;
  EXPECT_TRUE(handle.done());
  return last;
}

GenerationRequest request(const std::string& prompt, std::shared_ptr<Grammar> grammar, int max_new_tokens) {
  GenerationRequest r;
  r.prompt = tokenizer()->encode(prompt);
  r.params.max_new_tokens = max_new_tokens;
  r.params.grammar = std::move(grammar);
  return r;
}

TEST(ConstrainedDecoding, EveryCompletedOutputIsInTheLanguage) {
  auto engine = make_engine();
  const json schema = json::parse(R"({"type": "object", "properties": {
      "name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 120},
      "mood": {"enum": ["merry", "sad"]}, "lines": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3}},
      "required": ["name", "age", "mood"]})");
  std::vector<std::pair<std::shared_ptr<Grammar>, std::shared_ptr<RequestHandle>>> runs;
  for (int i = 0; i < 12; ++i) {
    auto grammar = i % 3 == 2 ? Grammar::from_regex("(Thou|You) art (a|an) [a-z]{1,12}( [a-z]{1,10}){0,3}[.!]")
                              : Grammar::from_json_schema(schema);
    GenerationRequest r = request(i % 2 ? "ROMEO:" : "JULIET:\nWhat is thy name?", grammar, 120);
    if (i > 0) {
      r.params.do_sample = true;
      r.params.seed = 7 + i;
      r.params.temperature = 1.0;
      if (i % 4 == 1) r.params.top_k = 20;
      if (i % 4 == 2) r.params.top_p = 0.9;
      if (i % 4 == 3) r.params.typical_p = 0.9;
      if (i % 5 == 4) r.params.repetition_penalty = 1.3;
    }
    r.params.top_n_tokens = i % 2 ? 3 : 0;
    runs.emplace_back(grammar, engine->submit(std::move(r)));
  }
  engine->run_until_idle();
  int complete = 0;
  for (auto& [grammar, handle] : runs) {
    const RequestEvent e = final_event(*handle);
    ASSERT_EQ(e.kind, RequestEvent::Kind::Finished) << e.error;
    if (e.finish_reason == FinishReason::Length) {
      EXPECT_FALSE(grammar->matches(e.generated_text)) << "a complete text must end as complete: " << e.generated_text;
      continue;
    }
    EXPECT_EQ(e.finish_reason, FinishReason::EosToken);
    EXPECT_TRUE(grammar->matches(e.generated_text)) << e.generated_text;
    ++complete;
  }
  EXPECT_GE(complete, 8);
  EXPECT_EQ(engine->stats().kv_blocks_used, 0);
}

TEST(ConstrainedDecoding, FreeRequestsKeepTheirTextInAMixedBatch) {
  GenerationRequest free_request;
  free_request.prompt = tokenizer()->encode("First Citizen:\nBefore we proceed");
  free_request.params.max_new_tokens = 30;
  free_request.params.ignore_eos_token = true;
  auto alone_engine = make_engine();
  auto alone = alone_engine->submit(free_request);
  alone_engine->run_until_idle();
  const std::string alone_text = final_event(*alone).generated_text;

  auto engine = make_engine();
  auto a = engine->submit(request("ROMEO:", Grammar::any_json_object(), 40));
  auto mixed = engine->submit(free_request);
  auto b = engine->submit(request("O", Grammar::from_regex("[0-9]{3}-[0-9]{4}"), 40));
  engine->run_until_idle();
  EXPECT_EQ(final_event(*mixed).generated_text, alone_text);
  const RequestEvent phone = final_event(*b);
  EXPECT_EQ(phone.finish_reason, FinishReason::EosToken);
  EXPECT_TRUE(Grammar::from_regex("[0-9]{3}-[0-9]{4}")->matches(phone.generated_text)) << phone.generated_text;
  final_event(*a);
}

TEST(ConstrainedDecoding, ACutOffOutputEndsWithLength) {
  auto engine = make_engine();
  auto h = engine->submit(request("ROMEO:", Grammar::from_regex("a{50}"), 5));
  engine->run_until_idle();
  const RequestEvent e = final_event(*h);
  EXPECT_EQ(e.finish_reason, FinishReason::Length);
  EXPECT_FALSE(e.generated_text.empty());
  EXPECT_EQ(e.generated_text.find_first_not_of('a'), std::string::npos) << e.generated_text;
}

TEST(ConstrainedDecoding, AGrammarPastItsBudgetFailsAloneAndTheEngineGoesOn) {
  // "An a, e or t 12 characters before the end": a DFA must remember which of
  // the last 13 characters were which, so one vocabulary walk passes the budget.
  auto engine = make_engine();
  GenerationRequest r = request("ROMEO:", Grammar::from_regex("(.*a.{12}|.*e.{12}|.*t.{12})"), 60);
  r.params.top_n_tokens = 1;  // alternatives need the mask: every step walks the vocabulary
  auto hostile = engine->submit(std::move(r));
  GenerationRequest plain;
  plain.prompt = tokenizer()->encode("JULIET:");
  plain.params.max_new_tokens = 10;
  auto free_one = engine->submit(plain);
  engine->run_until_idle();
  const RequestEvent bad = final_event(*hostile);
  ASSERT_EQ(bad.kind, RequestEvent::Kind::Failed);
  EXPECT_EQ(bad.error_status, 422);
  EXPECT_NE(bad.error.find("simplify it"), std::string::npos) << bad.error;
  EXPECT_EQ(final_event(*free_one).kind, RequestEvent::Kind::Finished);
  EXPECT_EQ(engine->stats().kv_blocks_used, 0);
}

}  // namespace
}  // namespace flashneox
