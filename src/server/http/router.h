// Routes by exact path and method. A known path with another method is a 405
// that lists the allowed ones (RFC 9110 §15.5.6), an unknown path a 404.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "server/http/http_message.h"

namespace flashneox {

class Router {
 public:
  void add(const std::string& method, const std::string& path, HttpHandler handler);
  void get(const std::string& path, HttpHandler h) { add("GET", path, std::move(h)); }
  void post(const std::string& path, HttpHandler h) { add("POST", path, std::move(h)); }

  enum class Match { Found, WrongMethod, NoPath };
  // The handler for (method, path); on WrongMethod `allow` lists the methods
  // the path takes ("GET, HEAD").
  Match find(const std::string& method, const std::string& path, const HttpHandler** handler,
             std::string* allow) const;
  // Replaces every handler h of a path with wrapper(path, h) (authentication).
  void wrap(const std::function<HttpHandler(const std::string& path, HttpHandler)>& wrapper);
  // Every (method, path) registered, in order.
  std::vector<std::pair<std::string, std::string>> routes() const;

 private:
  std::map<std::string, std::map<std::string, HttpHandler>> by_path_;  // path -> method -> handler
};

}  // namespace flashneox
