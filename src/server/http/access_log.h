// One line per request on stderr: time, client, method, route, status, prompt
// and generated tokens, queue and total time. Text for people, JSON lines for
// log shippers.
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include "server/http/http_message.h"

namespace flashneox {

enum class AccessLogFormat { Off, Text, Json };

// "text", "json" or "off"; throws Error otherwise.
AccessLogFormat parse_access_log_format(const std::string& name);

struct AccessRecord {
  std::chrono::system_clock::time_point time;  // when the request arrived
  std::string client, method, path;
  int status = 0;
  AccessInfo info;
  double total_seconds = 0.0;
};

class AccessLog {
 public:
  explicit AccessLog(AccessLogFormat format) : format_(format) {}
  void write(const AccessRecord& record);
  // The line write() prints, without the newline (for tests).
  std::string format(const AccessRecord& record) const;

 private:
  AccessLogFormat format_;
  std::mutex mutex_;
};

}  // namespace flashneox
