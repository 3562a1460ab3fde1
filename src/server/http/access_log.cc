#include "server/http/access_log.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace flashneox {

AccessLogFormat parse_access_log_format(const std::string& name) {
  if (name == "text") return AccessLogFormat::Text;
  if (name == "json") return AccessLogFormat::Json;
  if (name == "off") return AccessLogFormat::Off;
  throw Error(concat("--log-format must be text or json, not '", name, "'"));
}

namespace {

std::string iso_time(std::chrono::system_clock::time_point t) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

std::string AccessLog::format(const AccessRecord& r) const {
  const AccessInfo& i = r.info;
  if (format_ == AccessLogFormat::Json) {
    nlohmann::json j = {{"time", iso_time(r.time)}, {"client", r.client}, {"method", r.method},
                        {"route", r.path},          {"status", r.status},
                        {"total_ms", std::round(r.total_seconds * 1e4) / 10.0}};
    if (i.prompt_tokens >= 0) j["prompt_tokens"] = i.prompt_tokens;
    if (i.generated_tokens >= 0) j["generated_tokens"] = i.generated_tokens;
    if (i.queue_seconds >= 0) j["queue_ms"] = std::round(i.queue_seconds * 1e4) / 10.0;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string line = concat(iso_time(r.time), " ", r.client, " ", r.method, " ", r.path, " ", r.status);
  char buf[96];
  if (i.prompt_tokens >= 0) line += concat(" prompt_tokens=", i.prompt_tokens);
  if (i.generated_tokens >= 0) line += concat(" generated_tokens=", i.generated_tokens);
  if (i.queue_seconds >= 0) {
    std::snprintf(buf, sizeof buf, " queue_ms=%.1f", i.queue_seconds * 1e3);
    line += buf;
  }
  std::snprintf(buf, sizeof buf, " total_ms=%.1f", r.total_seconds * 1e3);
  return line + buf;
}

void AccessLog::write(const AccessRecord& record) {
  if (format_ == AccessLogFormat::Off) return;
  const std::string line = format(record) + "\n";
  std::lock_guard<std::mutex> lock(mutex_);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace flashneox
