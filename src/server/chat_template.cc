#include "server/chat_template.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include "core/error.h"
#include "core/file_util.h"

namespace flashneox {

using nlohmann::json;

// ---------------------------------------------------------------- expressions
namespace {

struct Expr;
using ExprPtr = std::shared_ptr<Expr>;

struct Expr {
  enum Kind { Literal, Name, Attr, Index, Slice, Call, Filter, Unary, Binary, Test } kind;
  json value;                // Literal
  std::string name;          // Name, Attr, Call, Filter, Unary/Binary/Test operator
  std::vector<ExprPtr> args; // operands
};

constexpr int kMaxDepth = 64;  // nesting of expressions and of blocks

class ExprParser {
 public:
  explicit ExprParser(const std::string& text) : s_(text) {}

  ExprPtr parse_all() {
    ExprPtr e = parse_or();
    skip();
    if (i_ != s_.size()) fail("unexpected '" + s_.substr(i_) + "'");
    return e;
  }
  // For `for x in expr`: an identifier.
  std::string identifier() {
    skip();
    const size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_')) ++i_;
    if (start == i_) fail("expected a name");
    return s_.substr(start, i_ - start);
  }
  bool keyword(const std::string& word) {
    skip();
    if (s_.compare(i_, word.size(), word) != 0) return false;
    const size_t end = i_ + word.size();
    if (end < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[end])) || s_[end] == '_')) return false;
    i_ = end;
    return true;
  }
  ExprPtr expression() { return parse_or(); }
  bool done() {
    skip();
    return i_ == s_.size();
  }
  bool symbol(const std::string& sym) {
    skip();
    if (s_.compare(i_, sym.size(), sym) != 0) return false;
    i_ += sym.size();
    return true;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error("chat template: " + why + " in '" + s_ + "'");
  }
  void skip() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  static ExprPtr make(Expr::Kind k, std::string name, std::vector<ExprPtr> args) {
    auto e = std::make_shared<Expr>();
    e->kind = k;
    e->name = std::move(name);
    e->args = std::move(args);
    return e;
  }
  ExprPtr parse_or() {
    // Every nested expression passes here: bound the recursion.
    if (++depth_ > kMaxDepth) fail(concat("expression nests deeper than ", kMaxDepth, " levels"));
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth_};
    ExprPtr left = parse_and();
    while (keyword("or")) left = make(Expr::Binary, "or", {left, parse_and()});
    return left;
  }
  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (keyword("and")) left = make(Expr::Binary, "and", {left, parse_not()});
    return left;
  }
  ExprPtr parse_not() {
    if (keyword("not")) return make(Expr::Unary, "not", {parse_not()});
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr left = parse_concat();
    for (;;) {
      std::string op;
      for (const char* candidate : {"==", "!=", "<=", ">=", "<", ">"})
        if (symbol(candidate)) {
          op = candidate;
          break;
        }
      if (op.empty()) {
        if (keyword("not")) {
          if (!keyword("in")) fail("expected 'in' after 'not'");
          left = make(Expr::Unary, "not", {make(Expr::Binary, "in", {left, parse_concat()})});
          continue;
        }
        if (keyword("in")) {
          left = make(Expr::Binary, "in", {left, parse_concat()});
          continue;
        }
        if (keyword("is")) {
          const bool negate = keyword("not");
          const std::string test = identifier();
          ExprPtr t = make(Expr::Test, test, {left});
          left = negate ? make(Expr::Unary, "not", {t}) : t;
          continue;
        }
        return left;
      }
      left = make(Expr::Binary, op, {left, parse_concat()});
    }
  }
  ExprPtr parse_concat() {
    ExprPtr left = parse_additive();
    while (symbol("~")) left = make(Expr::Binary, "~", {left, parse_additive()});
    return left;
  }
  ExprPtr parse_additive() {
    ExprPtr left = parse_multiplicative();
    for (;;) {
      if (symbol("+")) left = make(Expr::Binary, "+", {left, parse_multiplicative()});
      else if (symbol("-")) left = make(Expr::Binary, "-", {left, parse_multiplicative()});
      else return left;
    }
  }
  ExprPtr parse_multiplicative() {
    ExprPtr left = parse_filtered();
    for (;;) {
      if (symbol("%")) left = make(Expr::Binary, "%", {left, parse_filtered()});
      else if (symbol("*")) left = make(Expr::Binary, "*", {left, parse_filtered()});
      else return left;
    }
  }
  ExprPtr parse_filtered() {
    ExprPtr e = parse_postfix();
    while (symbol("|")) e = make(Expr::Filter, identifier(), {e});
    return e;
  }
  ExprPtr parse_postfix() {
    ExprPtr e = parse_primary();
    for (;;) {
      if (symbol(".")) {
        e = make(Expr::Attr, identifier(), {e});
      } else if (symbol("[")) {
        ExprPtr start, stop;
        if (!symbol(":")) {
          start = parse_or();
          if (!symbol(":")) {
            if (!symbol("]")) fail("expected ']'");
            e = make(Expr::Index, "", {e, start});
            continue;
          }
        }
        skip();
        if (i_ < s_.size() && s_[i_] != ']') stop = parse_or();
        if (!symbol("]")) fail("expected ']'");
        e = make(Expr::Slice, "", {e, start, stop});
      } else if (symbol("(")) {
        if (e->kind != Expr::Name) fail("only named functions can be called");
        std::vector<ExprPtr> args;
        if (!symbol(")")) {
          do args.push_back(parse_or());
          while (symbol(","));
          if (!symbol(")")) fail("expected ')'");
        }
        e = make(Expr::Call, e->name, args);
      } else {
        return e;
      }
    }
  }
  ExprPtr parse_primary() {
    skip();
    if (i_ >= s_.size()) fail("unexpected end of expression");
    const char c = s_[i_];
    if (c == '(') {
      ++i_;
      ExprPtr e = parse_or();
      if (!symbol(")")) fail("expected ')'");
      return e;
    }
    if (c == '\'' || c == '"') {
      ++i_;
      std::string out;
      while (i_ < s_.size() && s_[i_] != c) {
        if (s_[i_] == '\\' && i_ + 1 < s_.size()) {
          const char e = s_[++i_];
          out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        } else {
          out += s_[i_];
        }
        ++i_;
      }
      if (i_ >= s_.size()) fail("unterminated string");
      ++i_;
      auto e = make(Expr::Literal, "", {});
      e->value = out;
      return e;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t end = i_;
      while (end < s_.size() && std::isdigit(static_cast<unsigned char>(s_[end]))) ++end;
      auto e = make(Expr::Literal, "", {});
      const std::string digits = s_.substr(i_, end - i_);
      if (digits.size() > 18) fail("integer literal " + digits.substr(0, 24) + (digits.size() > 24 ? "..." : "") + " is too large");
      e->value = std::stoll(digits);
      i_ = end;
      return e;
    }
    if (c == '[') {  // list literal
      ++i_;
      std::vector<ExprPtr> items;
      if (!symbol("]")) {
        do items.push_back(parse_or());
        while (symbol(","));
        if (!symbol("]")) fail("expected ']'");
      }
      return make(Expr::Call, "__list__", items);
    }
    const std::string id = identifier();
    auto e = make(Expr::Literal, "", {});
    if (id == "true" || id == "True") e->value = true;
    else if (id == "false" || id == "False") e->value = false;
    else if (id == "none" || id == "None") e->value = nullptr;
    else return make(Expr::Name, id, {});
    return e;
  }

  std::string s_;
  size_t i_ = 0;
  int depth_ = 0;
};

