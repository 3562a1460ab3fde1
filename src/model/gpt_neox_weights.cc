#include "model/gpt_neox_weights.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/error.h"

namespace flashneox {

namespace {

// Counts NaN and infinite values (exponent bits all set) on the stored bits,
// without widening; `first` gets the index of the first one.
// Tensor data may sit at any alignment in the file: read each value by memcpy.
template <typename Bits>
size_t count_all_ones(const void* data, size_t n, Bits mask, size_t* first) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  auto at = [&](size_t i) {
    Bits v;
    std::memcpy(&v, p + i * sizeof(Bits), sizeof(Bits));
    return (v & mask) == mask;
  };
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += at(i);
  if (bad)
    for (size_t i = 0; i < n; ++i)
      if (at(i)) {
        *first = i;
        break;
      }
  return bad;
}

size_t count_non_finite(const TensorView& view, size_t* first) {
  const size_t n = static_cast<size_t>(view.numel());
  switch (view.dtype) {
    case DType::F32: return count_all_ones(view.data, n, uint32_t{0x7f800000}, first);
    case DType::F16: return count_all_ones(view.data, n, uint16_t{0x7c00}, first);
    case DType::BF16: return count_all_ones(view.data, n, uint16_t{0x7f80}, first);
    default: return 0;
  }
}

struct Loader {
  Loader(const Checkpoint& c, Backend& b, const LoadOptions& o) : ckpt(c), backend(b), options(o) {}
  const Checkpoint& ckpt;
  Backend& backend;
  const LoadOptions& options;
  size_t params = 0;
  size_t packed_bytes = 0;
  size_t total = 0, done = 0;
  bool show_progress = false;
  std::set<std::string> used;
  double check_seconds = 0.0;
  size_t checked_bytes = 0;

  const TensorView& get(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorView& view = ckpt.get(name, shape);
    if (used.insert(name).second && options.check_weights) {
      const auto start = std::chrono::steady_clock::now();
      size_t first = 0;
      if (const size_t bad = count_non_finite(view, &first))
        throw Error(concat(view.file, ": tensor '", name, "' holds ", bad, " NaN or infinite value", bad > 1 ? "s" : "",
                           " (the first at flat index ", first, "); the checkpoint is damaged"));
      check_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      checked_bytes += view.nbytes;
    }
    return view;
  }

  std::vector<float> vector(const std::string& name, int64_t n) {
    const TensorView& view = get(name, {n});
    std::vector<float> out(static_cast<size_t>(n));
    convert_to_f32(view.dtype, view.data, out.data(), out.size());
    params += static_cast<size_t>(n);
    return out;
  }
  WeightMatrix raw(const std::string& name, int64_t rows, int64_t cols) {
    const TensorView& view = get(name, {rows, cols});
    params += static_cast<size_t>(rows * cols);
    return WeightMatrix{view.dtype, view.data, rows, cols};
  }
  // Rows [row_begin, row_end) and columns [col_begin, col_end) of a matrix
  // (all of it by default), repacked by the backend; the mapped source pages
  // are dropped afterwards.
  WeightMatrix packed(const std::string& name, int64_t rows, int64_t cols, bool drop = true,
                      int64_t row_begin = 0, int64_t row_end = -1, int64_t col_begin = 0, int64_t col_end = -1) {
    WeightMatrix source = raw(name, rows, cols);
    if (row_end < 0) row_end = rows;
    if (col_end < 0) col_end = cols;
    const size_t esize = dtype_size(source.dtype);
    std::vector<char> columns;  // a column slice is strided: copied out first
    source.data = static_cast<const char*>(source.data) + static_cast<size_t>(row_begin * cols) * esize;
    source.rows = row_end - row_begin;
    if (col_begin != 0 || col_end != cols) {
      const size_t width = static_cast<size_t>(col_end - col_begin) * esize;
      columns.resize(static_cast<size_t>(source.rows) * width);
      for (int64_t r = 0; r < source.rows; ++r)
        std::memcpy(columns.data() + static_cast<size_t>(r) * width,
                    static_cast<const char*>(source.data) + (static_cast<size_t>(r * cols + col_begin)) * esize, width);
      source.data = columns.data();
      source.cols = col_end - col_begin;
    }
    const WeightMatrix out = backend.prepare_weight(source, options.weight_dtype.value_or(source.dtype));
    packed_bytes += static_cast<size_t>(out.bytes);
    if (drop) ckpt.drop_pages(ckpt.view(name));
    done += static_cast<size_t>(rows * cols) * esize;
    if (show_progress)
      std::fprintf(stderr, "\rloading weights: %5.1f%% of %.1f MiB", 100.0 * done / std::max<size_t>(total, 1),
                   total / 1048576.0);
    return out;
  }
};

}  // namespace

