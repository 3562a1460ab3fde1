// flashneox._core: the model, its engine and its tokenizer behind a small
// interface that flashneox/__init__.py dresses with types and docstrings.
// The GIL is released while the engine or the model runs; one mutex per model
// serialises its forwards, so any number of Python threads may share a model
// (their generate() calls batch together in the engine). flashneox::Error
// becomes flashneox.Error with the same message; Ctrl-C between engine steps
// cancels the call's requests and raises KeyboardInterrupt.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cli/command_line.h"
#include "cli/model_flags.h"
#include "core/error.h"
#include "core/memory_size.h"
#include "core/parallel.h"
#include "engine/engine.h"
#include "lora/lora_adapter.h"
#include "model/perplexity.h"
#include "model/sequence_runner.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace flashneox {
namespace {

// Ctrl-C seen between engine steps; becomes KeyboardInterrupt.
struct Interrupted {};

void check_interrupt() {
  nb::gil_scoped_acquire acquire;
  if (PyErr_CheckSignals() != 0) {
    PyErr_Clear();
    throw Interrupted{};
  }
}

nb::object to_numpy(std::vector<float>&& values, std::vector<size_t> shape) {
  auto* owned = new std::vector<float>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  return nb::cast(nb::ndarray<nb::numpy, float>(owned->data(), shape.size(), shape.data(), owner));
}

// (id, text, logprob, special): a generated token as the Python layer takes it.
using TokenTuple = std::tuple<int32_t, std::string, std::optional<float>, bool>;
// (text, token ids, finish reason, prompt tokens, seed)
using GenerationTuple =
    std::tuple<std::string, std::vector<int32_t>, std::string, int, std::optional<uint64_t>>;

TokenTuple token_tuple(const GeneratedToken& t) { return {t.id, t.text, t.logprob, t.special}; }

class TokenizerHandle {
 public:
  explicit TokenizerHandle(std::shared_ptr<const Tokenizer> tokenizer) : tokenizer_(std::move(tokenizer)) {}
  static TokenizerHandle from_file(const std::string& path) { return TokenizerHandle(Tokenizer::from_file(path)); }

  std::vector<int32_t> encode(const std::string& text) const {
    nb::gil_scoped_release release;
    return tokenizer_->encode(text);
  }
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
    nb::gil_scoped_release release;
    return tokenizer_->decode(ids, skip_special_tokens);
  }
  int32_t vocab_size() const { return tokenizer_->vocab_size(); }
  std::optional<int32_t> token_id(const std::string& token) const { return tokenizer_->token_id(token); }

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
};

class Model {
 public:
  Model(const std::string& model, const std::optional<std::string>& dtype, int threads,
        const std::string& kv_cache_dtype, const std::optional<std::string>& kv_cache_memory, bool check_weights) {
    if (threads < 0) throw Error(concat("threads must be 0 (every core) or positive, not ", threads));
    kv_dtype_ = parse_kv_dtype(kv_cache_dtype, "kv_cache_dtype");
    if (kv_cache_memory) kv_bytes_ = parse_memory_budget(*kv_cache_memory);
    LoadOptions load;
    if (dtype) load.weight_dtype = parse_weight_dtype(*dtype, "dtype");
    load.check_weights = check_weights;
    nb::gil_scoped_release release;
    set_num_threads(threads);
    LoadedModel loaded = load_model(model, load, /*require_tokenizer=*/false);
    model_ = std::move(loaded.model);
    tokenizer_ = std::move(loaded.tokenizer);
  }

  std::optional<TokenizerHandle> tokenizer() const {
    if (!tokenizer_) return std::nullopt;
    return TokenizerHandle(tokenizer_);
  }
  const ModelConfig& config() const { return model_->config(); }
  std::string directory() const { return model_->directory(); }
  std::string dtype() const { return dtype_name(model_->weights().dtype); }

  std::vector<GenerationTuple> generate(const std::vector<std::string>& prompts, const SamplingParams& params,
                                        const std::optional<std::string>& adapter) {
    params.validate();
    std::vector<GenerationTuple> results(prompts.size());
    nb::gil_scoped_release release;
    std::vector<std::shared_ptr<RequestHandle>> handles = submit(prompts, params, adapter);
    CancelUnfinished guard{this, &handles};
    for (size_t i = 0; i < handles.size(); ++i) {
      std::vector<int32_t> ids;
      for (;;) {
        RequestEvent event = next_event(*handles[i]);
        if (event.kind == RequestEvent::Kind::Token) {
          ids.push_back(event.token.id);
          continue;
        }
        if (event.kind == RequestEvent::Kind::Failed) throw Error(event.error);
        results[i] = {event.generated_text, std::move(ids), finish_reason_name(event.finish_reason),
                      event.prompt_tokens, event.seed};
        break;
      }
    }
    return results;
  }

