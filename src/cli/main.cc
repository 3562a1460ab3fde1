// flashneox: the command-line entry point (cli/command_line.h does the work).
#include "cli/command_line.h"

int main(int argc, char** argv) { return flashneox::run_command_line(argc, argv); }
