#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"
#include "tokenizer/byte_level.h"

namespace flashneox {

using nlohmann::json;

// A byte trie over added-token contents: the longest match at a position in
// one walk (HF matches added tokens leftmost-longest).
struct Tokenizer::Trie {
  struct Node {
    std::vector<std::pair<unsigned char, int>> children;
    int token = -1;  // index into added_
  };
  std::vector<Node> nodes{1};

  void insert(const std::string& content, int token) {
    int node = 0;
    for (unsigned char c : content) {
      int next = -1;
      for (auto& [ch, child] : nodes[node].children)
        if (ch == c) next = child;
      if (next < 0) {
        next = static_cast<int>(nodes.size());
        nodes[node].children.emplace_back(c, next);
        nodes.emplace_back();
      }
      node = next;
    }
    nodes[node].token = token;
  }
  // Longest token matching at text[i]: (token index, length) or (-1, 0).
  std::pair<int, size_t> longest(std::string_view text, size_t i) const {
    int node = 0;
    std::pair<int, size_t> best{-1, 0};
    for (size_t k = i; k < text.size(); ++k) {
      int next = -1;
      for (const auto& [ch, child] : nodes[node].children)
        if (ch == static_cast<unsigned char>(text[k])) next = child;
      if (next < 0) break;
      node = next;
      if (nodes[node].token >= 0) best = {nodes[node].token, k + 1 - i};
    }
    return best;
  }
  bool empty() const { return nodes.size() == 1; }
};

Tokenizer::~Tokenizer() = default;

namespace {

Normalization parse_normalizer(const json& n, const std::string& origin) {
  if (n.is_null()) return Normalization::None;
  const std::string type = n.value("type", "");
  if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
    if (n["normalizers"].empty()) return Normalization::None;
    if (n["normalizers"].size() == 1) return parse_normalizer(n["normalizers"][0], origin);
  }
  if (type == "NFC") return Normalization::NFC;
  if (type == "NFD") return Normalization::NFD;
  if (type == "NFKC") return Normalization::NFKC;
  if (type == "NFKD") return Normalization::NFKD;
  throw Error(concat(origin, ": normalizer '", n.dump(),
                     "' is not supported (supported: NFC, NFD, NFKC, NFKD, none)"));
}

bool is_word_char(char32_t cp) { return cp == '_' || is_letter(cp) || is_number(cp); }

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_file(const std::string& path) {
  return from_json_text(read_regular_file(path, size_t{256} << 20), path);
}

std::unique_ptr<Tokenizer> Tokenizer::from_json_text(const std::string& text,
                                                     const std::string& origin) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(concat(origin, ": not valid JSON (", e.what(), ")"));
  }
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  try {
    t->normalization_ = parse_normalizer(root.value("normalizer", json()), origin);
    json pre = root.value("pre_tokenizer", json());
    if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
        pre["pretokenizers"].size() == 1)
      pre = pre["pretokenizers"][0];
    if (!pre.is_object() || pre.value("type", "") != "ByteLevel")
      throw Error(concat(origin, ": pre_tokenizer must be ByteLevel (got ", pre.dump(), ")"));
    t->add_prefix_space_ = pre.value("add_prefix_space", false);
    t->use_regex_ = pre.value("use_regex", true);

    const json& model = root.at("model");
    if (model.value("type", "BPE") != "BPE")
      throw Error(concat(origin, ": model type '", model.value("type", ""), "' is not BPE"));
    // Ids are checked before use: never truncated, never huge (the largest
    // real vocabularies are a few hundred thousand).
    auto read_id = [&](const json& v, const std::string& token) {
      if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > kMaxTokenId) ||
          v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTokenId)
        throw Error(concat(origin, ": token '", token, "' has id ", v.dump(), "; ids must be integers from 0 to ",
                           kMaxTokenId));
      return static_cast<int32_t>(v.get<int64_t>());
    };
    std::unordered_map<std::string, int32_t> vocab;
    int32_t max_id = -1;
    for (auto it = model.at("vocab").begin(); it != model.at("vocab").end(); ++it) {
      const int32_t id = read_id(it.value(), it.key());
      vocab[it.key()] = id;
      max_id = std::max(max_id, id);
    }
    std::vector<std::pair<std::string, std::string>> merges;
    for (const json& m : model.at("merges")) {
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ', 1);
        if (space == std::string::npos) throw Error(concat(origin, ": malformed merge '", s, "'"));
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else {
        merges.emplace_back(m.at(0).get<std::string>(), m.at(1).get<std::string>());
      }
    }
    for (const json& a : root.value("added_tokens", json::array())) {
      AddedToken tok;
      tok.content = a.at("content").get<std::string>();
      tok.id = read_id(a.at("id"), tok.content);
      tok.special = a.value("special", false);
      tok.normalized = a.value("normalized", !tok.special);
      tok.lstrip = a.value("lstrip", false);
      tok.rstrip = a.value("rstrip", false);
      tok.single_word = a.value("single_word", false);
      if (tok.id < 0 || tok.content.empty())
        throw Error(concat(origin, ": malformed added token ", a.dump()));
      max_id = std::max(max_id, tok.id);
      t->added_.push_back(tok);
    }
    // id -> bytes: byte-level symbols map back to bytes; a token with a
    // character outside the alphabet (added tokens of plain spaces) is its
    // own UTF-8, as the HF ByteLevel decoder does.
    // Sparse ids cost what they hold, not their largest value.
    t->vocab_size_ = max_id + 1;
    t->id_bytes_.reserve(vocab.size() + t->added_.size());
    auto to_bytes = [](const std::string& token) {
      std::string bytes;
      for (size_t i = 0; i < token.size();) {
        int len;
        const int b = char_to_byte(decode_utf8(token, i, len));
        if (b < 0) return token;
        bytes.push_back(static_cast<char>(b));
        i += static_cast<size_t>(len);
      }
      return bytes;
    };
    for (const auto& [token, id] : vocab) t->id_bytes_[id] = to_bytes(token);
    t->raw_trie_ = std::make_unique<Trie>();
    t->normalized_trie_ = std::make_unique<Trie>();
    for (size_t i = 0; i < t->added_.size(); ++i) {
      const AddedToken& tok = t->added_[i];
      t->id_bytes_[tok.id] = to_bytes(tok.content);
      if (tok.special) t->special_.insert(tok.id);
      (tok.normalized ? *t->normalized_trie_ : *t->raw_trie_).insert(
          tok.normalized ? normalize(tok.content, t->normalization_) : tok.content,
          static_cast<int>(i));
    }
    t->bpe_ = std::make_unique<Bpe>(std::move(vocab), merges, model.value("ignore_merges", false));
  } catch (const json::exception& e) {
    throw Error(concat(origin, ": unexpected tokenizer.json structure (", e.what(), ")"));
  }
  return t;
}

