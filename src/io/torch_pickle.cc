#include "io/torch_pickle.h"

#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "core/error.h"

namespace flashneox {

namespace {

struct Value;
using Items = std::vector<Value>;
using Pairs = std::vector<std::pair<Value, Value>>;

struct Value {
  enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  int64_t i = 0;
  double f = 0;
  std::string s;                  // String; Global as "module.name"
  std::shared_ptr<Items> items;   // Tuple, List (shared: the memo aliases them)
  std::shared_ptr<Pairs> pairs;   // Dict
  std::shared_ptr<TorchTensorRef> tensor;  // Storage (key, dtype, numel) and Tensor
};

struct StorageType {
  const char* dtype_text;
  size_t bytes;
};

const std::map<std::string, StorageType>& storage_types() {
  static const std::map<std::string, StorageType> t = {
      {"torch.FloatStorage", {"F32", 4}}, {"torch.HalfStorage", {"F16", 2}},  {"torch.BFloat16Storage", {"BF16", 2}},
      {"torch.DoubleStorage", {"F64", 8}}, {"torch.LongStorage", {"I64", 8}}, {"torch.IntStorage", {"I32", 4}},
      {"torch.ShortStorage", {"I16", 2}}, {"torch.CharStorage", {"I8", 1}},   {"torch.ByteStorage", {"U8", 1}},
      {"torch.BoolStorage", {"BOOL", 1}}};
  return t;
}

class Unpickler {
 public:
  Unpickler(const unsigned char* data, size_t size, std::string where)
      : p_(data), end_(data + size), begin_(data), where_(std::move(where)) {}
  // A pickle can make a container hold itself (through the memo); empty
  // every container made, so such cycles of shared_ptrs are freed too.
  ~Unpickler() {
    for (auto& items : all_items_) items->clear();
    for (auto& pairs : all_pairs_) pairs->clear();
  }

