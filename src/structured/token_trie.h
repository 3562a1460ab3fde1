// The vocabulary as a trie of the tokens' bytes, so a grammar can find every
// token it allows from one state in one walk (tokens that share a prefix
// share the work). Special tokens and ids without bytes are left out: a
// grammar constrains text, and EOS is decided apart. Non-special added
// tokens (GPT-NeoX's runs of spaces) stand for their text.
#pragma once

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace flashneox {

class Tokenizer;

class TokenTrie {
 public:
  // Ids in [0, vocab) — the model's vocabulary, which may be padded past the tokenizer's.
  TokenTrie(const Tokenizer& tokenizer, int32_t vocab);

  // A node's children are the contiguous nodes [first_child, first_child + child_count).
  struct Node {
    int32_t first_child = 0;
    int32_t token = -1;        // the token whose bytes end here, or -1
    uint16_t child_count = 0;
    uint8_t byte = 0;          // the byte on the edge into this node
    bool more_tokens = false;  // other tokens with the same bytes: more_tokens()
  };
  const std::vector<Node>& nodes() const { return nodes_; }  // nodes_[0] is the root
  const std::vector<int32_t>& more_tokens(int32_t node) const { return more_.at(node); }
  int32_t vocab() const { return vocab_; }

  // Every token at or below a node, contiguous: subtree_tokens()[begin, end).
  struct Subtree {
    int32_t begin = 0, end = 0;
    uint16_t depth = 0;  // the most bytes from this node's edge (1) to its deepest token
  };
  const std::vector<Subtree>& subtrees() const { return subtrees_; }
  // Large subtrees also as bitsets over the vocabulary (OR-ed in one sweep
  // instead of thousands of scattered bits): null for the others.
  const uint64_t* subtree_bits(int32_t node) const {
    const int32_t i = dense_index_[static_cast<size_t>(node)];
    return i < 0 ? nullptr : dense_.data() + static_cast<size_t>(i) * words();
  }
  size_t words() const { return (static_cast<size_t>(vocab_) + 63) / 64; }
  const std::vector<int32_t>& subtree_tokens() const { return subtree_tokens_; }
  // What a byte set (a JSON string's characters, say) covers, cached per set
  // (a grammar asks for a few). Not thread-safe, like the grammars using it.
  struct ByteSetIndex {
    std::vector<uint8_t> within;  // per node: its edge byte and every byte below it are in the set
    int max_length = 0;           // of the tokens made only of the set's bytes
    std::vector<uint64_t> by_length;  // row L (0..max_length): those tokens of at most L bytes
    const uint64_t* up_to(int length, size_t words) const {
      return by_length.data() + static_cast<size_t>(std::min(length, max_length)) * words;
    }
  };
  std::shared_ptr<const ByteSetIndex> index(const std::bitset<256>& bytes) const;

 private:
  void index_subtrees();

  std::vector<Node> nodes_;
  std::unordered_map<int32_t, std::vector<int32_t>> more_;
  int32_t vocab_;
  std::vector<Subtree> subtrees_;
  std::vector<int32_t> subtree_tokens_;
  std::vector<int32_t> dense_index_;
  std::vector<uint64_t> dense_;
  mutable std::unordered_map<std::bitset<256>, std::shared_ptr<const ByteSetIndex>> indexes_;
};

}  // namespace flashneox
