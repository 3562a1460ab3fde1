#include "server/http/router.h"

#include <algorithm>

namespace flashneox {

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (key == name) return value;
  return "";
}

void Router::add(const std::string& method, const std::string& path, HttpHandler handler) {
  by_path_[path][method] = std::move(handler);
}

Router::Match Router::find(const std::string& method, const std::string& path,
                           const HttpHandler** handler, std::string* allow) const {
  auto p = by_path_.find(path);
  if (p == by_path_.end()) return Match::NoPath;
  auto m = p->second.find(method);
  if (m != p->second.end()) {
    *handler = &m->second;
    return Match::Found;
  }
  allow->clear();
  for (const auto& [name, h] : p->second) {
    *allow += (allow->empty() ? "" : ", ") + name;
  }
  return Match::WrongMethod;
}

void Router::wrap(const std::function<HttpHandler(const std::string&, HttpHandler)>& wrapper) {
  for (auto& [path, methods] : by_path_)
    for (auto& [method, handler] : methods) handler = wrapper(path, std::move(handler));
}

std::vector<std::pair<std::string, std::string>> Router::routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [path, methods] : by_path_)
    for (const auto& [method, h] : methods) out.emplace_back(method, path);
  return out;
}

}  // namespace flashneox
