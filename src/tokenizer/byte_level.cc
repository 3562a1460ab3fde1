#include "tokenizer/byte_level.h"

#include "tokenizer/unicode.h"

namespace flashneox {

namespace {

enum class Class { Letter, Number, Space, Other };

struct Cursor {
  std::string_view s;
  // Class and byte length of the code point at i.
  Class at(size_t i, int& len) const {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      len = 1;
      if ((b | 0x20) >= 'a' && (b | 0x20) <= 'z') return Class::Letter;
      if (b >= '0' && b <= '9') return Class::Number;
      if (b == ' ' || (b >= 0x09 && b <= 0x0d)) return Class::Space;
      return Class::Other;
    }
    const char32_t cp = decode_utf8(s, i, len);
    if (is_letter(cp)) return Class::Letter;
    if (is_number(cp)) return Class::Number;
    if (is_whitespace(cp)) return Class::Space;
    return Class::Other;
  }
  // End of the run of class `c` starting at i (or i if none).
  size_t run(size_t i, Class c) const {
    int len;
    while (i < s.size() && at(i, len) == c) i += static_cast<size_t>(len);
    return i;
  }
};

size_t contraction(std::string_view s, size_t i) {
  if (s[i] != '\'' || i + 1 >= s.size()) return 0;
  const char a = s[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < s.size()) {
    const char b = s[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

}  // namespace

void split_gpt2_pattern(std::string_view text, std::vector<Span>& out) {
  const Cursor cur{text};
  size_t i = 0;
  while (i < text.size()) {
    if (const size_t n = contraction(text, i)) {
      out.push_back({i, i + n});
      i += n;
      continue;
    }
    // ` ?X+` for X = letters, numbers or other: the optional space is U+0020 only.
    int len;
    const size_t j = (text[i] == ' ' && i + 1 < text.size()) ? i + 1 : i;
    const Class c = cur.at(j, len);
    if (c != Class::Space) {
      const size_t end = cur.run(j, c);
      out.push_back({i, end});
      i = end;
      continue;
    }
    // Whitespace: \s+(?!\S) leaves the last space for the next word when
    // the run is followed by a non-space; \s+ takes the run otherwise.
    const size_t end = cur.run(i, Class::Space);
    if (end < text.size()) {
      // Back off one code point (the run's last), if the run is longer than it.
      size_t last = i;
      for (size_t k = i; k < end; k += static_cast<size_t>(len)) {
        cur.at(k, len);
        last = k;
      }
      if (last > i) {
        out.push_back({i, last});
        i = last;
        continue;
      }
    }
    out.push_back({i, end});
    i = end;
  }
}

namespace {

struct Alphabet {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 512> to_byte{};
  Alphabet() {
    to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      to_char[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

const std::array<char32_t, 256>& byte_to_char() { return alphabet().to_char; }

int char_to_byte(char32_t cp) { return cp < 512 ? alphabet().to_byte[cp] : -1; }

}  // namespace flashneox