ModelWeights ModelWeights::load(const std::string& dir, const ModelConfig& c, Backend& backend,
                                const LoadOptions& options, const Shard& shard) {
  ModelWeights w;
  w.checkpoint = std::make_unique<Checkpoint>(dir);
  Loader ld{*w.checkpoint, backend, options};
  ld.total = w.checkpoint->total_bytes();
  ld.show_progress = isatty(STDERR_FILENO) && ld.total > (256u << 20);
  const int64_t h = c.hidden_size;
  const int64_t inter = c.intermediate_size;
  const int64_t vocab = c.vocab_size;
  // This rank's heads (rows of query_key_value, [heads, 3, head_size]; columns
  // of dense) and MLP units (rows of dense_h_to_4h, columns of dense_4h_to_h).
  const int64_t head_begin = shard.begin(c.num_heads) * c.head_size, head_end = shard.end(c.num_heads) * c.head_size;
  const int64_t unit_begin = shard.begin(inter), unit_end = shard.end(inter);
  auto slice = [](std::vector<float> v, int64_t begin, int64_t end) {
    return std::vector<float>(v.begin() + begin, v.begin() + end);
  };
  const bool first = shard.rank == 0;  // row-parallel biases are added once
  w.embed_in = ld.raw("gpt_neox.embed_in.weight", vocab, h);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.ln1_weight = ld.vector(p + "input_layernorm.weight", h);
    lw.ln1_bias = ld.vector(p + "input_layernorm.bias", h);
    lw.ln2_weight = ld.vector(p + "post_attention_layernorm.weight", h);
    lw.ln2_bias = ld.vector(p + "post_attention_layernorm.bias", h);
    lw.qkv = ld.packed(p + "attention.query_key_value.weight", 3 * h, h, true, 3 * head_begin, 3 * head_end);
    lw.dense = ld.packed(p + "attention.dense.weight", h, h, true, 0, h, head_begin, head_end);
    if (c.attention_bias) {
      lw.qkv_bias = slice(ld.vector(p + "attention.query_key_value.bias", 3 * h), 3 * head_begin, 3 * head_end);
      lw.dense_bias = ld.vector(p + "attention.dense.bias", h);
      if (!first) lw.dense_bias.clear();
    }
    lw.fc_in = ld.packed(p + "mlp.dense_h_to_4h.weight", inter, h, true, unit_begin, unit_end);
    lw.fc_in_bias = slice(ld.vector(p + "mlp.dense_h_to_4h.bias", inter), unit_begin, unit_end);
    lw.fc_out = ld.packed(p + "mlp.dense_4h_to_h.weight", h, inter, true, 0, h, unit_begin, unit_end);
    lw.fc_out_bias = ld.vector(p + "mlp.dense_4h_to_h.bias", h);
    if (!first) lw.fc_out_bias.clear();
    w.layers.push_back(std::move(lw));
  }
  w.final_ln_weight = ld.vector("gpt_neox.final_layer_norm.weight", h);
  w.final_ln_bias = ld.vector("gpt_neox.final_layer_norm.bias", h);
  // The LM head: this rank's slice of the vocabulary (its logits are gathered).
  const int64_t vocab_begin = shard.vocab_begin(vocab), vocab_end = shard.vocab_end(vocab);
  if (c.tie_word_embeddings && !w.checkpoint->has("embed_out.weight")) {
    // The LM head gets a packed copy; the embedding rows stay mapped for lookups.
    w.embed_out = ld.packed("gpt_neox.embed_in.weight", vocab, h, /*drop=*/false, vocab_begin, vocab_end);
    ld.params -= static_cast<size_t>(vocab * h);
  } else {
    w.embed_out = ld.packed("embed_out.weight", vocab, h, true, vocab_begin, vocab_end);
  }
  if (ld.show_progress) std::fprintf(stderr, "\n");
  // Every tensor must be used or be a buffer old checkpoints carry: an extra
  // one means the config does not describe this checkpoint (say, fewer layers).
  std::vector<std::string> unused;
  for (const std::string& name : w.checkpoint->names()) {
    if (ld.used.count(name)) continue;
    const bool buffer = name.ends_with(".attention.bias") || name.ends_with(".attention.masked_bias") ||
                        name.ends_with(".attention.rotary_emb.inv_freq");
    if (!buffer) unused.push_back(name);
  }
  if (!unused.empty()) {
    std::string list;
    for (size_t i = 0; i < std::min<size_t>(unused.size(), 4); ++i) list += (i ? ", " : "") + ("'" + unused[i] + "'");
    if (unused.size() > 4) list += concat(" and ", unused.size() - 4, " more");
    throw Error(concat(dir, ": the checkpoint holds tensors that config.json does not describe: ", list,
                       " (config.json: ", c.num_layers, " layers, attention_bias ",
                       c.attention_bias ? "true" : "false", ")"));
  }
  if (options.check_weights)
    std::fprintf(stderr, "flashneox: checked %.1f MiB of weights for NaN/Inf in %.2f s: none found\n",
                 ld.checked_bytes / 1048576.0, ld.check_seconds);
  w.dtype = w.layers.empty() ? w.embed_out.dtype : w.layers[0].qkv.dtype;
  w.parameter_count = ld.params;
  // The input embedding: this rank's slice of the vocabulary (rows read on demand).
  w.weight_bytes = ld.packed_bytes + static_cast<size_t>((vocab_end - vocab_begin) * h) * dtype_size(w.embed_in.dtype);
  return w;
}

}  // namespace flashneox
