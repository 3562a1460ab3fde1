// flashneox logits: runs sequences as one batch (batched prefill, then batched
// decode steps) and writes every position's logits and final hidden state.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/parallel.h"
#include "io/safetensors_writer.h"
#include "model/sequence_runner.h"

namespace flashneox {

int run_logits(int argc, char** argv) {
  Args args(argc, argv, 2, {"--model", "--ids", "--prefill", "--block-size", "--out", "--threads"},
            {"--scatter-blocks"});
  set_num_threads(args.get_int("--threads", 0));
  const std::string model_dir = args.get("--model", default_model_dir());
  const std::string out_path = args.require("--out");
  std::vector<std::vector<int32_t>> sequences;
  for (const std::string& list : args.all("--ids")) sequences.push_back(parse_int_list(list, "--ids"));
  if (sequences.empty()) throw Error("give at least one --ids list");
  RunOptions options;
  options.prefill = args.get_int("--prefill", -1);
  options.block_size = args.get_int("--block-size", 16);
  options.scatter_blocks = args.has("--scatter-blocks");
  if (options.block_size <= 0) throw Error("--block-size must be positive");
  if (options.prefill == 0 || options.prefill < -1) throw Error("--prefill must be at least 1");

  auto model = GptNeoxModel::load(model_dir);
  const auto results = run_sequences(*model, sequences, options);
  std::vector<NamedTensor> tensors;
  for (size_t i = 0; i < results.size(); ++i) {
    const int64_t len = static_cast<int64_t>(sequences[i].size());
    tensors.push_back({"logits." + std::to_string(i), {len, model->config().vocab_size},
                       results[i].logits});
    tensors.push_back({"hidden." + std::to_string(i), {len, model->config().hidden_size},
                       results[i].hidden});
  }
  write_safetensors(out_path, tensors);
  std::fprintf(stderr, "wrote %zu sequences to %s\n", results.size(), out_path.c_str());
  return 0;
}

}  // namespace flashneox
