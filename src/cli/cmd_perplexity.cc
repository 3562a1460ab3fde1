// flashneox perplexity: mean negative log-likelihood of a text file under the
// model, scored in windows of --window tokens every --stride tokens (each
// target scored once, by the first window that holds it). Only full windows
// count, as in the reference evaluation, unless --partial-window also scores
// the tail. The last line reads `nll <value> ppl <value>`.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "engine/sampler.h"
#include "model/sequence_batch.h"

namespace flashneox {

int run_perplexity(int argc, char** argv) {
  Args args(argc, argv, 2, perplexity_flags());
  const bool partial = args.has("--partial-window");
  const std::string path = args.require("--file");
  LoadedModel loaded = load_model_from_flags(args);
  GptNeoxModel& model = *loaded.model;
  std::shared_ptr<const LoraAdapter> adapter;
  if (args.has("--adapter")) adapter = LoraAdapter::load(args.get("--adapter"), args.get("--adapter"), model.config(),
                                                        lora_dtype_for(model.weights().dtype));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(concat("cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  const std::vector<int32_t> tokens = loaded.tokenizer->encode(text.str());
  const int start = args.get_int("--start-token", 0);
  const int window = args.get_int("--window", std::min(model.config().max_position_embeddings, 1024));
  const int stride = args.get_int("--stride", window);
  if (window < 2) throw Error("--window must be at least 2");
  if (stride < 1 || stride > window) throw Error("--stride must be between 1 and --window");
  if (window > model.config().max_position_embeddings)
    throw Error(concat("--window ", window, " exceeds max_position_embeddings (",
                       model.config().max_position_embeddings, ")"));
  if (start < 0 || start + (partial ? 2 : window) > static_cast<int>(tokens.size()))
    throw Error(concat("--start-token ", start, " leaves nothing to score (the file has ",
                       tokens.size(), " tokens)"));

  const int block_size = 16;
  const int blocks = blocks_for(window, block_size);
  auto cache = model.make_cache(blocks, block_size, parse_kv_dtype(args.get("--kv-cache-dtype", "f32")));
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  for (int b = 0; b < blocks; ++b) table[b] = b;
  const int n = static_cast<int>(tokens.size());
  const int windows = partial ? (n - start - 2) / stride + 1 : (n - start - window) / stride + 1;
  const bool tty = isatty(STDERR_FILENO);
  const int32_t vocab = model.config().vocab_size;
  double nll = 0.0;
  int64_t scored = 0;
  int scored_until = start + 1;  // targets before this were scored by an earlier window
  for (int w = 0; w < windows; ++w) {
    const int begin = start + w * stride;
    const int end = std::min(begin + window, n);
    if (end - begin < (partial ? 2 : window)) break;
    SequenceStep step{tokens.data() + begin, end - begin, 0, &table, true, adapter.get()};
    const ForwardOutput out = model.forward(make_batch({step}, block_size, true), *cache);
    for (int target = std::max(scored_until, begin + 1); target < end; ++target) {
      const float* row = out.logits.data() + static_cast<int64_t>(target - 1 - begin) * vocab;
      nll -= Sampler::logprob_of(row, vocab, tokens[target]);
      ++scored;
    }
    scored_until = end;
    if (tty)
      std::fprintf(stderr, "\rwindow %d/%d  nll %.5f", w + 1, windows, nll / scored);
    else if ((w + 1) % std::max(1, windows / 10) == 0 || w + 1 == windows)
      std::fprintf(stderr, "window %d/%d  nll %.5f\n", w + 1, windows, nll / scored);
    if (end == n) break;
  }
  if (tty) std::fprintf(stderr, "\n");
  const double mean = nll / static_cast<double>(scored);
  std::printf("scored %lld tokens in %d-token windows, stride %d\n", static_cast<long long>(scored), window, stride);
  std::printf("nll %.5f ppl %.3f\n", mean, std::exp(mean));
  return 0;
}

}  // namespace flashneox
