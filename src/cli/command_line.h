// The flashneox command line: dispatches argv (argv[0] is the program, argv[1]
// the command) to one subcommand and turns any error into a message on stderr
// and a non-zero exit code. Used by the binary and by `python -m flashneox`.
#pragma once

namespace flashneox {

int run_command_line(int argc, char** argv);

}  // namespace flashneox
