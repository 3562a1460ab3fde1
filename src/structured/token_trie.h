// The vocabulary as a trie of the tokens' bytes, so a grammar can find every
// token it allows from one state in one walk (tokens that share a prefix
// share the work). Special tokens and ids without bytes are left
// out: a grammar constrains text, and EOS is decided apart. Non-special
// added tokens (GPT-NeoX's runs of spaces) stand for their text.
#pragma once

#include <cstdint>
#include <vector>

namespace flashneox {

class Tokenizer;

class TokenTrie {
 public:
  // Ids in [0, vocab) — the model's vocabulary, which may be padded past the tokenizer's.
  TokenTrie(const Tokenizer& tokenizer, int32_t vocab);

  struct Node {
    int32_t first_child = 0, child_count = 0;  // into children()
    int32_t first_token = 0, token_count = 0;  // into tokens(): tokens whose bytes end here
  };
  struct Child {
    uint8_t byte;
    int32_t node;
  };
  const std::vector<Node>& nodes() const { return nodes_; }  // nodes_[0] is the root
  const std::vector<Child>& children() const { return children_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int32_t vocab() const { return vocab_; }

 private:
  std::vector<Node> nodes_;
  std::vector<Child> children_;
  std::vector<int32_t> tokens_;
  int32_t vocab_;
};

}  // namespace flashneox
