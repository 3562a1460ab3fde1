// What constrained decoding costs per generated token, as ratios to a free
// batch-1 decode step of the same model in the same run (rounds alternate,
// medians reported), greedy, same prompt, same number of tokens:
//   cold: a constrained step with a fresh grammar (each state's DFA row and,
//         where the model's own choice does not fit, its mask are made when
//         the state is first reached);
//   warm: a constrained step once the grammar's states repeat (cached);
//   mask_every_token: the worst case, a fresh grammar's mask computed for
//         every token along the same text (a vocabulary-trie walk per new
//         state), as a share of the free step.
// Usage: grammar_bench [MODEL_DIR] [ROUNDS]   (default: the bundled model, 15)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "structured/grammar.h"

namespace flashneox {
namespace {

using Seconds = std::chrono::duration<double>;

const char* kSchema = R"({"type": "object", "properties": {
  "speaker": {"type": "string", "maxLength": 16}, "act": {"type": "integer", "minimum": 1, "maximum": 5},
  "mood": {"enum": ["merry", "sad", "wrathful"]},
  "lines": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 3}},
  "required": ["speaker", "act", "mood", "lines"]})";

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Seconds per step of one sequence generating `tokens` tokens (prefill excluded).
double seconds_per_step(Engine& engine, std::shared_ptr<Grammar> grammar, int tokens, std::string* text) {
  GenerationRequest r;
  r.prompt = engine.tokenizer().encode("ROMEO:\nWhat say you, friar?");
  r.params.max_new_tokens = tokens;
  r.params.ignore_eos_token = true;  // greedy: the sampler's cheapest path, so the mask's share is not hidden
  r.params.grammar = std::move(grammar);
  auto handle = engine.submit(std::move(r));
  engine.step();  // prefill and the first token
  int steps = 0;
  const auto start = std::chrono::steady_clock::now();
  while (!handle->done() && engine.step()) ++steps;
  const double took = Seconds(std::chrono::steady_clock::now() - start).count();
  RequestEvent e;
  while (handle->next(e, std::chrono::milliseconds(0)))
    if (e.kind == RequestEvent::Kind::Finished && text) *text = e.generated_text;
  return took / std::max(steps, 1);
}

int run(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "models/neox-shakespeare";
  const int rounds = argc > 2 ? std::max(3, std::atoi(argv[2])) : 15;
  EngineOptions options;
  options.kv_cache_bytes = 64u << 20;
  auto tokenizer = std::shared_ptr<const Tokenizer>(Tokenizer::from_file(dir + "/tokenizer.json"));
  Engine engine(GptNeoxModel::load(dir), tokenizer, options);
  const auto schema = nlohmann::ordered_json::parse(kSchema);
  const TokenTrie trie(*tokenizer, engine.model().config().vocab_size);

  auto warm = Grammar::from_json_schema(schema);
  std::string text;
  seconds_per_step(engine, warm, 200, &text);  // warm-up; fills warm's caches along this text
  const std::vector<int32_t> ids = tokenizer->encode(text);
  std::vector<double> free_step, warm_step, cold_step, cold_token;
  size_t cold_masks = 0;  // walks a fresh grammar needed (where the model's own choice did not fit)
  for (int r = 0; r < rounds; ++r) {
    free_step.push_back(seconds_per_step(engine, nullptr, static_cast<int>(ids.size()), nullptr));
    warm_step.push_back(seconds_per_step(engine, warm, 200, nullptr));
    auto fresh = Grammar::from_json_schema(schema);
    cold_step.push_back(seconds_per_step(engine, fresh, 200, nullptr));
    cold_masks = fresh->masks_made();
    // Cold: a new grammar, masks along the same text, one per token.
    const auto start = std::chrono::steady_clock::now();
    auto cold = Grammar::from_json_schema(schema);
    int32_t state = cold->start();
    size_t masked = 0;
    for (const int32_t id : ids) {
      if (state == Grammar::kDead) break;
      cold->allowed_tokens(state, trie);
      state = cold->advance(state, tokenizer->token_bytes(id));
      ++masked;
    }
    cold_token.push_back(Seconds(std::chrono::steady_clock::now() - start).count() / std::max<size_t>(masked, 1));
  }
  const double f = median(free_step), w = median(warm_step), c = median(cold_step), m = median(cold_token);
  std::printf("{\"model\": \"%s\", \"tokens\": %zu, \"rounds\": %d, \"free_step_ms\": %.4f, "
              "\"warm_step_ms\": %.4f, \"cold_step_ms\": %.4f, \"mask_ms_per_token\": %.4f, "
              "\"warm_overhead\": %.4f, \"cold_overhead\": %.4f, \"mask_every_token_share\": %.4f, "
              "\"dfa_states\": %zu, \"cold_masks\": %zu}\n",
              dir.c_str(), ids.size(), rounds, f * 1e3, w * 1e3, c * 1e3, m * 1e3, w / f - 1.0, c / f - 1.0, m / f,
              warm->dfa_states(), cold_masks);
  std::fprintf(stderr, "output: %s\n", text.c_str());
  return 0;
}

}  // namespace
}  // namespace flashneox

int main(int argc, char** argv) {
  try {
    return flashneox::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grammar_bench: %s\n", e.what());
    return 1;
  }
}
