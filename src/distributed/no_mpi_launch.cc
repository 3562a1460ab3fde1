// start_mpi_if_launched for a build without MPI: run alone, or say why not.
#include <cstdio>
#include <cstdlib>

#include "distributed/mpi_launch.h"

namespace flashneox {

std::unique_ptr<Communicator> start_mpi_if_launched(int*, char***) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(name); v && std::atoi(v) > 1) {
      std::fprintf(stderr, "flashneox: started as one of %s MPI ranks, but this build has no MPI (install Open MPI, "
                           "e.g. `make deps`, and rebuild)\n", v);
      std::exit(1);
    }
  return nullptr;
}

}  // namespace flashneox
