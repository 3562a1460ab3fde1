#include "core/allocator.h"

#ifdef FLASHNEOX_MIMALLOC
#include <mimalloc.h>
#endif

namespace flashneox {

void configure_allocator_for_server() {
#ifdef FLASHNEOX_MIMALLOC
  mi_option_set(mi_option_decommit_delay, 0);
  mi_option_set(mi_option_segment_decommit_delay, 0);
#endif
}

void release_thread_memory() {
#ifdef FLASHNEOX_MIMALLOC
  mi_collect(true);
#endif
}

}  // namespace flashneox
