// flashneox bench: prefill and decode speed of a model (or of random weights
// with a config's shape) through the serving engine, per batch size and
// prompt length, with the two roofline ratios measured on this machine in the
// same run: decode bytes/s against read bandwidth, prefill FLOP/s against
// the fp32 FMA peak.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "core/parallel.h"
#include "distributed/tensor_parallel_job.h"
#include "io/random_checkpoint.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/roofline.h"
#include "lora/lora_adapter.h"
#include "lora/random_adapter.h"

namespace flashneox {

namespace {

// A "Key: N kB" line of a /proc file, in bytes (0 when absent).
size_t proc_bytes(const char* file, const std::string& wanted) {
  std::ifstream in(file);
  std::string key;
  size_t value;
  std::string unit;
  while (in >> key) {
    if (key == wanted && in >> value >> unit) return value * 1024;
    in.ignore(1 << 20, '\n');
  }
  return 0;
}
size_t resident_bytes() { return proc_bytes("/proc/self/status", "VmRSS:"); }
// Of that, on transparent huge pages (the weights, the KV cache and the
// activations ask for them; 0 where the system's setting is "never").
size_t huge_page_bytes() { return proc_bytes("/proc/self/smaps_rollup", "AnonHugePages:"); }

struct Result {
  int batch, prompt, generated, adapters;
  double prefill_tokens_per_s, decode_tokens_per_s, ttft_ms;
  double decode_bytes_per_s, prefill_flops_per_s;
};

std::vector<std::shared_ptr<const LoraAdapter>> random_adapters(const ModelConfig& c, int count, int rank, DType dtype) {
  std::vector<std::shared_ptr<const LoraAdapter>> out;
  for (int i = 0; i < count; ++i)
    out.push_back(random_lora_adapter(c, rank, 99 + static_cast<uint32_t>(i), 0.01f, dtype));
  return out;
}

// `batch` requests of `prompt` random tokens each (after `shared` random
// tokens all of them start with), all arriving at once. With `primed`, an
// untimed request with the shared tokens runs first (a system prompt served before).
Result run_one(Engine& engine, int batch, int prompt, int new_tokens, uint64_t seed,
               const std::vector<std::shared_ptr<const LoraAdapter>>& adapters = {}, int shared = 0,
               bool primed = false) {
  const ModelConfig& c = engine.model().config();
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_int_distribution<int32_t> token(2, std::min(c.vocab_size, 50000) - 1);
  std::vector<int32_t> common;
  for (int t = 0; t < shared; ++t) common.push_back(token(rng));
  if (primed) {
    GenerationRequest r;
    r.prompt = common;
    r.prompt.push_back(token(rng));
    r.params.max_new_tokens = 1;
    engine.submit(std::move(r));
    engine.run_until_idle();
  }
  std::vector<std::shared_ptr<RequestHandle>> handles;
  const auto start = Clock::now();
  for (int b = 0; b < batch; ++b) {
    GenerationRequest r;
    r.prompt = common;
    for (int t = 0; t < prompt; ++t) r.prompt.push_back(token(rng));
    r.params.max_new_tokens = new_tokens;
    r.params.ignore_eos_token = true;
    r.params.logprobs = false;  // greedy text, as a plain /generate asks
    if (!adapters.empty()) r.adapter = adapters[static_cast<size_t>(b) % adapters.size()];
    handles.push_back(engine.submit(std::move(r)));
  }
  std::vector<Clock::time_point> first(static_cast<size_t>(batch));
  std::vector<bool> seen(static_cast<size_t>(batch), false);
  int generated = 0;
  while (engine.step()) {
    const auto now = Clock::now();
    RequestEvent e;
    for (int b = 0; b < batch; ++b)
      while (handles[b]->next(e, std::chrono::milliseconds(0))) {
        if (e.kind == RequestEvent::Kind::Failed) throw Error(e.error);
        if (e.kind != RequestEvent::Kind::Token) continue;
        ++generated;
        if (!seen[b]) {
          seen[b] = true;
          first[b] = now;
        }
      }
  }
  const auto end = Clock::now();
  const auto last_first = *std::max_element(first.begin(), first.end());
  double ttft = 0;
  for (const auto& f : first) ttft += std::chrono::duration<double>(f - start).count();
  Result r{};
  r.batch = batch;
  r.prompt = prompt;
  r.adapters = static_cast<int>(adapters.size());
  r.generated = generated;
  const double prefill_s = std::chrono::duration<double>(last_first - start).count();
  const double decode_s = std::chrono::duration<double>(end - last_first).count();
  r.prefill_tokens_per_s = batch * (prompt + shared) / prefill_s;
  r.decode_tokens_per_s = decode_s > 0 ? (generated - batch) / decode_s : 0.0;
  r.ttft_ms = ttft / batch * 1000.0;
  // Bytes a decode step reads: every packed weight once, plus the batch's K/V.
  const double weights = static_cast<double>(engine.model().weights().weight_bytes) -
                         static_cast<double>(c.vocab_size) * c.hidden_size *
                             dtype_size(engine.model().weights().embed_in.dtype);
  const double avg_context = prompt + new_tokens / 2.0;
  const double kv = batch * avg_context * c.num_layers * 2.0 * c.hidden_size *
                    dtype_size(engine.options().kv_cache_dtype);
  const double steps_per_s = r.decode_tokens_per_s / batch;
  r.decode_bytes_per_s = steps_per_s * (weights + kv);
  const double matmul_params = static_cast<double>(c.num_layers) *
                                   (4.0 * c.hidden_size * c.hidden_size + 2.0 * c.hidden_size * c.intermediate_size) +
                               static_cast<double>(c.vocab_size) * c.hidden_size;
  // Per sequence: 2 FLOPs per parameter per token (the LM head only on the
  // last token), plus causal attention (QK^T and PV: 2 * P^2 * hidden).
  const double flops = batch * (2.0 * (matmul_params - static_cast<double>(c.vocab_size) * c.hidden_size) * prompt +
                                2.0 * c.vocab_size * c.hidden_size +
                                2.0 * c.num_layers * static_cast<double>(prompt) * prompt * c.hidden_size);
  r.prefill_flops_per_s = flops / prefill_s;
  return r;
}

// Requests that share a long prefix (a system prompt), arriving at once:
// time to first token without prefix caching and with it, side by side, in
// alternating rounds with fresh random tokens (nothing is cached between rounds).
void run_shared_prefix(const std::shared_ptr<GptNeoxModel>& model, const std::shared_ptr<const Tokenizer>& tokenizer,
                       EngineOptions options, int shared, const std::vector<int32_t>& batches,
                       const std::vector<int32_t>& prompts, int new_tokens, int rounds, bool json_out) {
  options.prefix_caching = false;
  Engine cold(model, tokenizer, options);
  options.prefix_caching = true;
  Engine warm(model, tokenizer, options);
  run_one(cold, 1, 8, 4, 7);
  run_one(warm, 1, 8, 4, 7);
  nlohmann::json rows = nlohmann::json::array();
  if (!json_out)
    std::printf("%7s %7s %6s %13s %15s %8s %15s %8s\n", "shared", "prompt", "batch", "TTFT off ms",
                "TTFT burst ms", "ratio", "TTFT seen ms", "ratio");
  uint64_t seed = 5000;
  for (int p : prompts)
    for (int b : batches) {
      // off: no prefix caching; burst: the prefix is new to the cache and all
      // requests arrive at once; seen: it was served before.
      double off_ms = 0, burst_ms = 0, seen_ms = 0;
      for (int round = 0; round < rounds; ++round) {
        off_ms += run_one(cold, b, p, new_tokens, seed++, {}, shared).ttft_ms / rounds;
        burst_ms += run_one(warm, b, p, new_tokens, seed++, {}, shared).ttft_ms / rounds;
        seen_ms += run_one(warm, b, p, new_tokens, seed++, {}, shared, /*primed=*/true).ttft_ms / rounds;
      }
      rows.push_back({{"shared", shared}, {"prompt", p}, {"batch", b}, {"ttft_off_ms", off_ms},
                      {"ttft_burst_ms", burst_ms}, {"ttft_seen_ms", seen_ms}, {"burst_ratio", burst_ms / off_ms},
                      {"seen_ratio", seen_ms / off_ms}});
      if (!json_out)
        std::printf("%7d %7d %6d %13.1f %15.1f %8.3f %15.1f %8.3f\n", shared, p, b, off_ms, burst_ms,
                    burst_ms / off_ms, seen_ms, seen_ms / off_ms);
    }
  if (json_out) std::printf("%s\n", nlohmann::json{{"shared_prefix", rows}}.dump().c_str());
}

// Another process that keeps one core busy while it lives (a spinning child).
class BusyCore {
 public:
  BusyCore() : pid_(fork()) {
    if (pid_ < 0) throw Error("bench --contend: fork failed");
    if (pid_ == 0) {
      volatile uint64_t spin = 0;
      for (;;) spin = spin + 1;
    }
  }
  ~BusyCore() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  BusyCore(const BusyCore&) = delete;
  BusyCore& operator=(const BusyCore&) = delete;

