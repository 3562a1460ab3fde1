#include "distributed/tensor_parallel_job.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <utility>

#include "core/error.h"
#include "core/parallel.h"
#include "distributed/tensor_parallel_protocol.h"

namespace flashneox {
namespace {

// Every rank's load failure ("" when it loaded), joined on rank 0 and sent
// back, so all ranks agree on whether the model is there.
std::string agree_on_load(Communicator& world, const std::string& failure) {
  std::vector<int64_t> sizes;
  const std::vector<char> all = world.gather(std::vector<char>(failure.begin(), failure.end()), &sizes);
  std::vector<char> verdict;
  if (world.rank() == 0) {  // "ranks 0, 1: why" once for each distinct reason
    std::vector<std::pair<std::string, std::string>> reasons;  // (ranks, why)
    const char* at = all.data();
    for (int r = 0; r < world.size(); ++r) {
      const std::string why(at, static_cast<size_t>(sizes[r]));
      at += sizes[r];
      if (why.empty()) continue;
      auto same = std::find_if(reasons.begin(), reasons.end(), [&](const auto& e) { return e.second == why; });
      if (same == reasons.end()) reasons.emplace_back(concat("rank ", r), why);
      else {
        if (!same->first.starts_with("ranks")) same->first = "ranks" + same->first.substr(4);
        same->first += concat(", ", r);
      }
    }
    std::string joined;
    for (const auto& [ranks, why] : reasons) joined += concat(joined.empty() ? "" : "; ", ranks, ": ", why);
    verdict.assign(joined.begin(), joined.end());
  }
  world.broadcast(verdict);
  return {verdict.begin(), verdict.end()};
}

}  // namespace

std::unique_ptr<GptNeoxModel> load_tensor_parallel_model(Communicator& world, const std::string& dir,
                                                         const LoadOptions& options) {
  TensorParallelLoad load;
  load.dir = dir;
  load.weight_dtype = options.weight_dtype ? static_cast<int>(*options.weight_dtype) : -1;
  load.check_weights = options.check_weights;
  load.threads = num_threads();
  load.fingerprint = model_fingerprint(dir, world.size());
  std::vector<char> message = encode(load);
  world.broadcast(message);
  LoadOptions mine = options;
  mine.tensor_parallel = &world;
  std::unique_ptr<GptNeoxModel> model;
  std::string failure;
  try {
    model = GptNeoxModel::load(dir, nullptr, mine);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  const std::string verdict = agree_on_load(world, failure);
  if (!verdict.empty()) throw Error(concat("the model could not be loaded on every rank: ", verdict));
  return model;
}

int run_tensor_parallel_worker(Communicator& world) {
  // mpirun passes a Ctrl-C or SIGTERM to every rank; rank 0 decides how the
  // job ends (a server drains its requests first), then tells the others.
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  std::unique_ptr<GptNeoxModel> model;
  std::unique_ptr<KvCache> cache;
  uint64_t cache_serial = 0;
  ForwardWorkspace workspace;
  int status = 0;
  for (;;) {
    std::vector<char> message;
    world.broadcast(message);
    switch (command_of(message)) {
      case TensorParallelCommand::Stop:
        return status;
      case TensorParallelCommand::Load: {
        const TensorParallelLoad load = decode_load(message);
        model.reset();
        cache.reset();
        set_num_threads(load.threads);
        std::string failure;
        try {
          const std::string mine = model_fingerprint(load.dir, world.size());
          if (mine != load.fingerprint)
            throw Error(concat("this rank runs ", mine, " but rank 0 runs ", load.fingerprint,
                               "; every rank must run the same flashneox on the same model"));
          LoadOptions options;
          if (load.weight_dtype >= 0) options.weight_dtype = static_cast<DType>(load.weight_dtype);
          options.check_weights = load.check_weights;
          options.tensor_parallel = &world;
          model = GptNeoxModel::load(load.dir, nullptr, options);
        } catch (const std::exception& e) {
          failure = e.what();
          model.reset();
        }
        status = agree_on_load(world, failure).empty() ? 0 : 1;
        if (status) model.reset();
        break;
      }
      case TensorParallelCommand::Adapter:
        try {
          if (!model) throw Error("no model is loaded");
          model->add_shard_adapter(*decode_adapter(message));
        } catch (const std::exception& e) {
          world.abort(concat("a LoRA adapter could not be taken: ", e.what()));
        }
        break;
      case TensorParallelCommand::Forward: {
        TensorParallelForward forward;
        try {
          forward = decode_forward(message);
          if (!model) throw Error("no model is loaded");
          for (const uint64_t uid : forward.step.adapter_uids)
            forward.batch.adapters.push_back(uid ? model->shard_adapter(uid) : nullptr);
          if (!cache || cache_serial != forward.step.cache_serial) {  // rank 0 moved to a new cache
            cache.reset();
            cache = model->make_cache(forward.step.num_blocks, forward.step.block_size, forward.step.kv_dtype);
            cache_serial = forward.step.cache_serial;
          }
          model->forward(forward.batch, *cache, &workspace);
        } catch (const std::exception& e) {
          world.abort(concat("the forward failed: ", e.what()));
        }
        break;
      }
    }
  }
}

void stop_tensor_parallel_workers(Communicator& world) {
  std::vector<char> message = encode_stop();
  world.broadcast(message);
}

}  // namespace flashneox
