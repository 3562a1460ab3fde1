// One model split across the ranks of an MPI job (`mpirun -np N flashneox
// serve ...`): rank 0 runs the command as usual (HTTP, scheduler, sampler)
// and its model's forward() sends each batch to the other ranks, which run
// their part in run_tensor_parallel_worker until rank 0 stops them.
#pragma once

#include <memory>
#include <string>

#include "distributed/communicator.h"
#include "model/gpt_neox.h"

namespace flashneox {

// Rank 0: every rank loads its slices of the model folder `dir` (the same
// path on every machine); throws Error naming each rank that could not (a
// missing or damaged file, another config.json or flashneox version).
std::unique_ptr<GptNeoxModel> load_tensor_parallel_model(Communicator& world, const std::string& dir,
                                                         const LoadOptions& options);

// Every other rank: runs rank 0's commands until told to stop; returns the
// exit code (non-zero when its last load failed).
int run_tensor_parallel_worker(Communicator& world);

// Rank 0, when its command is done.
void stop_tensor_parallel_workers(Communicator& world);

}  // namespace flashneox
