#include "model/gpt_neox.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "distributed/communicator.h"
#include "distributed/tensor_parallel_protocol.h"
#include "lora/lora_shard.h"

namespace flashneox {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

GptNeoxModel::GptNeoxModel(std::string dir, ModelConfig config, ModelWeights weights,
                           std::unique_ptr<Backend> backend, Shard shard, Communicator* tensor_parallel)
    : dir_(std::move(dir)),
      config_(std::move(config)),
      weights_(std::move(weights)),
      backend_(std::move(backend)),
      shard_(shard),
      tp_(shard.ranks > 1 ? tensor_parallel : nullptr) {}

std::unique_ptr<GptNeoxModel> GptNeoxModel::load(const std::string& dir,
                                                 std::unique_ptr<Backend> backend,
                                                 const LoadOptions& options) {
  ModelConfig config = ModelConfig::from_file(dir + "/config.json");
  if (config.head_size > 256)
    throw Error(concat(dir, "/config.json: head size ", config.head_size,
                       " is larger than the 256 the attention kernels support"));
  Shard shard;
  if (options.tensor_parallel) shard = {options.tensor_parallel->rank(), options.tensor_parallel->size()};
  if (shard.ranks > 1) {
    if (config.num_heads % shard.ranks)
      throw Error(concat(dir, "/config.json: ", config.num_heads, " attention heads cannot be split evenly over ",
                         shard.ranks, " ranks; run a number of ranks that divides them"));
    if (config.intermediate_size % shard.ranks)
      throw Error(concat(dir, "/config.json: intermediate_size ", config.intermediate_size,
                         " cannot be split evenly over ", shard.ranks, " ranks"));
    if (config.vocab_size < shard.ranks)
      throw Error(concat(dir, "/config.json: a vocabulary of ", config.vocab_size, " cannot be split over ",
                         shard.ranks, " ranks"));
  }
  if (!backend) backend = make_cpu_backend();
  ModelWeights weights = ModelWeights::load(dir, config, *backend, options, shard);
  return std::unique_ptr<GptNeoxModel>(new GptNeoxModel(dir, std::move(config), std::move(weights),
                                                        std::move(backend), shard, options.tensor_parallel));
}

std::unique_ptr<KvCache> GptNeoxModel::make_cache(int num_blocks, int block_size, DType dtype) const {
  return std::make_unique<KvCache>(config_.num_layers, num_blocks, block_size, local_heads(),
                                   config_.head_size, dtype);
}

void GptNeoxModel::validate(const ForwardBatch& b, const KvCache& cache,
                            const std::vector<int32_t>& cu_q) const {
  const int tokens = b.num_tokens();
  const int seqs = b.num_seqs();
  if (tokens == 0 || seqs == 0) throw Error("forward: empty batch");
  if (static_cast<int>(b.position_ids.size()) != tokens ||
      static_cast<int>(b.slots.size()) != tokens)
    throw Error("forward: input_ids, position_ids and slots must have the same length");
  if (static_cast<int>(b.block_tables.size()) != seqs)
    throw Error("forward: one block table per sequence is required");
  if (cu_q.back() != tokens)
    throw Error(concat("forward: cu_seqlen_prefill ends at ", cu_q.back(), " but the batch has ",
                       tokens, " tokens"));
  for (int t = 0; t < tokens; ++t) {
    if (b.input_ids[t] < 0 || b.input_ids[t] >= config_.vocab_size)
      throw Error(concat("token id ", b.input_ids[t], " is outside the vocabulary (size ",
                         config_.vocab_size, ")"));
    if (b.position_ids[t] < 0) throw Error("forward: negative position id");
    if (b.slots[t] < 0 || b.slots[t] >= cache.num_slots())
      throw Error(concat("forward: slot ", b.slots[t], " is outside the cache"));
  }
  for (int s = 0; s < seqs; ++s) {
    const int q_len = cu_q[s + 1] - cu_q[s];
    if (q_len <= 0) throw Error(concat("forward: sequence ", s, " brings no tokens"));
    if (b.cached_lens[s] < 0) throw Error("forward: negative cached length");
    const int64_t context = static_cast<int64_t>(b.cached_lens[s]) + q_len;
    if (context > static_cast<int64_t>(b.block_tables[s].size()) * cache.block_size())
      throw Error(concat("forward: sequence ", s, " needs ", context,
                         " cache slots but its block table holds fewer"));
    for (int32_t block : b.block_tables[s])
      if (block < 0 || block >= cache.num_blocks())
        throw Error(concat("forward: block ", block, " is outside the cache"));
  }
  for (int32_t row : b.lm_head_indices)
    if (row < 0 || row >= tokens) throw Error(concat("forward: lm_head index ", row, " out of range"));
  if (!b.adapters.empty()) {
    if (static_cast<int>(b.adapters.size()) != seqs) throw Error("forward: one adapter entry per sequence is required");
    for (const LoraAdapter* a : b.adapters)
      if (a && static_cast<int>(a->layers.size()) != config_.num_layers)
        throw Error(concat("forward: adapter '", a->name, "' was loaded for a model of ", a->layers.size(), " layers"));
  }
}

void GptNeoxModel::rotary_tables(const ForwardBatch& b, const std::vector<int32_t>& cu_q,
                                 std::vector<float>& cos, std::vector<float>& sin) const {
  const int half = config_.rotary_dims / 2;
  const double r = config_.rotary_dims;
  cos.resize(static_cast<size_t>(b.num_tokens()) * half);
  sin.resize(cos.size());
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int s = 0; s < b.num_seqs(); ++s) {
    double base = config_.rotary_base;
    if (config_.rope_scaling == RopeScaling::Dynamic) {
      // As transformers computes it: the base grows with the sequence length
      // once it passes max_position_embeddings. Keys already cached keep the
      // rotation they were written with (as in transformers with a cache).
      int32_t max_pos = 0;
      for (int t = cu_q[s]; t < cu_q[s + 1]; ++t) max_pos = std::max(max_pos, b.position_ids[t]);
      const double length = max_pos + 1.0;
      const double limit = config_.max_position_embeddings;
      if (length > limit) {
        const double f = config_.rope_factor;
        base *= std::pow(f * length / limit - (f - 1.0), r / (r - 2.0));
      }
    }
    for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(base, -2.0 * i / r);
    for (int t = cu_q[s]; t < cu_q[s + 1]; ++t) {
      double pos = b.position_ids[t];
      if (config_.rope_scaling == RopeScaling::Linear) pos /= config_.rope_factor;
      for (int i = 0; i < half; ++i) {
        const double theta = pos * inv_freq[i];
        cos[static_cast<size_t>(t) * half + i] = static_cast<float>(std::cos(theta));
        sin[static_cast<size_t>(t) * half + i] = static_cast<float>(std::sin(theta));
      }
    }
  }
}

