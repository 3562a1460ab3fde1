// A Hugging Face tokenizer.json (GPT-2-style byte-level BPE), read as it is,
// giving exactly the ids Hugging Face `tokenizers` gives.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/unicode.h"

namespace flashneox {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool normalized = false;  // matched after normalization (else on the raw text)
  bool lstrip = false, rstrip = false, single_word = false;
};

struct Encoding {
  std::vector<int32_t> ids;
  // Byte range of each token in the input text. Exact except inside a span
  // that normalization changed, where every token gets the whole span.
  std::vector<std::pair<size_t, size_t>> offsets;
};

class Tokenizer {
 public:
  static std::unique_ptr<Tokenizer> from_file(const std::string& path);
  static std::unique_ptr<Tokenizer> from_json_text(const std::string& text,
                                                   const std::string& origin);
  ~Tokenizer();

  // Throws Error on text that is not valid UTF-8 (naming the byte offset).
  std::vector<int32_t> encode(std::string_view text) const;
  Encoding encode_with_offsets(std::string_view text) const;

  // Throws Error on an id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // The raw bytes one token stands for (may be part of a UTF-8 character).
  const std::string& token_bytes(int32_t id) const;
  bool is_special(int32_t id) const;
  std::optional<int32_t> token_id(const std::string& token) const;
  // One past the largest id (ids in between may have no token).
  int32_t vocab_size() const { return vocab_size_; }
  static constexpr int32_t kMaxTokenId = (1 << 24) - 1;
  const std::vector<AddedToken>& added_tokens() const { return added_; }

 private:
  Tokenizer() = default;
  struct Trie;
  using Split = std::pair<int32_t, std::pair<size_t, size_t>>;  // (added id or -1, span)
  void find_added(std::string_view text, const Trie& trie, std::vector<Split>& out) const;
  void encode_plain(std::string_view piece, size_t base, Encoding& out) const;
  void check_id(int32_t id) const;

  Normalization normalization_ = Normalization::None;
  bool add_prefix_space_ = false;
  bool use_regex_ = true;
  std::unique_ptr<Bpe> bpe_;
  std::vector<AddedToken> added_;
  std::unique_ptr<Trie> raw_trie_, normalized_trie_;
  int32_t vocab_size_ = 0;
  std::unordered_map<int32_t, std::string> id_bytes_;  // id -> raw bytes
  std::unordered_set<int32_t> special_;                // special added tokens
};

// Streams text out of generated ids: each push returns the text the new
// token completes (never a broken UTF-8 character); finish() flushes the
// rest. Joined, the pieces equal decode(all ids).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}
  std::string push(int32_t id);
  std::string finish() { return utf8_.finish(); }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  Utf8Decoder utf8_;
};

}  // namespace flashneox