  // One request's tokens as they come; see Stream.
  std::shared_ptr<RequestHandle> start_stream(const std::string& prompt, const SamplingParams& params,
                                              const std::optional<std::string>& adapter) {
    params.validate();
    nb::gil_scoped_release release;
    return submit({prompt}, params, adapter).front();
  }

  // Steps the engine (with the other callers' requests) until `handle` has an event.
  // Ctrl-C is looked for at least every 20 ms, also while events are already
  // waiting (another thread stepping the engine keeps them coming).
  RequestEvent next_event(RequestHandle& handle) {
    RequestEvent event;
    thread_local auto last_check = std::chrono::steady_clock::now();
    for (;;) {
      if (std::chrono::steady_clock::now() - last_check > std::chrono::milliseconds(20)) {
        check_interrupt();
        last_check = std::chrono::steady_clock::now();
      }
      if (handle.next(event, std::chrono::milliseconds(0))) return event;
      bool worked;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        worked = engine_->step();
      }
      if (!worked && handle.next(event, std::chrono::milliseconds(2))) return event;
      check_interrupt();
    }
  }

  // The engine's queue and KV cache (all zero before the first generate()).
  EngineStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return engine_ ? engine_->stats() : EngineStats{};
  }

  // Cancelled requests free their blocks at the engine's next step.
  void reap() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (engine_) engine_->step();
  }

  nb::list logits(const std::vector<std::vector<int32_t>>& sequences, int hidden_states,
                  const std::optional<std::string>& adapter) {
    if (hidden_states < 0 || hidden_states > 2) throw Error("hidden_states must be False, \"final\" or \"all\"");
    if (sequences.empty()) throw Error("give at least one sequence of token ids");
    const ModelConfig& c = model_->config();
    for (size_t i = 0; i < sequences.size(); ++i) {
      if (sequences[i].empty()) throw Error(concat("sequence ", i, " is empty"));
      if (static_cast<int64_t>(sequences[i].size()) > c.max_position_embeddings && c.rope_scaling != RopeScaling::Dynamic)
        throw Error(concat("sequence ", i, " has ", sequences[i].size(), " tokens, more than the model's ",
                           "max_position_embeddings (", c.max_position_embeddings, ")"));
      for (int32_t id : sequences[i])
        if (id < 0 || id >= c.vocab_size)
          throw Error(concat("sequence ", i, ": token id ", id, " is outside the vocabulary (", c.vocab_size, ")"));
    }
    std::vector<SequenceResult> results;
    {
      nb::gil_scoped_release release;
      std::shared_ptr<const LoraAdapter> lora = adapter ? load_adapter(*adapter) : nullptr;
      RunOptions options;
      options.kv_dtype = kv_dtype_;
      options.keep_layer_hidden = hidden_states == 2;
      if (lora) options.adapters.assign(sequences.size(), lora.get());
      std::lock_guard<std::mutex> lock(mutex_);
      results = run_sequences(*model_, sequences, options);
    }
    nb::list out;
    const size_t vocab = static_cast<size_t>(c.vocab_size), hidden = static_cast<size_t>(c.hidden_size);
    for (size_t i = 0; i < results.size(); ++i) {
      const size_t len = sequences[i].size();
      nb::object logits = to_numpy(std::move(results[i].logits), {len, vocab});
      nb::object states = nb::none();
      if (hidden_states == 1) states = to_numpy(std::move(results[i].hidden), {len, hidden});
      if (hidden_states == 2)
        states = to_numpy(all_hidden_states(results[i]), {results[i].layer_hidden.size() + 1, len, hidden});
      out.append(nb::make_tuple(logits, states));
    }
    return out;
  }

  // (nll, perplexity, scored tokens, window, stride)
  std::tuple<double, double, int64_t, int, int> perplexity(const std::vector<int32_t>& tokens, int window, int stride,
                                                           int start_token, bool partial_window,
                                                           const std::optional<std::string>& adapter) {
    nb::gil_scoped_release release;
    std::shared_ptr<const LoraAdapter> lora = adapter ? load_adapter(*adapter) : nullptr;
    PerplexityOptions options;
    options.window = window;
    options.stride = stride;
    options.start_token = start_token;
    options.partial_window = partial_window;
    options.kv_dtype = kv_dtype_;
    options.adapter = lora.get();
    std::lock_guard<std::mutex> lock(mutex_);
    const PerplexityResult r = score_perplexity(*model_, tokens, options);
    return {r.nll, r.perplexity, r.scored_tokens, r.window, r.stride};
  }

 private:
  // Cancels the requests a failed or interrupted call leaves behind.
  struct CancelUnfinished {
    Model* model;
    std::vector<std::shared_ptr<RequestHandle>>* handles;
    ~CancelUnfinished() {
      bool any = false;
      for (auto& h : *handles)
        if (!h->done()) h->cancel(), any = true;
      if (any) model->reap();
    }
  };

  std::vector<std::shared_ptr<RequestHandle>> submit(const std::vector<std::string>& prompts,
                                                     const SamplingParams& params,
                                                     const std::optional<std::string>& adapter) {
    if (!tokenizer_) throw Error(concat(model_->directory(), ": generating text needs a tokenizer.json beside the model"));
    std::shared_ptr<const LoraAdapter> lora = adapter ? load_adapter(*adapter) : nullptr;
    std::vector<std::vector<int32_t>> ids;
    for (size_t i = 0; i < prompts.size(); ++i) {
      ids.push_back(tokenizer_->encode(prompts[i]));
      if (ids.back().empty()) throw Error(concat("prompt ", i, " encodes to no tokens"));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (!engine_) {
      EngineOptions options;
      options.kv_cache_dtype = kv_dtype_;
      options.kv_cache_bytes = kv_bytes_;
      options.max_concurrent_requests = 1 << 30;  // a Python batch waits its turn rather than being refused
      engine_ = std::make_unique<Engine>(model_, tokenizer_, options);
    }
    std::vector<std::shared_ptr<RequestHandle>> handles;
    try {
      for (auto& prompt : ids) handles.push_back(engine_->submit(GenerationRequest{std::move(prompt), params, lora}));
    } catch (...) {
      for (auto& h : handles) h->cancel();
      engine_->step();
      throw;
    }
    return handles;
  }

  // A folder, or a hub id in the local Hugging Face cache; loaded once per model.
  std::shared_ptr<const LoraAdapter> load_adapter(const std::string& id) {
    std::lock_guard<std::mutex> lock(adapters_mutex_);
    auto it = adapters_.find(id);
    if (it != adapters_.end()) return it->second;
    auto adapter = LoraAdapter::load(resolve_model_dir(id, "adapter"), id, model_->config(), lora_dtype_for(model_->weights().dtype));
    adapters_[id] = adapter;
    return adapter;
  }

  std::shared_ptr<GptNeoxModel> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  DType kv_dtype_ = DType::F32;
  size_t kv_bytes_ = 0;
  mutable std::mutex mutex_;  // one forward at a time: the engine's steps, logits, perplexity
  std::unique_ptr<Engine> engine_;  // made at the first generate()
  std::mutex adapters_mutex_;
  std::map<std::string, std::shared_ptr<const LoraAdapter>> adapters_;
};

