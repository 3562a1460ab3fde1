#include "distributed/tensor_parallel_protocol.h"

#include <array>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/file_util.h"

#ifndef FLASHNEOX_VERSION
#define FLASHNEOX_VERSION "dev"
#endif

namespace flashneox {
namespace {

class Writer {
 public:
  explicit Writer(TensorParallelCommand c) { pod(static_cast<uint8_t>(c)); }
  template <typename T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const char* p = reinterpret_cast<const char*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  template <typename T>
  void vec(const std::vector<T>& v) {
    pod(static_cast<uint64_t>(v.size()));
    if (v.empty()) return;
    const char* p = reinterpret_cast<const char*>(v.data());
    out_.insert(out_.end(), p, p + v.size() * sizeof(T));
  }
  void str(const std::string& s) { vec(std::vector<char>(s.begin(), s.end())); }
  std::vector<char> take() { return std::move(out_); }

 private:
  std::vector<char> out_;
};

class Reader {
 public:
  explicit Reader(const std::vector<char>& in) : in_(in) { pos_ = 1; }
  template <typename T>
  T pod() {
    T v;
    need(sizeof(T));
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <typename T>
  std::vector<T> vec() {
    const uint64_t n = pod<uint64_t>();
    if (n > (in_.size() - pos_) / sizeof(T)) throw Error("tensor-parallel message: truncated");
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), in_.data() + pos_, n * sizeof(T));  // (an empty vector's data may be null)
    pos_ += n * sizeof(T);
    return v;
  }
  std::string str() {
    const std::vector<char> v = vec<char>();
    return {v.begin(), v.end()};
  }
  void finish() const {
    if (pos_ != in_.size()) throw Error("tensor-parallel message: trailing bytes");
  }

 private:
  void need(size_t n) const {
    if (in_.size() - pos_ < n) throw Error("tensor-parallel message: truncated");
  }
  const std::vector<char>& in_;
  size_t pos_;
};

}  // namespace

std::vector<char> encode(const TensorParallelLoad& l) {
  Writer w(TensorParallelCommand::Load);
  w.str(l.dir);
  w.pod(static_cast<int32_t>(l.weight_dtype));
  w.pod(static_cast<uint8_t>(l.check_weights));
  w.pod(static_cast<int32_t>(l.threads));
  w.str(l.fingerprint);
  return w.take();
}

std::vector<char> encode(const TensorParallelStep& step, const ForwardBatch& b) {
  Writer w(TensorParallelCommand::Forward);
  w.pod(step.cache_serial);
  w.pod(static_cast<int32_t>(step.num_blocks));
  w.pod(static_cast<int32_t>(step.block_size));
  w.pod(static_cast<int32_t>(step.kv_dtype));
  w.vec(b.input_ids);
  w.vec(b.position_ids);
  w.vec(b.cu_seqlen_prefill);
  w.vec(b.cached_lens);
  w.pod(static_cast<uint64_t>(b.block_tables.size()));
  for (const auto& t : b.block_tables) w.vec(t);
  w.vec(b.slots);
  w.vec(b.lm_head_indices);
  w.pod(static_cast<uint8_t>(b.skip_lm_head));
  w.pod(static_cast<uint8_t>(b.keep_layer_hidden));
  w.vec(step.adapter_uids);
  return w.take();
}

std::vector<char> encode(const LoraAdapter& a) {
  Writer w(TensorParallelCommand::Adapter);
  w.pod(a.uid);
  w.str(a.name);
  w.str(a.dir);
  w.pod(static_cast<uint64_t>(a.layers.size()));
  for (size_t l = 0; l < a.layers.size(); ++l) {
    w.pod(a.config_scale.size() > l ? a.config_scale[l] : std::array<float, kLoraModules>{});
    for (const auto& m : a.layers[l]) {
      w.pod(static_cast<uint8_t>(m.has_value()));
      if (!m) continue;
      w.pod(static_cast<int32_t>(m->rank));
      w.pod(m->scale);
      w.pod(static_cast<int32_t>(m->dtype));
      w.vec(m->a);
      w.vec(m->b);
      w.vec(m->a_f16);
      w.vec(m->b_f16);
    }
  }
  return w.take();
}

