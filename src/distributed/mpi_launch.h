// How the program starts under mpirun: MPI is initialised only when the
// environment says this process is one rank of several (Open MPI's, PMIx's or
// PMI's variables); a plain `flashneox ...` never touches MPI.
#pragma once

#include <memory>

#include "distributed/communicator.h"

namespace flashneox {

// The world of ranks when launched by mpirun with more than one process, else
// null. A program built without MPI but started as one of several ranks
// exits with a message saying so. The communicator finalises MPI when destroyed.
std::unique_ptr<Communicator> start_mpi_if_launched(int* argc, char*** argv);

}  // namespace flashneox
