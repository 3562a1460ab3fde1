// Byte-pair encoding by merge rank over the byte-level alphabet.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace flashneox {

class Bpe {
 public:
  // vocab: token string (byte-level alphabet) -> id; merges in rank order.
  // ignore_merges: a word that is itself in the vocabulary is one token.
  Bpe(std::unordered_map<std::string, int32_t> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges);

  // Appends the ids of one pre-tokenized word (raw bytes) and each id's byte
  // length within the word. Throws if a byte has no token (a broken vocab).
  void encode_word(std::string_view word, std::vector<int32_t>& ids,
                   std::vector<uint32_t>* byte_lengths);

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  struct Piece {
    int32_t id;
    uint32_t bytes;
  };
  void merge_word(std::string_view word, std::vector<Piece>& pieces) const;

  std::unordered_map<std::string, int32_t> vocab_;
  bool ignore_merges_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id)
  std::array<int32_t, 256> byte_ids_{};
  std::mutex cache_mutex_;  // encode may run on many request threads
  std::unordered_map<std::string, std::vector<Piece>> cache_;  // word -> pieces
};

}  // namespace flashneox