ForwardOutput GptNeoxModel::forward(const ForwardBatch& b, KvCache& cache, ForwardWorkspace* workspace) {
  const int S = b.num_seqs();
  std::vector<int32_t> cu_q = b.cu_seqlen_prefill;
  if (cu_q.empty()) {  // decode: one token per sequence
    cu_q.resize(static_cast<size_t>(S) + 1);
    for (int s = 0; s <= S; ++s) cu_q[s] = s;
  }
  if (static_cast<int>(cu_q.size()) != S + 1 || cu_q[0] != 0)
    throw Error("forward: cu_seqlen_prefill must have num_seqs + 1 entries starting at 0");
  validate(b, cache, cu_q);
  if (cache.heads() != local_heads()) throw Error("forward: the KV cache was made for another model");
  if (!tp_) return run(b, cache, cu_q, workspace);
  const Clock::time_point start = Clock::now();
  auto send = [&](std::vector<char> bytes) {
    const Clock::time_point sent = Clock::now();
    tp_->broadcast(bytes);
    times_.communication_seconds += seconds_since(sent);
  };
  const ForwardBatch* batch = &b;
  ForwardBatch cut;  // rank 0 with adapters: the batch with each adapter's cut for this rank
  if (tp_->rank() == 0) {  // the other ranks run the same batch
    // They keep one cache beside rank 0's newest: an older one is gone there.
    if (cache.serial() < tp_cache_serial_)
      throw Error("forward: with tensor parallelism, only the newest KV cache can be used");
    tp_cache_serial_ = cache.serial();
    TensorParallelStep step{cache.serial(), cache.num_blocks(), cache.block_size(), cache.dtype(), {}};
    if (!b.adapters.empty()) {
      cut = b;
      for (size_t s = 0; s < b.adapters.size(); ++s) {
        const LoraAdapter* a = b.adapters[s];
        step.adapter_uids.push_back(a ? a->uid : 0);
        if (!a) continue;
        if (!shard_adapters_.count(a->uid)) {
          add_shard_adapter(*a);
          send(encode(*a));
        }
        cut.adapters[s] = shard_adapter(a->uid);
      }
      batch = &cut;
    }
    send(encode(step, b));
  }
  try {
    keep_shard_adapters(*batch);
    ForwardOutput out = run(*batch, cache, cu_q, workspace);
    times_.forwards += 1;
    times_.forward_seconds += seconds_since(start);
    return out;
  } catch (const std::exception& e) {
    // The ranks would no longer meet at the same collectives: end the job.
    tp_->abort(concat("the forward failed: ", e.what()));
  }
  return {};  // not reached: abort() ends the job
}

