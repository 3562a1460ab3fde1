// flashneox logits: runs sequences as one batch (batched prefill, then batched
// decode steps) and writes every position's logits and final hidden state.
#include <cstdio>
#include <map>
#include <memory>

#include "distributed/tensor_parallel_job.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "core/parallel.h"
#include "distributed/tensor_parallel_job.h"
#include "io/safetensors_writer.h"
#include "lora/lora_adapter.h"
#include "model/sequence_runner.h"

namespace flashneox {

int run_logits(int argc, char** argv) {
  Args args(argc, argv, 2, logits_flags());
  set_num_threads(args.get_int("--threads", 0));
  const std::string model_dir = resolve_model_dir(args.get("--model", default_model_dir()));
  const std::string out_path = args.require("--out");
  // --ids 1,2,3@NAME runs that sequence with the adapter --lora NAME=DIR names.
  std::vector<std::vector<int32_t>> sequences;
  std::vector<std::string> adapter_names;
  for (const std::string& spec : args.all("--ids")) {
    const size_t at = spec.find('@');
    sequences.push_back(parse_int_list(spec.substr(0, at), "--ids"));
    adapter_names.push_back(at == std::string::npos ? "" : spec.substr(at + 1));
  }
  if (sequences.empty()) throw Error("give at least one --ids list");
  RunOptions options;
  options.prefill = args.get_int("--prefill", -1);
  options.block_size = args.get_int("--block-size", 16);
  options.scatter_blocks = args.has("--scatter-blocks");
  const std::string hidden_states = args.get("--hidden-states", "final");
  if (hidden_states != "final" && hidden_states != "all") throw Error("--hidden-states must be final or all");
  options.keep_layer_hidden = hidden_states == "all";
  if (options.block_size <= 0) throw Error("--block-size must be positive");
  if (options.prefill == 0 || options.prefill < -1) throw Error("--prefill must be at least 1");

  LoadOptions load;
  load.tensor_parallel = tensor_parallel_world();  // under mpirun: split over its ranks
  auto model = load.tensor_parallel ? load_tensor_parallel_model(*load.tensor_parallel, model_dir, load)
                                    : GptNeoxModel::load(model_dir, nullptr, load);
  std::map<std::string, std::shared_ptr<const LoraAdapter>> adapters;
  for (const std::string& spec : args.all("--lora")) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw Error(concat("--lora takes NAME=DIR, not '", spec, "'"));
    const std::string name = spec.substr(0, eq);
    if (adapters.count(name)) throw Error(concat("--lora: the name '", name, "' is given twice"));
    adapters[name] = LoraAdapter::load(spec.substr(eq + 1), name, model->config(), lora_dtype_for(model->weights().dtype));
  }
  for (const std::string& name : adapter_names) {
    if (name.empty()) {
      options.adapters.push_back(nullptr);
      continue;
    }
    auto it = adapters.find(name);
    if (it == adapters.end()) throw Error(concat("--ids ...@", name, ": no --lora ", name, "=DIR was given"));
    options.adapters.push_back(it->second.get());
  }
  const auto results = run_sequences(*model, sequences, options);
  std::vector<NamedTensor> tensors;
  for (size_t i = 0; i < results.size(); ++i) {
    const int64_t len = static_cast<int64_t>(sequences[i].size());
    tensors.push_back({"logits." + std::to_string(i), {len, model->config().vocab_size},
                       results[i].logits});
    tensors.push_back({"hidden." + std::to_string(i), {len, model->config().hidden_size},
                       results[i].hidden});
    if (!options.keep_layer_hidden) continue;
    tensors.push_back({"hidden_states." + std::to_string(i),
                       {model->config().num_layers + 1, len, model->config().hidden_size},
                       all_hidden_states(results[i])});
  }
  write_safetensors(out_path, tensors);
  std::fprintf(stderr, "wrote %zu sequences to %s\n", results.size(), out_path.c_str());
  return 0;
}

}  // namespace flashneox