 private:
  pid_t pid_;
};

// Decode with all threads and with one, on a quiet machine and with one core
// kept busy by another process, alternating rounds.
void run_contended(Engine& engine, int threads, const std::vector<int32_t>& batches, int prompt, int new_tokens,
                   int rounds, bool json_out) {
  const std::vector<int> counts = threads > 1 ? std::vector<int>{threads, 1} : std::vector<int>{1};
  nlohmann::json rows = nlohmann::json::array();
  if (!json_out)
    std::printf("%6s %8s %20s %27s\n", "batch", "threads", "decode tok/s (quiet)", "decode tok/s (one core busy)");
  uint64_t seed = 9000;
  for (int b : batches) {
    std::vector<double> quiet(counts.size()), busy(counts.size());
    for (int round = 0; round < rounds; ++round)
      for (int contended = 0; contended < 2; ++contended) {
        std::unique_ptr<BusyCore> load;
        if (contended) load = std::make_unique<BusyCore>();
        for (size_t i = 0; i < counts.size(); ++i) {
          set_num_threads(counts[i]);
          const double rate = run_one(engine, b, prompt, new_tokens, seed++).decode_tokens_per_s;
          (contended ? busy : quiet)[i] += rate / rounds;
        }
      }
    set_num_threads(threads);
    for (size_t i = 0; i < counts.size(); ++i) {
      rows.push_back({{"batch", b}, {"threads", counts[i]}, {"decode_tokens_per_s_quiet", quiet[i]},
                      {"decode_tokens_per_s_one_core_busy", busy[i]}});
      if (!json_out) std::printf("%6d %8d %20.1f %27.1f\n", b, counts[i], quiet[i], busy[i]);
    }
    if (!json_out && counts.size() == 2)
      std::printf("%6d   %d vs 1: quiet %.2f, one core busy %.2f\n", b, threads, quiet[0] / quiet[1], busy[0] / busy[1]);
  }
  if (json_out) std::printf("%s\n", nlohmann::json{{"contend", rows}}.dump().c_str());
}

}  // namespace

int run_bench(int argc, char** argv) {
  Args args(argc, argv, 2, bench_flags());
  set_num_threads(args.get_int("--threads", 0));
  const int threads = num_threads();
  const std::vector<int32_t> batches = parse_int_list(args.get("--batch", "1,8,32"), "--batch");
  const std::vector<int32_t> prompts = parse_int_list(args.get("--prompt", "128"), "--prompt");
  const int new_tokens = args.get_int("--new", 128);
  // Distinct LoRA adapters per run (0: the base model alone), each request of
  // a batch on one of them; every count runs beside the others in one process.
  const std::vector<int32_t> adapter_counts = parse_int_list(args.get("--adapters", "0"), "--adapters");
  const int adapter_rank = args.get_int("--adapter-rank", 16);
  const int shared_prefix = args.get_int("--shared-prefix", 0);
  // Shared-prefix and contention runs take 3 rounds unless told; the plain
  // run one (each round runs every row once, in turn, and rows report medians).
  const int rounds = args.get_int("--rounds", shared_prefix > 0 || args.has("--contend") ? 3 : 1);
  if (shared_prefix < 0) throw Error("--shared-prefix must not be negative");
  if (rounds < 1) throw Error("--rounds must be positive");
  if (adapter_rank < 1 || adapter_rank > 1024) throw Error("--adapter-rank must be between 1 and 1024");
  if (new_tokens < 2) throw Error("--new must be at least 2");
  for (int v : batches) if (v < 1) throw Error("--batch values must be positive");
  for (int v : prompts) if (v < 1) throw Error("--prompt values must be positive");
  LoadOptions load;
  if (args.has("--dtype")) load.weight_dtype = parse_weight_dtype(args.get("--dtype"));
  load.check_weights = args.has("--check-weights");
  const bool json_out = args.has("--json");

  std::string dir, label;
  std::filesystem::path temp;
  if (args.has("--config")) {
    if (args.has("--model")) throw Error("give --model or --config, not both");
    label = std::filesystem::path(args.get("--config")).stem().string() + " (random weights)";
    temp = std::filesystem::temp_directory_path() / ("flashneox-bench-" + std::to_string(::getpid()));
    const DType storage = load.weight_dtype == DType::F32 ? DType::F32 : DType::F16;
    if (!json_out) std::fprintf(stderr, "writing random weights to %s ...\n", temp.c_str());
    write_random_checkpoint(args.get("--config"), temp.string(), storage);
    dir = temp.string();
  } else {
    dir = resolve_model_dir(args.get("--model", default_model_dir()));
    label = std::filesystem::path(dir).filename().string();
  }
  load.tensor_parallel = tensor_parallel_world();  // under mpirun: split over its ranks (one machine for --config)
  std::shared_ptr<GptNeoxModel> model = load.tensor_parallel
                                            ? load_tensor_parallel_model(*load.tensor_parallel, dir, load)
                                            : GptNeoxModel::load(dir, nullptr, load);
  if (!temp.empty()) std::filesystem::remove_all(temp);  // the mapping outlives the file (every rank has loaded)
  const std::shared_ptr<const GptNeoxModel> measured = model;
  const ModelConfig c = model->config();
  const size_t weight_bytes = model->weights().weight_bytes;
  const std::string dtype = dtype_name(model->weights().dtype);

  const int max_batch = *std::max_element(batches.begin(), batches.end());
  const int max_prompt = *std::max_element(prompts.begin(), prompts.end());
  EngineOptions options;
  options.block_size = args.get_int("--block-size", 16);
  options.kv_cache_dtype = parse_kv_dtype(args.get("--kv-cache-dtype", "f32"));
  options.speculate = parse_speculate(args);
  options.max_total_tokens = shared_prefix + max_prompt + new_tokens;
  options.max_input_length = shared_prefix + max_prompt;
  options.max_batch_size = max_batch;
  options.max_concurrent_requests = max_batch + 1;
  options.max_batch_prefill_tokens = std::max(4096, shared_prefix + max_prompt);
  options.max_active_adapters = 1 << 20;
  const size_t tokens = static_cast<size_t>(max_batch) *
                        ((shared_prefix + max_prompt + new_tokens + options.block_size - 1) / options.block_size + 1) *
                        options.block_size;
  options.kv_cache_bytes = tokens * 2 * c.num_layers * c.hidden_size * dtype_size(options.kv_cache_dtype);
  std::shared_ptr<const Tokenizer> tokenizer = Tokenizer::from_file(default_model_dir() + "/tokenizer.json");
  options.draft_model = load_draft_model(args, *tokenizer);
  std::shared_ptr<const LoraAdapter> given;  // --adapter DIR: every request runs with it
  const DType adapter_dtype = lora_dtype_for(model->weights().dtype);
  if (args.has("--adapter")) given = LoraAdapter::load(args.get("--adapter"), args.get("--adapter"), c, adapter_dtype);
  const int most_adapters = *std::max_element(adapter_counts.begin(), adapter_counts.end());
  const auto pool = random_adapters(c, most_adapters, adapter_rank, adapter_dtype);
  if (shared_prefix > 0) {
    if (!json_out)
      std::printf("model %s · weights %s · %d threads (%s) · %d new tokens · %d rounds\n\n", label.c_str(), dtype.c_str(),
                  threads, cpu::isa_name(cpu::active_isa()), new_tokens, rounds);
    run_shared_prefix(model, tokenizer, options, shared_prefix, batches, prompts, new_tokens, rounds, json_out);
    return 0;
  }
  Engine engine(std::move(model), std::move(tokenizer), options);
  run_one(engine, 1, 8, 4, 7);  // warm-up: page in weights, spin up the threads
  if (args.has("--contend")) {
    if (!json_out)
      std::printf("model %s · weights %s · prompt %d · %d new tokens · %d rounds\n\n", label.c_str(), dtype.c_str(),
                  prompts.front(), new_tokens, rounds);
    run_contended(engine, threads, batches, prompts.front(), new_tokens, rounds, json_out);
    return 0;
  }

  if (!json_out) std::fprintf(stderr, "measuring this machine's read bandwidth and FMA peak ...\n");
  const double bandwidth = cpu::measure_read_bandwidth(threads);
  const double peak = cpu::measure_fma_peak(threads);
  std::vector<std::vector<Result>> runs;  // [row][round]
  for (int round = 0; round < rounds; ++round) {
    size_t row = 0;
    for (int p : prompts)
      for (int b : batches)
        for (int n : adapter_counts) {
          std::vector<std::shared_ptr<const LoraAdapter>> use(pool.begin(), pool.begin() + n);
          if (given) use = {given};
          if (runs.size() <= row) runs.emplace_back();
          runs[row].push_back(run_one(engine, b, p, new_tokens, 1000 + b * 7 + p + 7919 * round, use));
          if (!json_out)
            std::fprintf(stderr, "  prompt %d batch %d adapters %d: %.0f decode tokens/s\n", p, b,
                         runs[row].back().adapters, runs[row].back().decode_tokens_per_s);
          ++row;
        }
  }
  // Each row's figures are medians over the rounds.
  std::vector<Result> results;
  for (std::vector<Result>& row : runs) {
    Result r = row.front();
    auto median = [&](double Result::*field) {
      std::vector<double> v;
      for (const Result& x : row) v.push_back(x.*field);
      std::sort(v.begin(), v.end());
      return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    };
    for (double Result::*field : {&Result::prefill_tokens_per_s, &Result::decode_tokens_per_s, &Result::ttft_ms,
                                  &Result::decode_bytes_per_s, &Result::prefill_flops_per_s})
      r.*field = median(field);
    results.push_back(r);
  }
  // Each row against the base-model row of the same prompt and batch.
  auto base_of = [&](const Result& r) -> const Result* {
    for (const Result& o : results)
      if (o.prompt == r.prompt && o.batch == r.batch && o.adapters == 0) return &o;
    return nullptr;
  };
  // Aggregate decode against batch 1 of the same prompt and adapters.
  auto batch1_of = [&](const Result& r) -> const Result* {
    for (const Result& o : results)
      if (o.prompt == r.prompt && o.batch == 1 && o.adapters == r.adapters) return &o;
    return nullptr;
  };
  const size_t rss = resident_bytes(), rss_huge = huge_page_bytes();
  // Tensor parallelism: rank 0's forwards and their time in MPI.
  const GptNeoxModel::ParallelTimes& tp = measured->parallel_times();
  const int ranks = measured->shard().ranks;

  if (json_out) {
    nlohmann::json out = {{"model", label}, {"dtype", dtype}, {"threads", threads}, {"isa", cpu::isa_name(cpu::active_isa())},
                          {"new_tokens", new_tokens}, {"weight_bytes", weight_bytes}, {"rss_bytes", rss},
                          {"rss_huge_page_bytes", rss_huge},
                          {"ranks", ranks},
                          {"machine", {{"read_bandwidth_bytes_per_s", bandwidth}, {"fma_peak_flops", peak}}}};
    if (ranks > 1)
      out["tensor_parallel"] = {{"forwards", tp.forwards}, {"forward_seconds", tp.forward_seconds},
                                {"mpi_seconds", tp.communication_seconds}};
    out["results"] = nlohmann::json::array();
    for (const Result& r : results)
      out["results"].push_back({{"batch", r.batch}, {"prompt", r.prompt}, {"adapters", r.adapters},
                                {"decode_vs_base", base_of(r) ? nlohmann::json(r.decode_tokens_per_s / base_of(r)->decode_tokens_per_s)
                                                              : nlohmann::json(nullptr)},
                                {"decode_vs_batch1", batch1_of(r) ? nlohmann::json(r.decode_tokens_per_s / batch1_of(r)->decode_tokens_per_s)
                                                                  : nlohmann::json(nullptr)},
                                {"prefill_tokens_per_s", r.prefill_tokens_per_s},
                                {"decode_tokens_per_s", r.decode_tokens_per_s}, {"ttft_ms", r.ttft_ms},
                                {"decode_bandwidth_ratio", r.decode_bytes_per_s / bandwidth},
                                {"prefill_peak_ratio", peak > 0 ? r.prefill_flops_per_s / peak : 0.0}});
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("model %s · weights %s · %.1f MiB · %d threads (%s) · %d new tokens · resident %.1f MiB (%.1f on huge "
              "pages)\n",
              label.c_str(), dtype.c_str(), weight_bytes / 1048576.0, threads, cpu::isa_name(cpu::active_isa()),
              new_tokens, rss / 1048576.0, rss_huge / 1048576.0);
  std::printf("machine: read bandwidth %.1f GB/s, fp32 FMA peak %.1f GFLOP/s (measured now)\n", bandwidth / 1e9,
              peak / 1e9);
  if (ranks > 1)
    std::printf("tensor parallel: %d ranks (weights and resident memory above: rank 0's); %lld forwards, %.2f ms each, "
                "%.0f%% of it in MPI\n",
                ranks, static_cast<long long>(tp.forwards), 1e3 * tp.forward_seconds / std::max<int64_t>(tp.forwards, 1),
                100.0 * tp.communication_seconds / std::max(tp.forward_seconds, 1e-9));
  std::printf("\n");
  if (rounds > 1) std::printf("medians of %d rounds, rows in turn\n", rounds);
  std::printf("%7s %6s %8s %14s %9s %13s %15s %11s %17s %19s\n", "prompt", "batch", "adapters", "prefill tok/s",
              "TTFT ms", "decode tok/s", "decode vs base", "vs batch 1", "decode % of BW", "prefill % of peak");
  for (const Result& r : results) {
    const Result* base = base_of(r);
    const Result* one = batch1_of(r);
    char ratio[32] = "-", vs_one[32] = "-";
    if (base && base->decode_tokens_per_s > 0)
      std::snprintf(ratio, sizeof ratio, "%.2f", r.decode_tokens_per_s / base->decode_tokens_per_s);
    if (one && one->decode_tokens_per_s > 0)
      std::snprintf(vs_one, sizeof vs_one, "%.2f", r.decode_tokens_per_s / one->decode_tokens_per_s);
    std::printf("%7d %6d %8d %14.0f %9.1f %13.1f %15s %11s %16.0f%% %18.0f%%\n", r.prompt, r.batch, r.adapters,
                r.prefill_tokens_per_s, r.ttft_ms, r.decode_tokens_per_s, ratio, vs_one,
                100.0 * r.decode_bytes_per_s / bandwidth, peak > 0 ? 100.0 * r.prefill_flops_per_s / peak : 0.0);
  }
  return 0;
}

}  // namespace flashneox
