#include "structured/regex_compiler.h"

#include <cctype>
#include <memory>
#include <string>
#include <vector>

namespace flashneox {

namespace {

constexpr int kMaxRepeat = 1000;  // {n,m} bounds; each copy is new states

// A set of characters: ASCII by bitmap; beyond ASCII either everything
// (`.`, negated classes) or a list of single characters.
struct CharSet {
  std::bitset<128> ascii;
  bool all_non_ascii = false;
  std::vector<std::string> non_ascii;  // UTF-8 of single characters
};

struct Node {
  enum class Kind { Chars, Sequence, Alternatives, Repeat } kind;
  CharSet chars;
  std::vector<std::unique_ptr<Node>> children;
  int min = 0, max = 0;  // Repeat; max < 0: unbounded
};
using NodePtr = std::unique_ptr<Node>;

NodePtr make(Node::Kind kind) {
  auto n = std::make_unique<Node>();
  n->kind = kind;
  return n;
}

CharSet digits() {
  CharSet s;
  for (int c = '0'; c <= '9'; ++c) s.ascii.set(static_cast<size_t>(c));
  return s;
}
CharSet word() {
  CharSet s = digits();
  for (int c = 'a'; c <= 'z'; ++c) s.ascii.set(static_cast<size_t>(c));
  for (int c = 'A'; c <= 'Z'; ++c) s.ascii.set(static_cast<size_t>(c));
  s.ascii.set('_');
  return s;
}
CharSet space() {
  CharSet s;
  for (const char c : std::string(" \t\n\r\f\v")) s.ascii.set(static_cast<size_t>(c));
  return s;
}
CharSet negate(const CharSet& s) {
  if (!s.non_ascii.empty())
    throw GrammarError("regex: a negated class with non-ASCII characters is not supported");
  CharSet out;
  out.ascii = ~s.ascii;
  out.all_non_ascii = !s.all_non_ascii;
  return out;
}
void merge(CharSet& into, const CharSet& s) {
  into.ascii |= s.ascii;
  into.all_non_ascii = into.all_non_ascii || s.all_non_ascii;
  into.non_ascii.insert(into.non_ascii.end(), s.non_ascii.begin(), s.non_ascii.end());
}

std::string utf8(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

class Parser {
 public:
  explicit Parser(std::string_view p) : p_(p) {}

  NodePtr parse() {
    eat('^');  // fullmatch either way
    NodePtr n = alternatives();
    if (pos_ < p_.size()) fail(p_[pos_] == ')' ? "an unmatched ')'" : "unexpected character");
    return n;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw GrammarError(concat("regex: ", what, " at offset ", pos_, " of /", std::string(p_), "/"));
  }
  bool more() const { return pos_ < p_.size(); }
  char peek() const { return p_[pos_]; }
  bool eat(char c) {
    if (more() && peek() == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  NodePtr alternatives() {
    auto alt = make(Node::Kind::Alternatives);
    alt->children.push_back(sequence());
    while (eat('|')) alt->children.push_back(sequence());
    if (alt->children.size() == 1) return std::move(alt->children[0]);
    return alt;
  }

  NodePtr sequence() {
    auto seq = make(Node::Kind::Sequence);
    while (more() && peek() != '|' && peek() != ')') {
      if (peek() == '$') {
        ++pos_;
        if (more() && peek() != '|' && peek() != ')') fail("'$' is only supported at the end");
        continue;
      }
      if (peek() == '^') fail("'^' is only supported at the start");
      NodePtr atom_node = atom();
      seq->children.push_back(quantified(std::move(atom_node)));
    }
    return seq;
  }

  NodePtr quantified(NodePtr atom_node) {
    while (more()) {
      int min = 0, max = 0;
      if (eat('*')) {
        min = 0, max = -1;
      } else if (eat('+')) {
        min = 1, max = -1;
      } else if (eat('?')) {
        min = 0, max = 1;
      } else if (peek() == '{' && counted(min, max)) {
      } else {
        break;
      }
      if (more() && peek() == '+') fail("possessive quantifiers are not supported");
      eat('?');  // lazy: the same language
      auto r = make(Node::Kind::Repeat);
      r->min = min, r->max = max;
      r->children.push_back(std::move(atom_node));
      atom_node = std::move(r);
    }
    return atom_node;
  }

  // {n}, {n,}, {n,m}; a '{' that starts none of these is a literal (as in Python).
  bool counted(int& min, int& max) {
    size_t q = pos_ + 1;
    auto number = [&](int& out) {
      const size_t from = q;
      long v = 0;
      while (q < p_.size() && p_[q] >= '0' && p_[q] <= '9') {
        v = v * 10 + (p_[q] - '0');
        if (v > kMaxRepeat) {
          pos_ = from;
          fail(concat("a repetition count over ", kMaxRepeat));
        }
        ++q;
      }
      out = static_cast<int>(v);
      return q > from;
    };
    if (!number(min)) return false;
    max = min;
    if (q < p_.size() && p_[q] == ',') {
      ++q;
      if (!number(max)) max = -1;
    }
    if (q >= p_.size() || p_[q] != '}') return false;
    if (max >= 0 && max < min) fail("a repetition {n,m} with m < n");
    pos_ = q + 1;
    return true;
  }

  NodePtr atom() {
    const char c = peek();
    if (c == '(') {
      ++pos_;
      if (eat('?')) {
        if (eat(':')) {
        } else if (more() && (peek() == 'P' || peek() == '<') &&
                   !(peek() == '<' && pos_ + 1 < p_.size() && (p_[pos_ + 1] == '=' || p_[pos_ + 1] == '!'))) {
          if (peek() == 'P') ++pos_;
          if (!eat('<')) fail("unsupported group syntax");
          while (more() && peek() != '>') ++pos_;
          if (!eat('>')) fail("an unterminated group name");
        } else {
          fail("lookaround, inline flags and other (?...) groups are not supported");
        }
      }
      NodePtr inner = alternatives();
      if (!eat(')')) fail("a missing ')'");
      return inner;
    }
    if (c == '*' || c == '+' || c == '?') fail("a quantifier with nothing to repeat");
    auto n = make(Node::Kind::Chars);
    if (c == '[') {
      n->chars = char_class();
    } else if (c == '.') {
      ++pos_;
      n->chars.ascii.set();
      n->chars.ascii.reset('\n');
      n->chars.all_non_ascii = true;
    } else if (c == '\\') {
      n->chars = escape(false);
    } else {
      n->chars = single(next_char());
    }
    return n;
  }

  // The next (possibly multi-byte) character as a set of one.
  uint32_t next_char() {
    const auto b = static_cast<unsigned char>(p_[pos_]);
    int len = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0;
    if (len == 0 || pos_ + static_cast<size_t>(len) > p_.size()) fail("invalid UTF-8");
    uint32_t cp = len == 1 ? b : (b & (0x7F >> len));
    for (int i = 1; i < len; ++i) cp = (cp << 6) | (static_cast<unsigned char>(p_[pos_ + static_cast<size_t>(i)]) & 0x3F);
    pos_ += static_cast<size_t>(len);
    return cp;
  }
  static CharSet single(uint32_t cp) {
    CharSet s;
    if (cp < 0x80) s.ascii.set(cp);
    else s.non_ascii.push_back(utf8(cp));
    return s;
  }

  uint32_t hex(int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      if (!more() || !std::isxdigit(static_cast<unsigned char>(peek()))) fail("a bad hexadecimal escape");
      const char h = peek();
      v = v * 16 + static_cast<uint32_t>(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
      ++pos_;
    }
    return v;
  }

  // After a backslash (pos_ at it). in_class: \b is a backspace there.
  CharSet escape(bool in_class) {
    ++pos_;
    if (!more()) fail("a trailing backslash");
    const char c = p_[pos_++];
    switch (c) {
      case 'd': return digits();
      case 'D': return negate(digits());
      case 'w': return word();
      case 'W': return negate(word());
      case 's': return space();
      case 'S': return negate(space());
      case 'n': return single('\n');
      case 't': return single('\t');
      case 'r': return single('\r');
      case 'f': return single('\f');
      case 'v': return single('\v');
      case '0': return single(0);
      case 'x': return single(hex(2));
      case 'u': {
        const uint32_t cp = hex(4);
        if (cp >= 0xD800 && cp <= 0xDFFF) fail("a surrogate \\u escape");
        return single(cp);
      }
      case 'b':
        if (in_class) return single('\b');
        [[fallthrough]];
      default:
        if (std::isalnum(static_cast<unsigned char>(c))) {
          --pos_;
          fail(concat("the escape \\", c, " (backreferences, word boundaries and anchors other than ^ $) is not supported"));
        }
        --pos_;
        return single(next_char());
    }
  }

  CharSet char_class() {
    ++pos_;  // '['
    const bool negated = eat('^');
    CharSet set;
    bool first = true;
    while (more() && (peek() != ']' || first)) {
      first = false;
      if (peek() == '[' && pos_ + 1 < p_.size() && p_[pos_ + 1] == ':') fail("POSIX classes are not supported");
      CharSet lo_set = peek() == '\\' ? escape(true) : single(next_char());
      const bool one = lo_set.ascii.count() + lo_set.non_ascii.size() == 1 && !lo_set.all_non_ascii;
      if (one && more() && peek() == '-' && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
        ++pos_;
        const CharSet hi_set = peek() == '\\' ? escape(true) : single(next_char());
        if (!lo_set.non_ascii.empty() || !hi_set.non_ascii.empty() || hi_set.ascii.count() != 1 ||
            hi_set.all_non_ascii)
          fail("a class range is only supported between two ASCII characters");
        size_t lo = 0, hi = 0;
        while (!lo_set.ascii[lo]) ++lo;
        while (!hi_set.ascii[hi]) ++hi;
        if (hi < lo) fail("a class range out of order");
        for (size_t b = lo; b <= hi; ++b) set.ascii.set(b);
        continue;
      }
      merge(set, lo_set);
    }
    if (!eat(']')) fail("an unterminated character class");
    return negated ? negate(set) : set;
  }

  std::string_view p_;
  size_t pos_ = 0;
};

bool needs_json_escape(size_t c) { return c < 0x20 || c == '"' || c == '\\'; }

std::string json_escaped(size_t c) {
  switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\t': return "\\t";
    case '\r': return "\\r";
    case '\b': return "\\b";
    case '\f': return "\\f";
    default: {
      static const char* hex = "0123456789abcdef";
      return std::string("\\u00") + hex[c >> 4] + hex[c & 15];
    }
  }
}

ByteNfa::Fragment emit(ByteNfa& nfa, const Node& n, RegexContext context) {
  switch (n.kind) {
    case Node::Kind::Chars: {
      std::bitset<128> plain = n.chars.ascii;
      std::vector<ByteNfa::Fragment> options;
      if (context == RegexContext::JsonString)
        for (size_t c = 0; c < 128; ++c)
          if (plain[c] && needs_json_escape(c)) {
            plain.reset(c);
            options.push_back(nfa.literal(json_escaped(c)));
          }
      if (plain.any() || n.chars.all_non_ascii) options.push_back(nfa.utf8_char(plain, n.chars.all_non_ascii));
      if (!n.chars.all_non_ascii)
        for (const std::string& s : n.chars.non_ascii) options.push_back(nfa.literal(s));
      if (options.size() == 1) return options[0];
      return options.empty() ? nfa.nothing() : nfa.alternatives(options);
    }
    case Node::Kind::Sequence: {
      std::vector<ByteNfa::Fragment> parts;
      for (const auto& c : n.children) parts.push_back(emit(nfa, *c, context));
      return nfa.sequence(parts);
    }
    case Node::Kind::Alternatives: {
      std::vector<ByteNfa::Fragment> options;
      for (const auto& c : n.children) options.push_back(emit(nfa, *c, context));
      return nfa.alternatives(options);
    }
    case Node::Kind::Repeat: {
      const Node& inner = *n.children[0];
      return nfa.repeat([&] { return emit(nfa, inner, context); }, n.min, n.max);
    }
  }
  return nfa.nothing();
}

}  // namespace

ByteNfa::Fragment compile_regex(ByteNfa& nfa, std::string_view pattern, RegexContext context) {
  const NodePtr root = Parser(pattern).parse();
  return emit(nfa, *root, context);
}

}  // namespace flashneox