void Tokenizer::find_added(std::string_view text, const Trie& trie, std::vector<Split>& out) const {
  size_t start_offset = 0;
  if (!trie.empty()) {
    size_t i = 0;
    while (i < text.size()) {
      const auto [token, len] = trie.longest(text, i);
      if (token < 0) {
        ++i;
        continue;
      }
      const AddedToken& tok = added_[token];
      size_t start = i, stop = i + len;
      if (tok.single_word) {
        bool word_before = false, word_after = false;
        if (start > 0) {  // the code point ending at `start`
          size_t k = start - 1;
          while (k > 0 && (static_cast<unsigned char>(text[k]) & 0xc0) == 0x80) --k;
          int l;
          word_before = is_word_char(decode_utf8(text, k, l));
        }
        if (stop < text.size()) {
          int l;
          word_after = is_word_char(decode_utf8(text, stop, l));
        }
        if (word_before || word_after) {
          ++i;
          continue;
        }
      }
      if (tok.lstrip) {
        size_t k = start;
        while (k > start_offset) {
          size_t prev = k - 1;
          while (prev > 0 && (static_cast<unsigned char>(text[prev]) & 0xc0) == 0x80) --prev;
          int l;
          if (!is_whitespace(decode_utf8(text, prev, l))) break;
          k = prev;
        }
        start = k;
      }
      if (tok.rstrip) {
        while (stop < text.size()) {
          int l;
          if (!is_whitespace(decode_utf8(text, stop, l))) break;
          stop += static_cast<size_t>(l);
        }
      }
      if (start_offset < start) out.push_back({-1, {start_offset, start}});
      out.push_back({tok.id, {start, stop}});
      start_offset = stop;
      i = stop;
    }
  }
  if (start_offset < text.size()) out.push_back({-1, {start_offset, text.size()}});
}

