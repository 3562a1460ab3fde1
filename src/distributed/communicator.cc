#include "distributed/communicator.h"

namespace flashneox {
namespace {
Communicator* g_world = nullptr;
}  // namespace

Communicator* tensor_parallel_world() { return g_world; }
void set_tensor_parallel_world(Communicator* world) { g_world = world; }

}  // namespace flashneox