bool truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() != 0;
  if (v.is_number()) return v.get<double>() != 0.0;
  if (v.is_string()) return !v.get<std::string>().empty();
  if (v.is_array() || v.is_object()) return !v.empty();
  return true;
}

std::string to_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  return v.dump();
}

struct Scope {
  std::vector<json> frames;  // innermost last; each an object of variables
  const json* lookup(const std::string& name) const {
    for (auto it = frames.rbegin(); it != frames.rend(); ++it)
      if (it->contains(name)) return &(*it)[name];
    return nullptr;
  }
};

json eval(const Expr& e, Scope& scope);

json eval_binary(const Expr& e, Scope& scope) {
  const std::string& op = e.name;
  if (op == "and") {
    json l = eval(*e.args[0], scope);
    return truthy(l) ? eval(*e.args[1], scope) : l;
  }
  if (op == "or") {
    json l = eval(*e.args[0], scope);
    return truthy(l) ? l : eval(*e.args[1], scope);
  }
  const json l = eval(*e.args[0], scope);
  const json r = eval(*e.args[1], scope);
  if (op == "==") return l == r;
  if (op == "!=") return l != r;
  if (op == "~") return to_text(l) + to_text(r);
  if (op == "in") {
    if (r.is_string()) return l.is_string() && r.get<std::string>().find(l.get<std::string>()) != std::string::npos;
    if (r.is_array()) return std::find(r.begin(), r.end(), l) != r.end();
    if (r.is_object()) return l.is_string() && r.contains(l.get<std::string>());
    return false;
  }
  if (op == "+") {
    if (l.is_string() && r.is_string()) return l.get<std::string>() + r.get<std::string>();
    if (l.is_array() && r.is_array()) {
      json out = l;
      for (const auto& v : r) out.push_back(v);
      return out;
    }
  }
  if (l.is_number() && r.is_number()) {
    if (l.is_number_integer() && r.is_number_integer()) {
      const int64_t a = l.get<int64_t>(), b = r.get<int64_t>();
      int64_t out = 0;
      const bool overflow = op == "+" ? __builtin_add_overflow(a, b, &out)
                            : op == "-" ? __builtin_sub_overflow(a, b, &out)
                            : op == "*" ? __builtin_mul_overflow(a, b, &out)
                                        : false;
      if (overflow) throw Error(concat("chat template: ", a, " ", op, " ", b, " overflows a 64-bit integer"));
      if (op == "+" || op == "-" || op == "*") return out;
      if (op == "%") {
        if (b == 0) throw Error("chat template: modulo by zero");
        if (b == -1) return int64_t{0};  // INT64_MIN % -1 would trap
        return a % b;
      }
    } else {
      const double a = l.get<double>(), b = r.get<double>();
      if (op == "+") return a + b;
      if (op == "-") return a - b;
      if (op == "*") return a * b;
    }
    const double a = l.get<double>(), b = r.get<double>();
    if (op == "<") return a < b;
    if (op == ">") return a > b;
    if (op == "<=") return a <= b;
    if (op == ">=") return a >= b;
  }
  if (l.is_string() && r.is_string()) {
    if (op == "<") return l < r;
    if (op == ">") return l > r;
  }
  throw Error("chat template: cannot apply '" + op + "' to " + l.type_name() + " and " + r.type_name());
}

