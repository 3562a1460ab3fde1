// The process allocator's housekeeping. Builds link mimalloc (a thread-caching
// allocator) except under the sanitizers. A server's many handler threads each
// free what they built and then wait for their next job; without this, every
// one of them keeps its freed memory cached and resident memory climbs with
// each large request until every thread's cache is full.
#pragma once

namespace flashneox {

// For a long-running server: freed memory goes back to the system at once
// instead of after a delay that an idle thread never reaches.
void configure_allocator_for_server();

// Returns the calling thread's cached free memory to the system (a no-op
// without mimalloc). Cheap when there is little to return.
void release_thread_memory();

}  // namespace flashneox
