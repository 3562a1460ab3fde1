// GPT-2's byte-level pre-tokenizer: the split pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// implemented by hand with exact Unicode classes, and the byte <-> printable
// character alphabet that lets BPE work on bytes.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace flashneox {

struct Span {
  size_t begin, end;  // byte offsets
};

// Appends the pattern's matches over `text` (valid UTF-8) to `out`.
void split_gpt2_pattern(std::string_view text, std::vector<Span>& out);

// byte -> the printable code point GPT-2 writes it as, and back.
const std::array<char32_t, 256>& byte_to_char();
// The byte a code point stands for, or -1 when it is not in the alphabet.
int char_to_byte(char32_t cp);

}  // namespace flashneox
