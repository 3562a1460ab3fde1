// The OpenAPI 3.1 description of every route (src/server/api/openapi.json,
// compiled in), served at GET /openapi.json. tests/openapi_test.cc holds it
// to the router: the same routes both ways, and every documented request
// field one the parsers read; the schemathesis run in tests/server holds the
// server's answers to it.
#pragma once

#include <nlohmann/json.hpp>

namespace flashneox {

const nlohmann::json& openapi_document();

}  // namespace flashneox