void GptNeoxModel::add_shard_adapter(const LoraAdapter& full) {
  if (static_cast<int>(full.layers.size()) != config_.num_layers)
    throw Error(concat("adapter '", full.name, "' was loaded for a model of ", full.layers.size(), " layers"));
  if (shard_adapters_.count(full.uid)) return;
  shard_adapters_[full.uid] = shard_lora_adapter(full, config_, shard_);
  shard_adapter_order_.push_back(full.uid);
}

const LoraAdapter* GptNeoxModel::shard_adapter(uint64_t uid) const {
  auto it = shard_adapters_.find(uid);
  if (it == shard_adapters_.end()) throw Error(concat("tensor parallelism: adapter ", uid, " was never sent"));
  return it->second.get();
}

void GptNeoxModel::keep_shard_adapters(const ForwardBatch& b) {
  for (auto it = shard_adapter_order_.begin();
       shard_adapters_.size() > kShardAdapters && it != shard_adapter_order_.end();) {
    const bool used = std::any_of(b.adapters.begin(), b.adapters.end(),
                                  [&](const LoraAdapter* a) { return a && a->uid == *it; });
    if (used) {
      ++it;
    } else {
      shard_adapters_.erase(*it);
      it = shard_adapter_order_.erase(it);
    }
  }
}

