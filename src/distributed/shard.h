// Which part of a model one rank of a tensor-parallel job holds.
#pragma once

#include <algorithm>
#include <cstdint>

namespace flashneox {

// Which part of the model a rank holds (DESIGN §6, as the seed's TP layers
// split it): whole heads of query_key_value and the matching columns of
// dense, a slice of dense_h_to_4h's rows and dense_4h_to_h's columns, a slice
// of the vocabulary (embedding and LM-head rows). Row-parallel biases live on
// rank 0 only.
struct Shard {
  int rank = 0, ranks = 1;
  int64_t begin(int64_t n) const { return n * rank / ranks; }  // even splits (checked at load)
  int64_t end(int64_t n) const { return n * (rank + 1) / ranks; }
  // The vocabulary need not divide: ceil-sized pieces, the last one shorter.
  int64_t vocab_begin(int64_t v) const { return std::min(v, (v + ranks - 1) / ranks * rank); }
  int64_t vocab_end(int64_t v) const { return std::min(v, (v + ranks - 1) / ranks * (rank + 1)); }
};

}  // namespace flashneox
