// Tensor parallelism without MPI: the ranks as threads of this process
// (ThreadCommunicator), through the same load, protocol and worker loop as
// `mpirun`. Every fixture split over 2 ranks and over one rank per head gives
// the logits and hidden states of the whole model in three batching modes,
// with LoRA adapters too; an engine over the bundled model split in 3 gives
// its greedy tokens. Also the shard arithmetic, an adapter's cut, and the
// protocol's messages (round trip, damaged bytes refused). Unit-labelled, so
// it runs under ASan/UBSan and on aarch64 as well.
#include <gtest/gtest.h>

#include <thread>

#include "core/error.h"
#include "core/parallel.h"
#include "distributed/tensor_parallel_job.h"
#include "distributed/tensor_parallel_protocol.h"
#include "distributed/thread_communicator.h"
#include "engine/engine.h"
#include "lora/lora_shard.h"
#include "model/sequence_runner.h"
#include "test_support.h"

namespace flashneox {
namespace {

// body(model) on rank 0 of `ranks` threads while the others serve it.
template <typename Body>
void with_split_model(const std::string& dir, int ranks, Body body) {
  set_num_threads(1);  // the ranks share this process's pool: one thread each
  auto world = ThreadCommunicator::make_world(ranks);
  std::vector<std::thread> workers;
  for (int r = 1; r < ranks; ++r) workers.emplace_back([&world, r] { run_tensor_parallel_worker(*world[r]); });
  try {
    std::unique_ptr<GptNeoxModel> model = load_tensor_parallel_model(*world[0], dir, {});
    ASSERT_EQ(model->shard().ranks, ranks);
    body(std::shared_ptr<GptNeoxModel>(std::move(model)));
  } catch (...) {
    stop_tensor_parallel_workers(*world[0]);
    for (auto& t : workers) t.join();
    throw;
  }
  stop_tensor_parallel_workers(*world[0]);
  for (auto& t : workers) t.join();
}

void expect_same_results(const std::vector<SequenceResult>& got, const std::vector<SequenceResult>& want,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].logits.size(), want[i].logits.size()) << what;
    EXPECT_LT(testing::max_abs_diff(got[i].logits, want[i].logits), 1e-4f) << what << " logits " << i;
    EXPECT_LT(testing::max_abs_diff(got[i].hidden, want[i].hidden), 1e-4f) << what << " hidden " << i;
  }
}

std::vector<RunOptions> modes() {
  std::vector<RunOptions> out(3);
  out[1].prefill_half = true;
  out[1].block_size = 7;
  out[1].scatter_blocks = true;
  out[2].cached_prefix = 2;
  out[2].prefill_half = true;
  out[2].block_size = 4;
  return out;
}

TEST(TensorParallelForward, EveryFixtureSplitGivesTheWholeModelsLogits) {
  for (const std::string& name : testing::fixture_model_names()) {
    const std::string dir = testing::fixture_model(name);
    const auto ref = testing::load_reference(dir);
    auto whole = GptNeoxModel::load(dir);
    std::vector<std::vector<SequenceResult>> want;
    for (const RunOptions& o : modes()) want.push_back(run_sequences(*whole, ref.prompts, o));
    const int heads = whole->config().num_heads;
    for (int ranks : {2, heads}) {  // every mode over 2 ranks; one head per rank in the second mode
      if (ranks == heads && heads == 2) continue;
      with_split_model(dir, ranks, [&](std::shared_ptr<GptNeoxModel> split) {
        for (size_t m = ranks == 2 ? 0 : 1; m < (ranks == 2 ? want.size() : 2); ++m)
          expect_same_results(run_sequences(*split, ref.prompts, modes()[m]), want[m],
                              name + " over " + std::to_string(ranks) + " ranks, mode " + std::to_string(m));
      });
    }
  }
}

TEST(TensorParallelForward, AdaptersSplitGiveTheWholeModelsLogits) {
  for (const std::string name : {"neox-parallel", "neox-sequential"}) {
    const std::string dir = testing::fixture_model(name);
    const auto ref = testing::load_reference(dir);
    auto whole = GptNeoxModel::load(dir);
    std::vector<std::shared_ptr<const LoraAdapter>> adapters;
    for (const char* a : {"lora-a", "lora-b"})
      adapters.push_back(LoraAdapter::load(dir + "/adapters/" + a, a, whole->config()));
    RunOptions o = modes()[1];
    for (size_t i = 0; i < ref.prompts.size(); ++i) o.adapters.push_back(i % 3 == 2 ? nullptr : adapters[i % 2].get());
    const auto want = run_sequences(*whole, ref.prompts, o);
    with_split_model(dir, 2, [&](std::shared_ptr<GptNeoxModel> split) {
      expect_same_results(run_sequences(*split, ref.prompts, o), want, name + " with adapters");
      expect_same_results(run_sequences(*split, ref.prompts, o), want, name + " with adapters, sent before");
    });
  }
}

