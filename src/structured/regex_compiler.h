// Regular expressions (the common subset of ECMAScript and Python: literals,
// escapes, classes, `.`, groups, alternation, greedy or lazy quantifiers) to
// a byte NFA over UTF-8 text. The whole output must match (fullmatch); `^`
// and `$` are accepted at the ends. Anything else — backreferences,
// lookaround, word boundaries, inline flags, possessive quantifiers — is a
// GrammarError naming it and its offset.
#pragma once

#include <string_view>

#include "structured/byte_nfa.h"

namespace flashneox {

enum class RegexContext {
  Text,        // the bytes themselves
  JsonString,  // inside a JSON string: `"`, `\` and control characters come out escaped
};

ByteNfa::Fragment compile_regex(ByteNfa& nfa, std::string_view pattern,
                                RegexContext context = RegexContext::Text);

}  // namespace flashneox
