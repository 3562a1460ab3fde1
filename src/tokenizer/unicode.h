// The Unicode pieces the tokenizer needs: UTF-8 decoding and validation,
// the character classes of the GPT-2 split pattern (\p{L}, \p{N}, \s), NFC,
// and a lossy UTF-8 decoder that is safe to feed a byte at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace flashneox {

// Decodes the code point at s[i] (s must be valid UTF-8); sets `len` to its byte length.
char32_t decode_utf8(std::string_view s, size_t i, int& len);
void append_utf8(std::string& out, char32_t cp);
// Byte offset of the first invalid sequence, or npos when s is valid UTF-8.
size_t find_invalid_utf8(std::string_view s);

bool is_letter(char32_t cp);      // general category L*
bool is_number(char32_t cp);      // general category N*
bool is_whitespace(char32_t cp);  // the White_Space property

enum class Normalization { None, NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view text, Normalization form);

// Turns bytes into text the way Rust's String::from_utf8_lossy does (each
// maximal invalid subsequence becomes one U+FFFD), incrementally: push()
// returns the text that is now complete, finish() flushes what is left.
// Feeding all bytes at once or one at a time gives the same text.
class Utf8Decoder {
 public:
  std::string push(std::string_view bytes);
  std::string finish();

 private:
  std::string pending_;  // an incomplete but so far valid sequence
};

}  // namespace flashneox