// One streaming request. Dropped before its end, it is cancelled.
class Stream {
 public:
  Stream(Model& model, std::shared_ptr<RequestHandle> handle) : model_(model), handle_(std::move(handle)) {}
  ~Stream() { close(); }

  // The next token, or None at the end.
  std::optional<TokenTuple> next() {
    if (done_) return std::nullopt;
    RequestEvent event;
    {
      nb::gil_scoped_release release;
      try {
        event = model_.next_event(*handle_);
      } catch (...) {
        close_released();
        throw;
      }
    }
    if (event.kind == RequestEvent::Kind::Token) return token_tuple(event.token);
    done_ = true;
    if (event.kind == RequestEvent::Kind::Failed) throw Error(event.error);
    return std::nullopt;
  }

  void close() {
    if (done_) return;
    nb::gil_scoped_release release;
    close_released();
  }

 private:
  void close_released() {
    if (done_) return;
    done_ = true;
    handle_->cancel();
    model_.reap();
  }

  Model& model_;
  std::shared_ptr<RequestHandle> handle_;
  bool done_ = false;
};

int run_main(const std::vector<std::string>& argv) {
  std::vector<std::string> copy = argv;
  std::vector<char*> pointers;
  for (std::string& arg : copy) pointers.push_back(arg.data());
  pointers.push_back(nullptr);
  nb::gil_scoped_release release;
  return run_command_line(static_cast<int>(copy.size()), pointers.data());
}

}  // namespace
}  // namespace flashneox