std::vector<char> encode_stop() { return Writer(TensorParallelCommand::Stop).take(); }

TensorParallelCommand command_of(const std::vector<char>& m) {
  if (m.empty() || m[0] < 1 || m[0] > 4) throw Error("tensor-parallel message: unknown command");
  return static_cast<TensorParallelCommand>(m[0]);
}

TensorParallelLoad decode_load(const std::vector<char>& m) {
  Reader r(m);
  TensorParallelLoad l;
  l.dir = r.str();
  l.weight_dtype = r.pod<int32_t>();
  l.check_weights = r.pod<uint8_t>() != 0;
  l.threads = r.pod<int32_t>();
  l.fingerprint = r.str();
  r.finish();
  return l;
}

TensorParallelForward decode_forward(const std::vector<char>& m) {
  Reader r(m);
  TensorParallelForward f;
  TensorParallelStep& step = f.step;
  step.cache_serial = r.pod<uint64_t>();
  step.num_blocks = r.pod<int32_t>();
  step.block_size = r.pod<int32_t>();
  step.kv_dtype = static_cast<DType>(r.pod<int32_t>());
  ForwardBatch& b = f.batch;
  b.input_ids = r.vec<int32_t>();
  b.position_ids = r.vec<int32_t>();
  b.cu_seqlen_prefill = r.vec<int32_t>();
  b.cached_lens = r.vec<int32_t>();
  const uint64_t tables = r.pod<uint64_t>();
  if (tables != b.cached_lens.size()) throw Error("tensor-parallel message: one block table per sequence");
  for (uint64_t i = 0; i < tables; ++i) b.block_tables.push_back(r.vec<int32_t>());
  b.slots = r.vec<int64_t>();
  b.lm_head_indices = r.vec<int32_t>();
  b.skip_lm_head = r.pod<uint8_t>() != 0;
  b.keep_layer_hidden = r.pod<uint8_t>() != 0;
  step.adapter_uids = r.vec<uint64_t>();
  if (!step.adapter_uids.empty() && step.adapter_uids.size() != b.cached_lens.size())
    throw Error("tensor-parallel message: one adapter entry per sequence");
  r.finish();
  return f;
}

std::shared_ptr<LoraAdapter> decode_adapter(const std::vector<char>& m) {
  Reader r(m);
  auto a = std::make_shared<LoraAdapter>();
  a->uid = r.pod<uint64_t>();
  a->name = r.str();
  a->dir = r.str();
  const uint64_t layers = r.pod<uint64_t>();
  if (layers > 100000) throw Error("tensor-parallel message: an adapter of too many layers");
  a->layers.resize(layers);
  for (uint64_t l = 0; l < layers; ++l) {
    a->config_scale.push_back(r.pod<std::array<float, kLoraModules>>());
    for (auto& m : a->layers[l]) {
      if (!r.pod<uint8_t>()) continue;
      LoraWeights w;
      w.rank = r.pod<int32_t>();
      w.scale = r.pod<float>();
      w.dtype = static_cast<DType>(r.pod<int32_t>());
      w.a = r.vec<float>();
      w.b = r.vec<float>();
      w.a_f16 = r.vec<uint16_t>();
      w.b_f16 = r.vec<uint16_t>();
      a->bytes += w.bytes();
      m = std::move(w);
    }
  }
  r.finish();
  return a;
}

namespace {

uint64_t fnv1a(const std::string& bytes) {  // the same on every machine and build
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char ch : bytes) hash = (hash ^ ch) * 1099511628211ull;
  return hash;
}

// The running program's own bytes, hashed once: ranks must run the same build.
uint64_t program_hash() {
  static const uint64_t hash = [] {
    try {
      return fnv1a(read_regular_file("/proc/self/exe", size_t{1} << 31));
    } catch (const Error&) {
      return uint64_t{0};  // no /proc: the version alone is compared
    }
  }();
  return hash;
}

}  // namespace

std::string model_fingerprint(const std::string& dir, int world_size) {
  const std::string config = read_regular_file(dir + "/config.json", 1 << 20);
  return concat("flashneox ", FLASHNEOX_VERSION, " (program ", program_hash(), "), ", world_size,
                " ranks, config.json of ", config.size(), " bytes hashing to ", fnv1a(config));
}

}  // namespace flashneox
