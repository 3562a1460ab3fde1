// The flashneox command line: dispatches argv (argv[0] is the program, argv[1]
// the command) to one subcommand and turns any error into a message on stderr
// and a non-zero exit code. Used by the binary and by `python -m flashneox`.
#pragma once

namespace flashneox {

class Communicator;

int run_command_line(int argc, char** argv);

// As one rank of a tensor-parallel job: rank 0 runs the command with its
// model split over `world`; the other ranks run their part until it is done.
int run_tensor_parallel_command_line(Communicator& world, int argc, char** argv);

}  // namespace flashneox
