// flashneox: the command-line entry point (cli/command_line.h does the work).
// Under `mpirun -np N` it is one rank of a tensor-parallel job: rank 0 runs
// the command, the others serve its model's forward passes.
#include "cli/command_line.h"
#include "distributed/mpi_launch.h"

int main(int argc, char** argv) {
  std::unique_ptr<flashneox::Communicator> world = flashneox::start_mpi_if_launched(&argc, &argv);
  if (!world) return flashneox::run_command_line(argc, argv);
  return flashneox::run_tensor_parallel_command_line(*world, argc, argv);
}