json eval(const Expr& e, Scope& scope) {
  switch (e.kind) {
    case Expr::Literal: return e.value;
    case Expr::Name: {
      const json* v = scope.lookup(e.name);
      return v ? *v : json();  // undefined renders as nothing, as Jinja does
    }
    case Expr::Attr:
    case Expr::Index: {
      const json base = eval(*e.args[0], scope);
      const json key = e.kind == Expr::Attr ? json(e.name) : eval(*e.args[1], scope);
      if (base.is_object() && key.is_string()) {
        auto it = base.find(key.get<std::string>());
        return it == base.end() ? json() : *it;
      }
      if ((base.is_array() || base.is_string()) && key.is_number_integer()) {
        int64_t i = key.get<int64_t>();
        const int64_t n = base.is_array() ? static_cast<int64_t>(base.size())
                                          : static_cast<int64_t>(base.get<std::string>().size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) throw Error("chat template: index out of range");
        return base.is_array() ? base[static_cast<size_t>(i)] : json(base.get<std::string>().substr(i, 1));
      }
      return json();
    }
    case Expr::Slice: {
      const json base = eval(*e.args[0], scope);
      if (!base.is_array() && !base.is_string()) throw Error("chat template: can only slice lists and strings");
      const int64_t n = base.is_array() ? static_cast<int64_t>(base.size()) : static_cast<int64_t>(base.get<std::string>().size());
      auto bound = [&](const ExprPtr& x, int64_t fallback) {
        if (!x) return fallback;
        int64_t v = eval(*x, scope).get<int64_t>();
        if (v < 0) v += n;
        return std::clamp<int64_t>(v, 0, n);
      };
      const int64_t a = bound(e.args[1], 0), b = bound(e.args[2], n);
      if (base.is_string()) return base.get<std::string>().substr(a, b > a ? b - a : 0);
      json out = json::array();
      for (int64_t i = a; i < b; ++i) out.push_back(base[static_cast<size_t>(i)]);
      return out;
    }
    case Expr::Call: {
      std::vector<json> args;
      for (const auto& a : e.args) args.push_back(eval(*a, scope));
      if (e.name == "__list__") return json(args);
      if (e.name == "raise_exception")
        throw Error("chat template: " + (args.empty() ? std::string("error") : to_text(args[0])));
      if (e.name == "range" && args.size() == 1) {
        json out = json::array();
        for (int64_t i = 0; i < args[0].get<int64_t>(); ++i) out.push_back(i);
        return out;
      }
      throw Error("chat template: unknown function '" + e.name + "'");
    }
    case Expr::Filter: {
      const json v = eval(*e.args[0], scope);
      if (e.name == "trim") {
        std::string s = to_text(v);
        const size_t b = s.find_first_not_of(" \t\r\n");
        const size_t en = s.find_last_not_of(" \t\r\n");
        return b == std::string::npos ? std::string() : s.substr(b, en - b + 1);
      }
      if (e.name == "length") return v.is_string() ? v.get<std::string>().size() : v.size();
      if (e.name == "upper" || e.name == "lower") {
        std::string s = to_text(v);
        for (char& c : s) c = static_cast<char>(e.name == "upper" ? std::toupper(static_cast<unsigned char>(c))
                                                                   : std::tolower(static_cast<unsigned char>(c)));
        return s;
      }
      if (e.name == "tojson") return v.dump();
      if (e.name == "string") return to_text(v);
      throw Error("chat template: unknown filter '" + e.name + "'");
    }
    case Expr::Unary: return !truthy(eval(*e.args[0], scope));
    case Expr::Binary: return eval_binary(e, scope);
    case Expr::Test: {
      const Expr& target = *e.args[0];
      if (e.name == "defined") {
        if (target.kind == Expr::Name) return scope.lookup(target.name) != nullptr;
        return !eval(target, scope).is_null();
      }
      const json v = eval(target, scope);
      if (e.name == "none") return v.is_null();
      if (e.name == "string") return v.is_string();
      if (e.name == "mapping") return v.is_object();
      if (e.name == "iterable" || e.name == "sequence") return v.is_array() || v.is_string();
      throw Error("chat template: unknown test '" + e.name + "'");
    }
  }
  return json();
}

}  // namespace