NB_MODULE(_core, m) {
  using namespace flashneox;
  m.doc() = "flashneox's C++ engine (use the flashneox package, not this module)";
  nb::exception<Error>(m, "Error", PyExc_RuntimeError);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Interrupted&) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
    }
  });

  nb::class_<SamplingParams>(m, "SamplingParams")
      .def(nb::init<>())
      .def_rw("do_sample", &SamplingParams::do_sample)
      .def_rw("temperature", &SamplingParams::temperature, nb::arg().none())
      .def_rw("top_k", &SamplingParams::top_k, nb::arg().none())
      .def_rw("top_p", &SamplingParams::top_p, nb::arg().none())
      .def_rw("typical_p", &SamplingParams::typical_p, nb::arg().none())
      .def_rw("repetition_penalty", &SamplingParams::repetition_penalty, nb::arg().none())
      .def_rw("frequency_penalty", &SamplingParams::frequency_penalty)
      .def_rw("presence_penalty", &SamplingParams::presence_penalty)
      .def_rw("seed", &SamplingParams::seed, nb::arg().none())
      .def_rw("max_new_tokens", &SamplingParams::max_new_tokens)
      .def_rw("stop", &SamplingParams::stop)
      .def_rw("ignore_eos_token", &SamplingParams::ignore_eos_token)
      .def("validate", &SamplingParams::validate);

  nb::class_<TokenizerHandle>(m, "Tokenizer")
      .def_static("from_file", &TokenizerHandle::from_file, "path"_a)
      .def("encode", &TokenizerHandle::encode, "text"_a)
      .def("decode", &TokenizerHandle::decode, "ids"_a, "skip_special_tokens"_a = false)
      .def("token_id", &TokenizerHandle::token_id, "token"_a)
      .def_prop_ro("vocab_size", &TokenizerHandle::vocab_size);

  nb::class_<Model>(m, "Model")
      .def(nb::init<const std::string&, const std::optional<std::string>&, int, const std::string&,
                    const std::optional<std::string>&, bool>(),
           "model"_a, "dtype"_a.none(), "threads"_a, "kv_cache_dtype"_a, "kv_cache_memory"_a.none(),
           "check_weights"_a)
      .def_prop_ro("tokenizer", &Model::tokenizer)
      .def_prop_ro("directory", &Model::directory)
      .def_prop_ro("dtype", &Model::dtype)
      .def_prop_ro("config", [](const Model& model) {
        const ModelConfig& c = model.config();
        nb::dict d;
        d["vocab_size"] = c.vocab_size;
        d["hidden_size"] = c.hidden_size;
        d["num_layers"] = c.num_layers;
        d["num_heads"] = c.num_heads;
        d["max_position_embeddings"] = c.max_position_embeddings;
        d["eos_token_id"] = c.eos_token_id;
        return d;
      })
      .def_prop_ro("stats", [](const Model& model) {
        EngineStats s;
        {
          nb::gil_scoped_release release;  // waits for a running step
          s = model.stats();
        }
        nb::dict d;
        d["waiting"] = s.waiting;
        d["running"] = s.running;
        d["kv_blocks_total"] = s.kv_blocks_total;
        d["kv_blocks_used"] = s.kv_blocks_used;
        return d;
      })
      .def("generate", &Model::generate, "prompts"_a, "params"_a, "adapter"_a.none())
      .def("logits", &Model::logits, "sequences"_a, "hidden_states"_a, "adapter"_a.none())
      .def("perplexity", &Model::perplexity, "tokens"_a, "window"_a, "stride"_a, "start_token"_a,
           "partial_window"_a, "adapter"_a.none())
      .def(
          "stream",
          [](Model& model, const std::string& prompt, const SamplingParams& params,
             const std::optional<std::string>& adapter) {
            return new Stream(model, model.start_stream(prompt, params, adapter));
          },
          "prompt"_a, "params"_a, "adapter"_a.none(), nb::keep_alive<0, 1>(), nb::rv_policy::take_ownership);

  nb::class_<Stream>(m, "Stream")
      .def("next", &Stream::next)
      .def("close", &Stream::close);

  m.def("main", &run_main, "argv"_a, "Runs the flashneox command line (argv[0] is the program name).");
}
