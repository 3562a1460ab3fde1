#include "model/gpt_neox_weights.h"

#include <unistd.h>

#include <cstdio>

#include "core/error.h"

namespace flashneox {

namespace {

struct Loader {
  const Checkpoint& ckpt;
  size_t params = 0;

  std::vector<float> vector(const std::string& name, int64_t n) {
    const TensorView& view = ckpt.get(name, {n});
    std::vector<float> out(static_cast<size_t>(n));
    convert_to_f32(view.dtype, view.data, out.data(), out.size());
    params += static_cast<size_t>(n);
    return out;
  }
  WeightMatrix matrix(const std::string& name, int64_t rows, int64_t cols) {
    const TensorView& view = ckpt.get(name, {rows, cols});
    params += static_cast<size_t>(rows * cols);
    return WeightMatrix{view.dtype, view.data, rows, cols};
  }
};

// Touches every page once so the first request does not pay for page faults,
// with a progress line on a terminal for checkpoints worth waiting on.
void prefault(const Checkpoint& ckpt) {
  const size_t total = ckpt.total_bytes();
  const bool show = isatty(STDERR_FILENO) && total > (256u << 20);
  size_t done = 0;
  size_t next_report = 0;
  volatile unsigned char sink = 0;
  for (const std::string& name : ckpt.names()) {
    if (!ckpt.has(name)) continue;
    const TensorView& view = ckpt.view(name);
    const auto* bytes = static_cast<const unsigned char*>(view.data);
    for (size_t i = 0; i < view.nbytes; i += 4096) sink = sink + bytes[i];
    done += view.nbytes;
    if (show && done >= next_report) {
      std::fprintf(stderr, "\rloading weights: %5.1f%% of %.1f MiB", 100.0 * done / total,
                   total / 1048576.0);
      next_report = done + total / 100;
    }
  }
  if (show) std::fprintf(stderr, "\n");
}

}  // namespace

ModelWeights ModelWeights::load(const std::string& dir, const ModelConfig& c) {
  ModelWeights w;
  w.checkpoint = std::make_unique<Checkpoint>(dir);
  Loader ld{*w.checkpoint};
  const int64_t h = c.hidden_size;
  const int64_t inter = c.intermediate_size;
  const int64_t vocab = c.vocab_size;
  w.embed_in = ld.matrix("gpt_neox.embed_in.weight", vocab, h);
  w.dtype = w.embed_in.dtype;
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.ln1_weight = ld.vector(p + "input_layernorm.weight", h);
    lw.ln1_bias = ld.vector(p + "input_layernorm.bias", h);
    lw.ln2_weight = ld.vector(p + "post_attention_layernorm.weight", h);
    lw.ln2_bias = ld.vector(p + "post_attention_layernorm.bias", h);
    lw.qkv = ld.matrix(p + "attention.query_key_value.weight", 3 * h, h);
    lw.dense = ld.matrix(p + "attention.dense.weight", h, h);
    if (c.attention_bias) {
      lw.qkv_bias = ld.vector(p + "attention.query_key_value.bias", 3 * h);
      lw.dense_bias = ld.vector(p + "attention.dense.bias", h);
    }
    lw.fc_in = ld.matrix(p + "mlp.dense_h_to_4h.weight", inter, h);
    lw.fc_in_bias = ld.vector(p + "mlp.dense_h_to_4h.bias", inter);
    lw.fc_out = ld.matrix(p + "mlp.dense_4h_to_h.weight", h, inter);
    lw.fc_out_bias = ld.vector(p + "mlp.dense_4h_to_h.bias", h);
    w.layers.push_back(std::move(lw));
  }
  w.final_ln_weight = ld.vector("gpt_neox.final_layer_norm.weight", h);
  w.final_ln_bias = ld.vector("gpt_neox.final_layer_norm.bias", h);
  if (c.tie_word_embeddings && !w.checkpoint->has("embed_out.weight")) {
    w.embed_out = w.embed_in;
  } else {
    w.embed_out = ld.matrix("embed_out.weight", vocab, h);
  }
  w.parameter_count = ld.params;
  w.weight_bytes = w.checkpoint->total_bytes();
  prefault(*w.checkpoint);
  return w;
}

}  // namespace flashneox