// ---------------------------------------------------------------- statements
struct ChatTemplate::Node {
  enum Kind { Text, Output, For, If, Set, Block } kind = Block;
  std::string text;                    // Text; For: loop variable; Set: name
  ExprPtr expr;                        // Output, For (iterable), Set
  std::vector<std::pair<ExprPtr, std::shared_ptr<Node>>> branches;  // If: (condition or null for else, body)
  std::vector<std::shared_ptr<Node>> children;  // Block
};

namespace {

using NodePtr = std::shared_ptr<ChatTemplate::Node>;

struct Token {
  enum Kind { Text, Output, Statement } kind;
  std::string body;
};

std::vector<Token> tokenize_template(const std::string& src) {
  std::vector<Token> out;
  size_t i = 0;
  bool trim_next = false;
  while (i < src.size()) {
    const size_t open = src.find('{', i);
    size_t tag = std::string::npos;
    for (size_t p = open; p != std::string::npos && p + 1 < src.size(); p = src.find('{', p + 1))
      if (src[p + 1] == '{' || src[p + 1] == '%' || src[p + 1] == '#') {
        tag = p;
        break;
      }
    std::string text = src.substr(i, tag == std::string::npos ? std::string::npos : tag - i);
    if (trim_next) text.erase(0, text.find_first_not_of(" \t\r\n") == std::string::npos ? text.size() : text.find_first_not_of(" \t\r\n"));
    trim_next = false;
    if (tag == std::string::npos) {
      if (!text.empty()) out.push_back({Token::Text, text});
      break;
    }
    const char type = src[tag + 1];
    const std::string close = type == '{' ? "}}" : type == '%' ? "%}" : "#}";
    const size_t end = src.find(close, tag + 2);
    if (end == std::string::npos) throw Error("chat template: unclosed tag");
    std::string body = src.substr(tag + 2, end - tag - 2);
    if (!body.empty() && body.front() == '-') {  // {%- trims the text before
      body.erase(0, 1);
      const size_t keep = text.find_last_not_of(" \t\r\n");
      text = keep == std::string::npos ? std::string() : text.substr(0, keep + 1);
    }
    if (!body.empty() && body.back() == '-') {  // -%} trims the text after
      body.pop_back();
      trim_next = true;
    }
    if (!text.empty()) out.push_back({Token::Text, text});
    if (type == '{') out.push_back({Token::Output, body});
    if (type == '%') out.push_back({Token::Statement, body});
    i = end + 2;
  }
  return out;
}

class TemplateParser {
 public:
  explicit TemplateParser(std::vector<Token> tokens) : t_(std::move(tokens)) {}
  NodePtr parse() {
    std::string end;
    NodePtr root = block({}, end);
    if (!end.empty()) throw Error("chat template: unexpected '" + end + "'");
    return root;
  }