// The engine over a model split in 3 (the bundled model's 6 heads, 2 each):
// the greedy tokens of the whole model, with prefix caching, speculation,
// chunked prefill and preemption (40 blocks of 4 tokens for 6 sequences).
TEST(TensorParallelForward, AnEngineOverASplitModelGivesTheSameTokens) {
  const std::string dir = testing::bundled_model();
  std::shared_ptr<const Tokenizer> tokenizer = Tokenizer::from_file(dir + "/tokenizer.json");
  auto tokens_of = [&](std::shared_ptr<GptNeoxModel> model) {
    EngineOptions options;
    options.block_size = 4;
    const ModelConfig& c = model->config();
    options.kv_cache_bytes = KvCache::block_bytes(c.num_layers, 4, model->local_heads(), c.head_size) * 40;
    options.max_total_tokens = 128;
    options.max_batch_prefill_tokens = 24;
    options.max_batch_total_tokens = 4096;
    options.speculate = 3;
    Engine engine(model, tokenizer, options);
    std::vector<std::shared_ptr<RequestHandle>> handles;
    for (int i = 0; i < 6; ++i) {
      GenerationRequest r;
      r.prompt = tokenizer->encode(i % 2 ? "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?" : "ROMEO:");
      r.params.max_new_tokens = 24 + i;
      r.params.ignore_eos_token = true;
      handles.push_back(engine.submit(r));
    }
    engine.run_until_idle();
    const auto outcomes = engine.metrics().requests_by_outcome();
    EXPECT_TRUE(outcomes.count("preempted") && outcomes.at("preempted") > 0);
    EXPECT_EQ(engine.stats().kv_blocks_free, engine.stats().kv_blocks_total);
    std::vector<std::vector<int32_t>> out;
    for (auto& h : handles) {
      out.emplace_back();
      RequestEvent e;
      while (h->next(e, std::chrono::milliseconds(0)))
        if (e.kind == RequestEvent::Kind::Token) out.back().push_back(e.token.id);
    }
    return out;
  };
  set_num_threads(1);
  const auto want = tokens_of(GptNeoxModel::load(dir));
  with_split_model(dir, 3, [&](std::shared_ptr<GptNeoxModel> split) { EXPECT_EQ(tokens_of(split), want); });
}

TEST(TensorParallelForward, ShardsCoverEverythingOnce) {
  for (int ranks : {1, 2, 3, 4, 7}) {
    for (int64_t n : {7, 777, 1000, 50304}) {
      int64_t next = 0, vocab_next = 0;
      for (int r = 0; r < ranks; ++r) {
        const Shard s{r, ranks};
        EXPECT_EQ(s.begin(n), next);
        next = s.end(n);
        EXPECT_EQ(s.vocab_begin(n), vocab_next);
        EXPECT_LE(s.vocab_end(n) - s.vocab_begin(n), (n + ranks - 1) / ranks);
        vocab_next = s.vocab_end(n);
      }
      EXPECT_EQ(next, n);
      EXPECT_EQ(vocab_next, n);
    }
  }
}

// An adapter's cuts, put back together, are the adapter.
TEST(TensorParallelForward, AnAdaptersCutsMakeTheWhole) {
  const std::string dir = testing::fixture_model("neox-parallel");
  const ModelConfig c = ModelConfig::from_file(dir + "/config.json");
  const auto full = LoraAdapter::load(dir + "/adapters/lora-a", "a", c);
  const int ranks = 2;
  std::vector<std::shared_ptr<const LoraAdapter>> cuts;
  for (int r = 0; r < ranks; ++r) cuts.push_back(shard_lora_adapter(*full, c, {r, ranks}));
  int checked = 0;
  for (int l = 0; l < c.num_layers; ++l)
    for (int m = 0; m < kLoraModules; ++m) {
      const LoraWeights* w = full->find(l, static_cast<LoraModule>(m));
      if (!w) continue;
      const bool by_output = m == static_cast<int>(LoraModule::Qkv) || m == static_cast<int>(LoraModule::FcIn);
      const std::vector<float>& whole = by_output ? w->b : w->a;
      const int64_t width = static_cast<int64_t>(whole.size()) / w->rank;
      std::vector<float> joined;
      for (int64_t row = 0; row < w->rank; ++row)
        for (const auto& cut : cuts) {
          const LoraWeights* p = cut->find(l, static_cast<LoraModule>(m));
          ASSERT_TRUE(p);
          EXPECT_EQ(by_output ? p->a : p->b, by_output ? w->a : w->b);  // the other matrix stays whole
          const std::vector<float>& part = by_output ? p->b : p->a;
          const int64_t part_width = static_cast<int64_t>(part.size()) / w->rank;
          EXPECT_EQ(part_width * ranks, width);
          joined.insert(joined.end(), part.begin() + row * part_width, part.begin() + (row + 1) * part_width);
        }
      EXPECT_EQ(joined, whole) << "layer " << l << " module " << m;
      ++checked;
    }
  EXPECT_GT(checked, 0);
}

