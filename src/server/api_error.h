// HTTP errors as TGI returns them: a status and {"error": ..., "error_type": ...}.
#pragma once

#include <string>

#include "core/error.h"

namespace flashneox {

class ApiError : public Error {
 public:
  ApiError(int status, std::string error_type, const std::string& message)
      : Error(message), status_(status), type_(std::move(error_type)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string type_;
};

inline ApiError bad_request(const std::string& message) {  // unparseable body: 400
  return ApiError(400, "validation", message);
}
inline ApiError validation_error(const std::string& message) {  // well-formed but invalid: 422
  return ApiError(422, "validation", message);
}

}  // namespace flashneox