 private:
  // Parses until one of `stops` (returned in `stopped_by`, with its statement).
  NodePtr block(const std::vector<std::string>& stops, std::string& stopped_by) {
    if (++depth_ > kMaxDepth) throw Error(concat("chat template: blocks nest deeper than ", kMaxDepth, " levels"));
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth_};
    auto node = std::make_shared<ChatTemplate::Node>();
    while (pos_ < t_.size()) {
      const Token& tok = t_[pos_++];
      if (tok.kind == Token::Text) {
        auto n = std::make_shared<ChatTemplate::Node>();
        n->kind = ChatTemplate::Node::Text;
        n->text = tok.body;
        node->children.push_back(n);
        continue;
      }
      if (tok.kind == Token::Output) {
        auto n = std::make_shared<ChatTemplate::Node>();
        n->kind = ChatTemplate::Node::Output;
        n->expr = ExprParser(tok.body).parse_all();
        node->children.push_back(n);
        continue;
      }
      ExprParser p(tok.body);
      const std::string word = p.identifier();
      if (std::find(stops.begin(), stops.end(), word) != stops.end()) {
        stopped_by = word;
        last_statement_ = tok.body;
        return node;
      }
      if (word == "for") {
        auto n = std::make_shared<ChatTemplate::Node>();
        n->kind = ChatTemplate::Node::For;
        n->text = p.identifier();
        if (!p.keyword("in")) throw Error("chat template: expected 'in' in '" + tok.body + "'");
        n->expr = p.expression();
        if (!p.done()) throw Error("chat template: unsupported for-loop '" + tok.body + "'");
        std::string end;
        n->children.push_back(block({"endfor"}, end));
        if (end != "endfor") throw Error("chat template: missing endfor");
        node->children.push_back(n);
      } else if (word == "if") {
        auto n = std::make_shared<ChatTemplate::Node>();
        n->kind = ChatTemplate::Node::If;
        ExprPtr cond = p.expression();
        for (;;) {
          std::string end;
          NodePtr body = block({"elif", "else", "endif"}, end);
          n->branches.emplace_back(cond, body);
          if (end == "endif") break;
          if (end == "else") {
            std::string end2;
            n->branches.emplace_back(nullptr, block({"endif"}, end2));
            if (end2 != "endif") throw Error("chat template: missing endif");
            break;
          }
          if (end != "elif") throw Error("chat template: missing endif");
          ExprParser q(last_statement_);
          q.identifier();
          cond = q.expression();
        }
        node->children.push_back(n);
      } else if (word == "set") {
        auto n = std::make_shared<ChatTemplate::Node>();
        n->kind = ChatTemplate::Node::Set;
        n->text = p.identifier();
        if (!p.symbol("=")) throw Error("chat template: unsupported set '" + tok.body + "'");
        n->expr = p.expression();
        node->children.push_back(n);
      } else {
        throw Error("chat template: unsupported statement '" + word + "'");
      }
    }
    if (!stops.empty()) throw Error("chat template: missing " + stops.back());
    return node;
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
  std::string last_statement_;
  int depth_ = 0;
};

void render_node(const ChatTemplate::Node& n, Scope& scope, std::string& out) {
  using Node = ChatTemplate::Node;
  switch (n.kind) {
    case Node::Text: out += n.text; return;
    case Node::Output: out += to_text(eval(*n.expr, scope)); return;
    case Node::Block:
      for (const auto& c : n.children) render_node(*c, scope, out);
      return;
    case Node::Set: scope.frames.back()[n.text] = eval(*n.expr, scope); return;
    case Node::If:
      for (const auto& [cond, body] : n.branches)
        if (!cond || truthy(eval(*cond, scope))) {
          render_node(*body, scope, out);
          return;
        }
      return;
    case Node::For: {
      const json items = eval(*n.expr, scope);
      if (!items.is_array()) throw Error("chat template: can only loop over lists");
      const size_t count = items.size();
      for (size_t i = 0; i < count; ++i) {
        scope.frames.push_back({{n.text, items[i]},
                                {"loop", {{"index0", i}, {"index", i + 1}, {"first", i == 0}, {"last", i + 1 == count},
                                          {"length", count}}}});
        render_node(*n.children[0], scope, out);
        scope.frames.pop_back();
      }
      return;
    }
  }
}

}  // namespace