TEST(TensorParallelProtocol, MessagesRoundTripAndDamageIsRefused) {
  TensorParallelForward f;
  f.step.cache_serial = 42;
  f.step.num_blocks = 9;
  f.step.block_size = 7;
  f.step.kv_dtype = DType::F16;
  f.batch.input_ids = {5, 6, 7};
  f.batch.position_ids = {0, 1, 0};
  f.batch.cu_seqlen_prefill = {0, 2, 3};
  f.batch.cached_lens = {0, 0};
  f.batch.block_tables = {{3, 1}, {8}};
  f.batch.slots = {21, 22, 56};
  f.batch.lm_head_indices = {1, 2};
  f.batch.keep_layer_hidden = true;
  const std::vector<char> bytes = encode(f.step, f.batch);
  ASSERT_EQ(command_of(bytes), TensorParallelCommand::Forward);
  const TensorParallelForward g = decode_forward(bytes);
  EXPECT_EQ(g.step.cache_serial, 42u);
  EXPECT_EQ(g.step.num_blocks, 9);
  EXPECT_EQ(g.step.block_size, 7);
  EXPECT_EQ(g.step.kv_dtype, DType::F16);
  EXPECT_EQ(g.batch.input_ids, f.batch.input_ids);
  EXPECT_EQ(g.batch.position_ids, f.batch.position_ids);
  EXPECT_EQ(g.batch.cu_seqlen_prefill, f.batch.cu_seqlen_prefill);
  EXPECT_EQ(g.batch.block_tables, f.batch.block_tables);
  EXPECT_EQ(g.batch.slots, f.batch.slots);
  EXPECT_EQ(g.batch.lm_head_indices, f.batch.lm_head_indices);
  EXPECT_TRUE(g.batch.keep_layer_hidden);
  EXPECT_FALSE(g.batch.skip_lm_head);
  for (size_t cut : {size_t{1}, size_t{9}, bytes.size() - 1})
    EXPECT_THROW(decode_forward(std::vector<char>(bytes.begin(), bytes.begin() + cut)), Error) << cut;
  std::vector<char> longer = bytes;
  longer.push_back(0);
  EXPECT_THROW(decode_forward(longer), Error);

  TensorParallelLoad l{"/models/pythia", static_cast<int>(DType::I8), true, 3, "fingerprint"};
  const TensorParallelLoad m = decode_load(encode(l));
  EXPECT_EQ(m.dir, l.dir);
  EXPECT_EQ(m.weight_dtype, l.weight_dtype);
  EXPECT_TRUE(m.check_weights);
  EXPECT_EQ(m.threads, 3);
  EXPECT_EQ(m.fingerprint, l.fingerprint);
  EXPECT_EQ(command_of(encode_stop()), TensorParallelCommand::Stop);
  EXPECT_THROW(command_of({}), Error);
  EXPECT_THROW(command_of({char{9}}), Error);

  f.step.adapter_uids = {0, 77};
  EXPECT_EQ(decode_forward(encode(f.step, f.batch)).step.adapter_uids, f.step.adapter_uids);
  f.step.adapter_uids = {77};  // one per sequence, or none
  EXPECT_THROW(decode_forward(encode(f.step, f.batch)), Error);

  LoraAdapter adapter;
  adapter.uid = 77;
  adapter.name = "a";
  adapter.layers.resize(2);
  adapter.config_scale.resize(2, {1, 2, 3, 4});
  LoraWeights w;
  w.rank = 2;
  w.scale = 0.5f;
  w.a = {1, 2, 3, 4};
  w.b = {5, 6};
  adapter.layers[1][2] = w;
  const std::vector<char> sent = encode(adapter);
  ASSERT_EQ(command_of(sent), TensorParallelCommand::Adapter);
  const auto got = decode_adapter(sent);
  EXPECT_EQ(got->uid, 77u);
  EXPECT_EQ(got->name, "a");
  ASSERT_EQ(got->layers.size(), 2u);
  EXPECT_FALSE(got->find(0, LoraModule::FcIn));
  ASSERT_TRUE(got->find(1, LoraModule::FcIn));
  EXPECT_EQ(got->find(1, LoraModule::FcIn)->a, w.a);
  EXPECT_EQ(got->find(1, LoraModule::FcIn)->b, w.b);
  EXPECT_EQ(got->find(1, LoraModule::FcIn)->scale, 0.5f);
  EXPECT_EQ(got->config_scale[1][3], 4.0f);
  EXPECT_THROW(decode_adapter(std::vector<char>(sent.begin(), sent.end() - 3)), Error);
}

}  // namespace
}  // namespace flashneox
