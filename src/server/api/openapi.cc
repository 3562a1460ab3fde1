#include "server/api/openapi.h"

#include "server/api/openapi_document.h"

namespace flashneox {

const nlohmann::json& openapi_document() {
  static const nlohmann::json document = nlohmann::json::parse(kOpenApiJson);
  return document;
}

}  // namespace flashneox