void Tokenizer::encode_plain(std::string_view piece, size_t base, Encoding& out) const {
  std::string prefixed;
  bool prefix = false;
  if (add_prefix_space_ && !piece.empty() && piece[0] != ' ') {
    prefixed.reserve(piece.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(piece);
    piece = prefixed;
    prefix = true;
  }
  std::vector<Span> words;
  if (use_regex_)
    split_gpt2_pattern(piece, words);
  else
    words.push_back({0, piece.size()});
  std::vector<uint32_t> lengths;
  for (const Span& w : words) {
    const size_t first = out.ids.size();
    lengths.clear();
    bpe_->encode_word(piece.substr(w.begin, w.end - w.begin), out.ids, &lengths);
    size_t pos = w.begin;
    for (size_t k = first; k < out.ids.size(); ++k) {
      size_t b = pos, e = pos + lengths[k - first];
      if (prefix) {  // the added space has no place in the input
        b = b == 0 ? 0 : b - 1;
        e = e == 0 ? 0 : e - 1;
      }
      out.offsets.emplace_back(base + b, base + e);
      pos += lengths[k - first];
    }
  }
}

Encoding Tokenizer::encode_with_offsets(std::string_view text) const {
  if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
    throw Error(concat("input is not valid UTF-8 (invalid byte at offset ", bad, ")"));
  Encoding out;
  std::vector<Split> raw, inner;
  find_added(text, *raw_trie_, raw);
  for (const Split& r : raw) {
    const auto [rb, re] = r.second;
    if (r.first >= 0) {
      out.ids.push_back(r.first);
      out.offsets.emplace_back(rb, re);
      continue;
    }
    const std::string_view piece = text.substr(rb, re - rb);
    const std::string normalized = normalize(piece, normalization_);
    const bool exact = normalized == piece;
    inner.clear();
    find_added(normalized, *normalized_trie_, inner);
    for (const Split& s : inner) {
      const size_t first = out.ids.size();
      if (s.first >= 0) {
        out.ids.push_back(s.first);
        out.offsets.emplace_back(rb + s.second.first, rb + s.second.second);
      } else {
        encode_plain(std::string_view(normalized).substr(s.second.first, s.second.second - s.second.first),
                     rb + s.second.first, out);
      }
      if (!exact)
        for (size_t k = first; k < out.offsets.size(); ++k) out.offsets[k] = {rb, re};
    }
  }
  return out;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  return encode_with_offsets(text).ids;
}

void Tokenizer::check_id(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw Error(concat("token id ", id, " is outside the vocabulary (size ", vocab_size(), ")"));
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  check_id(id);
  static const std::string kNone;  // an id in range that no token has
  auto it = id_bytes_.find(id);
  return it == id_bytes_.end() ? kNone : it->second;
}

bool Tokenizer::is_special(int32_t id) const { return special_.count(id) != 0; }

std::optional<int32_t> Tokenizer::token_id(const std::string& token) const {
  for (const AddedToken& a : added_)
    if (a.content == token) return a.id;
  const auto& v = bpe_->vocab();
  if (auto it = v.find(token); it != v.end()) return it->second;
  return std::nullopt;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  Utf8Decoder utf8;
  std::string out;
  for (int32_t id : ids) {
    const std::string& bytes = token_bytes(id);
    if (skip_special_tokens && is_special(id)) continue;
    out += utf8.push(bytes);
  }
  return out + utf8.finish();
}

std::string StreamDecoder::push(int32_t id) {
  const std::string& bytes = tokenizer_.token_bytes(id);
  if (skip_special_ && tokenizer_.is_special(id)) return "";
  return utf8_.push(bytes);
}

}  // namespace flashneox