ChatTemplate::ChatTemplate(const std::string& source)
    : root_(TemplateParser(tokenize_template(source)).parse()) {}

ChatTemplate::~ChatTemplate() = default;

std::string ChatTemplate::render(const json& variables) const {
  Scope scope;
  scope.frames.push_back(variables.is_object() ? variables : json::object());
  scope.frames.push_back(json::object());  // {% set %} at top level
  std::string out;
  render_node(*root_, scope, out);
  return out;
}

ModelChatTemplate load_chat_template(const std::string& model_dir) {
  ModelChatTemplate result;
  const std::string path = model_dir + "/tokenizer_config.json";
  if (!std::filesystem::exists(path)) return result;
  json config;
  try {
    config = json::parse(read_regular_file(path, 16 << 20));
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON (" + e.what() + ")");
  }
  auto token_text = [](const json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return std::string();
  };
  result.bos_token = token_text(config.value("bos_token", json()));
  result.eos_token = token_text(config.value("eos_token", json()));
  const json t = config.value("chat_template", json());
  std::string source;
  if (t.is_string()) {
    source = t.get<std::string>();
  } else if (t.is_array()) {  // named templates: use "default"
    for (const json& entry : t)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template"))
        source = entry["template"].get<std::string>();
  }
  if (!source.empty()) {
    try {
      result.tmpl = std::make_unique<ChatTemplate>(source);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
  }
  return result;
}

}  // namespace flashneox