  Value run() {
    for (;;) {
      const size_t at = static_cast<size_t>(p_ - begin_);
      const unsigned char op = byte();
      switch (op) {
        case 0x80: byte(); break;                                    // PROTO
        case 0x95: bytes(8); break;                                  // FRAME
        case '}': push_dict(); break;                                // EMPTY_DICT
        case ']': push_seq(Value::Kind::List, {}); break;            // EMPTY_LIST
        case ')': push_seq(Value::Kind::Tuple, {}); break;           // EMPTY_TUPLE
        case '(': marks_.push_back(stack_.size()); break;            // MARK
        case 't': push_seq(Value::Kind::Tuple, pop_mark()); break;   // TUPLE
        case 0x85: case 0x86: case 0x87: {                           // TUPLE1..3
          const size_t n = op - 0x84u;
          need(n);
          Items items(stack_.end() - static_cast<long>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push_seq(Value::Kind::Tuple, std::move(items));
          break;
        }
        case 'N': stack_.push_back({}); break;                       // NONE
        case 0x88: case 0x89: {                                      // NEWTRUE, NEWFALSE
          Value v;
          v.kind = Value::Kind::Bool;
          v.i = op == 0x88;
          stack_.push_back(v);
          break;
        }
        case 'K': push_int(static_cast<int64_t>(le(1))); break;      // BININT1
        case 'M': push_int(static_cast<int64_t>(le(2))); break;      // BININT2
        case 'J': push_int(static_cast<int32_t>(le(4))); break;      // BININT
        case 0x8a: {                                                 // LONG1
          const size_t n = byte();
          if (n > 8) fail(at, "an integer wider than 64 bits");
          uint64_t v = n ? le(n) : 0;
          if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 'G': {                                                  // BINFLOAT (big-endian)
          uint64_t bits = 0;
          for (const unsigned char c : bytes(8)) bits = (bits << 8) | c;
          Value v;
          v.kind = Value::Kind::Float;
          std::memcpy(&v.f, &bits, 8);
          stack_.push_back(v);
          break;
        }
        case 'X': push_string(le(4)); break;                         // BINUNICODE
        case 0x8c: push_string(byte()); break;                       // SHORT_BINUNICODE
        case 0x8d: push_string(le(8)); break;                        // BINUNICODE8
        case 'U': push_string(byte()); break;                        // SHORT_BINSTRING
        case 'T': push_string(le(4)); break;                         // BINSTRING
        case 'q': memo_[le(1)] = top(); break;                       // BINPUT
        case 'r': memo_[le(4)] = top(); break;                       // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;               // MEMOIZE
        case 'h': get(le(1), at); break;                             // BINGET
        case 'j': get(le(4), at); break;                             // LONG_BINGET
        case 'c': {                                                  // GLOBAL
          const std::string module = line(), name = line();
          push_global(module + "." + name, at);
          break;
        }
        case 0x93: {                                                 // STACK_GLOBAL
          need(2);
          const Value name = pop(), module = pop();
          if (module.kind != Value::Kind::String || name.kind != Value::Kind::String) fail(at, "STACK_GLOBAL of non-strings");
          push_global(module.s + "." + name.s, at);
          break;
        }
        case 'Q': stack_.push_back(persistent(pop(), at)); break;    // BINPERSID
        case 'R': {                                                  // REDUCE
          need(2);
          const Value args = pop(), callable = pop();
          stack_.push_back(reduce(callable, args, at));
          break;
        }
        case 'b': {                                                  // BUILD: state of a dict (_metadata) is ignored
          need(2);
          pop();
          if (top().kind != Value::Kind::Dict && top().kind != Value::Kind::Tensor) fail(at, "BUILD on something not a dict");
          break;
        }
        case 's': {                                                  // SETITEM
          need(3);
          Value v = pop(), k = pop();
          dict_top(at).push_back({std::move(k), std::move(v)});
          break;
        }
        case 'u': {                                                  // SETITEMS
          Items kv = pop_mark();
          if (kv.size() % 2) fail(at, "SETITEMS with an odd number of items");
          Pairs& d = dict_top(at);
          for (size_t i = 0; i < kv.size(); i += 2) d.push_back({kv[i], kv[i + 1]});
          break;
        }
        case 'a': {                                                  // APPEND
          need(2);
          Value v = pop();
          list_top(at).push_back(std::move(v));
          break;
        }
        case 'e': {                                                  // APPENDS
          Items vs = pop_mark();
          Items& l = list_top(at);
          l.insert(l.end(), vs.begin(), vs.end());
          break;
        }
        case '.': {                                                  // STOP
          need(1);
          return pop();
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(at, concat("pickle opcode ", hex, " is not one torch.save writes for a state dict; refused"));
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& why) const {
    throw Error(concat(where_, ": data.pkl byte ", at, ": ", why));
  }
  unsigned char byte() {
    if (p_ >= end_) fail(static_cast<size_t>(p_ - begin_), "the pickle ends early (the file is truncated)");
    return *p_++;
  }
  std::vector<unsigned char> bytes(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) fail(static_cast<size_t>(p_ - begin_), "the pickle ends early (the file is truncated)");
    std::vector<unsigned char> out(p_, p_ + n);
    p_ += n;
    return out;
  }
  uint64_t le(size_t n) {
    uint64_t v = 0;
    const auto b = bytes(n);
    for (size_t i = n; i-- > 0;) v = (v << 8) | b[i];
    return v;
  }
  std::string line() {
    std::string out;
    for (unsigned char c = byte(); c != '\n'; c = byte()) {
      if (out.size() > 256) fail(static_cast<size_t>(p_ - begin_), "a global name longer than 256 bytes");
      out += static_cast<char>(c);
    }
    return out;
  }
  void need(size_t n) const {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n) fail(static_cast<size_t>(p_ - begin_), "the pickle's stack runs empty");
  }
  Value pop() {
    need(1);
    Value v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Value& top() {
    need(1);
    return stack_.back();
  }
  Items pop_mark() {
    if (marks_.empty()) fail(static_cast<size_t>(p_ - begin_), "no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    Items out(stack_.begin() + static_cast<long>(m), stack_.end());
    stack_.resize(m);
    return out;
  }
  void get(uint64_t key, size_t at) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail(at, concat("memo ", key, " was never stored"));
    stack_.push_back(it->second);
  }
  void push_int(int64_t v) {
    Value x;
    x.kind = Value::Kind::Int;
    x.i = v;
    stack_.push_back(x);
  }
  void push_string(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) fail(static_cast<size_t>(p_ - begin_), "a string runs past the end");
    Value x;
    x.kind = Value::Kind::String;
    x.s.assign(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    stack_.push_back(std::move(x));
  }
  void push_seq(Value::Kind kind, Items items) {
    Value x;
    x.kind = kind;
    x.items = std::make_shared<Items>(std::move(items));
    all_items_.push_back(x.items);
    stack_.push_back(std::move(x));
  }
  void push_dict() {
    Value x;
    x.kind = Value::Kind::Dict;
    x.pairs = std::make_shared<Pairs>();
    all_pairs_.push_back(x.pairs);
    stack_.push_back(std::move(x));
  }
  Pairs& dict_top(size_t at) {
    if (top().kind != Value::Kind::Dict) fail(at, "SETITEM(S) on something not a dict");
    return *top().pairs;
  }
  Items& list_top(size_t at) {
    if (top().kind != Value::Kind::List) fail(at, "APPEND(S) on something not a list");
    return *top().items;
  }
  void push_global(const std::string& name, size_t at) {
    static const char* kAllowed[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                     "torch._utils._rebuild_parameter"};
    bool ok = storage_types().count(name) != 0;
    for (const char* a : kAllowed) ok = ok || name == a;
    if (!ok)
      fail(at, concat("global '", name,
                      "' is not allowed: a checkpoint may only rebuild tensors and dicts (refused without running it)"));
    Value x;
    x.kind = Value::Kind::Global;
    x.s = name;
    stack_.push_back(std::move(x));
  }
  // ('storage', torch.XStorage, key, location, numel)
  Value persistent(const Value& pid, size_t at) {
    const Items* t = pid.kind == Value::Kind::Tuple ? pid.items.get() : nullptr;
    if (!t || t->size() != 5 || (*t)[0].s != "storage" || (*t)[1].kind != Value::Kind::Global ||
        (*t)[2].kind != Value::Kind::String || (*t)[4].kind != Value::Kind::Int)
      fail(at, "a persistent id that is not torch's ('storage', type, key, location, numel)");
    const auto type = storage_types().find((*t)[1].s);
    if (type == storage_types().end()) fail(at, concat("'", (*t)[1].s, "' is not a storage type"));
    Value x;
    x.kind = Value::Kind::Storage;
    x.tensor = std::make_shared<TorchTensorRef>();
    x.tensor->storage_key = (*t)[2].s;
    x.tensor->dtype_text = type->second.dtype_text;
    x.tensor->element_bytes = type->second.bytes;
    x.tensor->storage_numel = (*t)[4].i;
    if (x.tensor->storage_numel < 0) fail(at, "a storage with a negative size");
    return x;
  }
  std::vector<int64_t> ints(const Value& v, size_t at, const char* what) {
    if (v.kind != Value::Kind::Tuple) fail(at, concat("a tensor's ", what, " is not a tuple"));
    std::vector<int64_t> out;
    for (const Value& e : *v.items) {
      if (e.kind != Value::Kind::Int || e.i < 0) fail(at, concat("a tensor's ", what, " holds something not a size"));
      out.push_back(e.i);
    }
    return out;
  }
  Value reduce(const Value& callable, const Value& args, size_t at) {
    if (callable.kind != Value::Kind::Global || args.kind != Value::Kind::Tuple) fail(at, "REDUCE of something not an allowed global");
    const Items& a = *args.items;
    if (callable.s == "collections.OrderedDict") {
      if (!a.empty()) fail(at, "OrderedDict called with arguments");
      Value d;
      d.kind = Value::Kind::Dict;
      d.pairs = std::make_shared<Pairs>();
      all_pairs_.push_back(d.pairs);
      return d;
    }
    if (callable.s == "torch._utils._rebuild_parameter") {  // (tensor, requires_grad, hooks)
      if (a.empty() || a[0].kind != Value::Kind::Tensor) fail(at, "_rebuild_parameter of something not a tensor");
      return a[0];
    }
    if (callable.s == "torch._utils._rebuild_tensor_v2") {  // (storage, offset, size, stride, requires_grad, hooks[, metadata])
      if (a.size() < 4 || a[0].kind != Value::Kind::Storage || a[1].kind != Value::Kind::Int)
        fail(at, "_rebuild_tensor_v2 with arguments torch does not write");
      Value t;
      t.kind = Value::Kind::Tensor;
      t.tensor = std::make_shared<TorchTensorRef>(*a[0].tensor);
      t.tensor->offset = a[1].i;
      t.tensor->shape = ints(a[2], at, "size");
      t.tensor->stride = ints(a[3], at, "stride");
      if (t.tensor->offset < 0 || t.tensor->shape.size() != t.tensor->stride.size())
        fail(at, "a tensor whose offset, size and stride do not fit together");
      return t;
    }
    fail(at, concat("'", callable.s, "' cannot be called"));
  }

  const unsigned char* p_;
  const unsigned char* end_;
  const unsigned char* begin_;
  std::string where_;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, Value> memo_;
  std::vector<std::shared_ptr<Items>> all_items_;
  std::vector<std::shared_ptr<Pairs>> all_pairs_;
};

}  // namespace

std::vector<std::pair<std::string, TorchTensorRef>> unpickle_state_dict(const unsigned char* data, size_t size,
                                                                       const std::string& where) {
  Unpickler unpickler(data, size, where);
  const Value root = unpickler.run();
  if (root.kind != Value::Kind::Dict) throw Error(concat(where, ": the pickle is not a dict of tensors (a state dict)"));
  std::vector<std::pair<std::string, TorchTensorRef>> out;
  for (const auto& [k, v] : *root.pairs) {
    if (k.kind != Value::Kind::String) throw Error(concat(where, ": the state dict has a key that is not a string"));
    if (v.kind != Value::Kind::Tensor) throw Error(concat(where, ": '", k.s, "' is not a tensor"));
    out.emplace_back(k.s, *v.tensor);
  }
  return out;
}

}  // namespace flashneox
