// flashneox perplexity: mean negative log-likelihood of a text file under the
// model (model/perplexity.h says how windows are scored). The last line reads
// `nll <value> ppl <value>`.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "model/perplexity.h"

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
  std::vector<int32_t> tokens = loaded.tokenizer->encode(text.str());
  const int start = args.get_int("--start-token", 0);
  const bool capped = args.has("--max-tokens");
  const int max_tokens = args.get_int("--max-tokens", 0);
  const int window = args.get_int("--window", std::min(model.config().max_position_embeddings, 1024));
  const int stride = args.get_int("--stride", window);
  if (window < 2) throw Error("--window must be at least 2");
  if (stride < 1 || stride > window) throw Error("--stride must be between 1 and --window");
  if (window > model.config().max_position_embeddings)
    throw Error(concat("--window ", window, " exceeds max_position_embeddings (",
                       model.config().max_position_embeddings, ")"));
  if (capped && partial && max_tokens < 2) throw Error("--max-tokens must be at least 2");
  if (capped && !partial && max_tokens < window)
    throw Error(concat("--max-tokens ", max_tokens, " holds no full window of ", window,
                       " tokens (--partial-window scores a shorter one)"));
  if (start < 0 || start + (partial ? 2 : window) > static_cast<int>(tokens.size()))
    throw Error(concat("--start-token ", start, " leaves nothing to score (the file has ",
                       tokens.size(), " tokens)"));
  if (capped && static_cast<size_t>(start) + max_tokens < tokens.size()) tokens.resize(start + max_tokens);

  PerplexityOptions options;
  options.window = window;
  options.stride = stride;
  options.start_token = start;
  options.partial_window = partial;
  options.kv_dtype = parse_kv_dtype(args.get("--kv-cache-dtype", "f32"));
  options.adapter = adapter.get();
  const bool tty = isatty(STDERR_FILENO);
  options.progress = [tty](int done, int windows, double nll) {
    if (tty)
      std::fprintf(stderr, "\rwindow %d/%d  nll %.5f", done, windows, nll);
    else if (done % std::max(1, windows / 10) == 0 || done == windows)
      std::fprintf(stderr, "window %d/%d  nll %.5f\n", done, windows, nll);
  };
  const PerplexityResult result = score_perplexity(model, tokens, options);
  if (tty) std::fprintf(stderr, "\n");
  std::printf("scored %lld tokens in %d-token windows, stride %d\n", static_cast<long long>(result.scored_tokens),
              result.window, result.stride);
  std::printf("nll %.5f ppl %.3f\n", result.nll, result.perplexity);
  return 0;
}

}  // namespace flashneox