ForwardOutput GptNeoxModel::run(const ForwardBatch& b, KvCache& cache, const std::vector<int32_t>& cu_q,
                                ForwardWorkspace* workspace) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int64_t T = b.num_tokens();
  const int S = b.num_seqs();
  const int64_t H = c.hidden_size;
  const int heads = local_heads();
  const int64_t local_width = static_cast<int64_t>(heads) * c.head_size;  // this rank's attention columns

  // Sequence metadata for the attention kernels.
  std::vector<int32_t> context_lens(static_cast<size_t>(S));
  size_t max_blocks = 1;
  for (int s = 0; s < S; ++s) {
    context_lens[s] = b.cached_lens[s] + cu_q[s + 1] - cu_q[s];
    max_blocks = std::max(max_blocks, b.block_tables[s].size());
  }
  std::vector<int32_t> tables(static_cast<size_t>(S) * max_blocks, 0);
  for (int s = 0; s < S; ++s)
    std::copy(b.block_tables[s].begin(), b.block_tables[s].end(), tables.begin() + s * max_blocks);

  std::vector<float> cos, sin;
  rotary_tables(b, cu_q, cos, sin);

  ForwardWorkspace own;
  ForwardWorkspace& ws = workspace ? *workspace : own;
  ws.reserve(c, T);
  float* const x = ws.x();  // the residual stream
  float* const normed = ws.normed();
  float* const normed_mlp = ws.normed_mlp();
  float* const qkv = ws.qkv();
  float* const q = ws.q();
  float* const attn = ws.attn();
  float* const attn_out = ws.attn_out();
  float* const mlp_out = ws.mlp_out();
  float* const mlp_hidden = ws.mlp_hidden();
  if (!tp_) {
    be.embed(weights_.embed_in, b.input_ids.data(), T, x);
  } else {  // the rows of this rank's slice of the vocabulary; they meet in an all-reduce
    const int64_t begin = shard_.vocab_begin(c.vocab_size), end = shard_.vocab_end(c.vocab_size);
    WeightMatrix slice = weights_.embed_in;
    slice.data = static_cast<const char*>(slice.data) + static_cast<size_t>(begin * H) * dtype_size(slice.dtype);
    slice.rows = end - begin;
    std::vector<int32_t> ids;
    std::vector<int64_t> rows;
    for (int64_t t = 0; t < T; ++t)
      if (b.input_ids[t] >= begin && b.input_ids[t] < end) {
        ids.push_back(static_cast<int32_t>(b.input_ids[t] - begin));
        rows.push_back(t);
      }
    std::vector<float> found(ids.size() * static_cast<size_t>(H));
    if (!ids.empty()) be.embed(slice, ids.data(), static_cast<int64_t>(ids.size()), found.data());
    std::fill_n(x, T * H, 0.0f);
    for (size_t i = 0; i < rows.size(); ++i) std::copy_n(found.data() + i * H, H, x + rows[i] * H);
    const Clock::time_point start = Clock::now();
    tp_->all_reduce_sum(x, T * H);  // one nonzero term per element: exact
    times_.communication_seconds += seconds_since(start);
  }

  AttentionParams ap;
  ap.q = q;
  ap.out = attn;
  ap.heads = heads;
  ap.head_size = c.head_size;
  ap.block_size = cache.block_size();
  ap.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_size)));
  ap.num_seqs = S;
  ap.cu_q = cu_q.data();
  ap.context_lens = context_lens.data();
  ap.block_tables = tables.data();
  ap.max_blocks_per_seq = static_cast<int>(max_blocks);
  ap.kv_dtype = cache.dtype();

  // LoRA: runs of token rows whose sequences share an adapter; each
  // projection adds its low-rank product over them (never merged weights).
  struct AdapterRows {
    const LoraAdapter* adapter;
    int64_t begin, end;
  };
  std::vector<AdapterRows> adapter_rows;
  for (size_t s = 0; s < b.adapters.size(); ++s) {
    const LoraAdapter* a = b.adapters[s];
    if (!a) continue;
    if (!adapter_rows.empty() && adapter_rows.back().adapter == a && adapter_rows.back().end == cu_q[s])
      adapter_rows.back().end = cu_q[s + 1];
    else
      adapter_rows.push_back({a, cu_q[s], cu_q[s + 1]});
  }
  std::vector<LoraSegment> segments;
  auto lora_segments = [&](int layer, LoraModule m) {  // false: no row of this step adapts the module
    segments.clear();
    for (const AdapterRows& r : adapter_rows)
      if (const LoraWeights* w = r.adapter->find(layer, m))
        segments.push_back({r.begin, r.end, w->a_data(), w->b_data(), w->rank, w->scale, w->dtype});
    return !segments.empty();
  };
  auto lora = [&](int layer, LoraModule m, const float* input, int64_t in, float* output, int64_t out) {
    if (lora_segments(layer, m))
      be.lora_add(input, in, segments.data(), static_cast<int>(segments.size()), output, out);
  };

  const float eps = static_cast<float>(c.layer_norm_eps);
  auto bias_or_null = [](const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); };
  auto mlp = [&](int l, const LayerWeights& lw, const float* input) {
    const int64_t I = lw.fc_in.rows;  // this rank's units
    if (lora_segments(l, LoraModule::FcIn)) {  // the low-rank term goes in before the activation
      be.linear(input, T, lw.fc_in, lw.fc_in_bias.data(), mlp_hidden);
      be.lora_add(input, H, segments.data(), static_cast<int>(segments.size()), mlp_hidden, I);
      be.activation(mlp_hidden, T * I, c.activation);
    } else {
      be.linear_activation(input, T, lw.fc_in, lw.fc_in_bias.data(), c.activation, mlp_hidden);
    }
    be.linear(mlp_hidden, T, lw.fc_out, bias_or_null(lw.fc_out_bias), mlp_out);
    lora(l, LoraModule::FcOut, mlp_hidden, I, mlp_out, H);
  };
  // A row-parallel projection's partial sums, added over the ranks.
  auto all_reduce = [&](float* partial) {
    if (!tp_) return;
    const Clock::time_point start = Clock::now();
    tp_->all_reduce_sum(partial, T * H);
    times_.communication_seconds += seconds_since(start);
  };

  // The rows asked for (lm_head_indices, else all) of a [T, H] activation.
  const int64_t kept_rows = b.lm_head_indices.empty() ? T : static_cast<int64_t>(b.lm_head_indices.size());
  auto gather_rows = [&](const float* src, float* dst) {
    if (b.lm_head_indices.empty()) {
      std::copy_n(src, T * H, dst);
      return;
    }
    for (size_t i = 0; i < b.lm_head_indices.size(); ++i)
      std::copy_n(src + b.lm_head_indices[i] * H, H, dst + static_cast<int64_t>(i) * H);
  };
  ForwardOutput out;
  out.rows = kept_rows;
  if (b.keep_layer_hidden) out.layer_hidden.resize(static_cast<size_t>(c.num_layers * kept_rows * H));

  // x += a (+ b), and the norms the next layer starts with, in one pass (after the last layer, only the add).
  auto residual = [&](int next, const float* a, const float* b2) {
    if (next == c.num_layers) {
      be.add(x, a, b2, T * H);
      return;
    }
    const LayerWeights& nw = weights_.layers[next];
    Backend::Norm mlp_norm;  // a parallel residual's MLP reads the same x
    if (c.parallel_residual) mlp_norm = {nw.ln2_weight.data(), nw.ln2_bias.data(), normed_mlp};
    be.add_norms(x, a, b2, T, H, eps, {nw.ln1_weight.data(), nw.ln1_bias.data(), normed}, mlp_norm);
  };
  residual(0, nullptr, nullptr);

  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = weights_.layers[l];
    if (b.keep_layer_hidden) gather_rows(x, out.layer_hidden.data() + l * kept_rows * H);
    be.linear(normed, T, lw.qkv, bias_or_null(lw.qkv_bias), qkv);
    lora(l, LoraModule::Qkv, normed, H, qkv, lw.qkv.rows);
    be.rotary_and_cache(qkv, T, heads, c.head_size, c.rotary_dims, cos.data(),
                        sin.data(), b.slots.data(), q, cache.keys(l), cache.values(l),
                        cache.dtype(), cache.block_size());
    ap.k_cache = cache.keys(l);
    ap.v_cache = cache.values(l);
    if (b.is_prefill())
      be.prefill_attention(ap);
    else
      be.decode_attention(ap);
    be.linear(attn, T, lw.dense, bias_or_null(lw.dense_bias), attn_out);
    lora(l, LoraModule::Dense, attn, local_width, attn_out, H);
    if (c.parallel_residual) {  // x' = x + attn(ln1(x)) + mlp(ln2(x))
      mlp(l, lw, normed_mlp);
      if (tp_) {  // both partial sums in one all-reduce (the seed's trick)
        be.add(attn_out, mlp_out, nullptr, T * H);
        all_reduce(attn_out);
        residual(l + 1, attn_out, nullptr);
      } else {
        residual(l + 1, attn_out, mlp_out);
      }
    } else {  // h = x + attn(ln1(x)); x' = h + mlp(ln2(h))
      all_reduce(attn_out);
      be.add_norms(x, attn_out, nullptr, T, H, eps, {lw.ln2_weight.data(), lw.ln2_bias.data(), normed}, {});
      mlp(l, lw, normed);
      all_reduce(mlp_out);
      residual(l + 1, mlp_out, nullptr);
    }
  }

  // Keep only the rows asked for before the final norm and the LM head.
  const float* kept = x;
  std::vector<float> gathered;
  if (!b.lm_head_indices.empty()) {
    gathered.resize(static_cast<size_t>(kept_rows * H));
    gather_rows(x, gathered.data());
    kept = gathered.data();
  }
  out.hidden.resize(static_cast<size_t>(out.rows * H));
  be.layer_norm(kept, out.rows, H, weights_.final_ln_weight.data(), weights_.final_ln_bias.data(),
                eps, out.hidden.data());
  if (!b.skip_lm_head && !tp_) {
    out.logits.resize(static_cast<size_t>(out.rows) * c.vocab_size);
    be.linear(out.hidden.data(), out.rows, weights_.embed_out, nullptr, out.logits.data());
  } else if (!b.skip_lm_head) {  // each rank's slice of the vocabulary, gathered on rank 0
    const int64_t width = weights_.embed_out.rows;
    std::vector<char> mine(static_cast<size_t>(out.rows * width) * sizeof(float));
    be.linear(out.hidden.data(), out.rows, weights_.embed_out, nullptr, reinterpret_cast<float*>(mine.data()));
    std::vector<int64_t> sizes;
    const Clock::time_point gathering = Clock::now();
    const std::vector<char> all = tp_->gather(mine, &sizes);
    times_.communication_seconds += seconds_since(gathering);
    if (tp_->rank() == 0) {
      out.logits.resize(static_cast<size_t>(out.rows) * c.vocab_size);
      const char* piece = all.data();
      for (int r = 0; r < shard_.ranks; ++r) {
        const Shard other{r, shard_.ranks};
        const int64_t begin = other.vocab_begin(c.vocab_size), w = other.vocab_end(c.vocab_size) - begin;
        if (sizes[r] != static_cast<int64_t>(out.rows * w * sizeof(float)))
          throw Error(concat("rank ", r, " sent logits of another shape"));
        for (int64_t row = 0; row < out.rows; ++row)
          std::memcpy(out.logits.data() + row * c.vocab_size + begin, piece + row * w * sizeof(float),
                      static_cast<size_t>(w) * sizeof(float));
        piece += sizes[r];
      }
    }
  }
  return out;
}

}  // namespace flashneox
