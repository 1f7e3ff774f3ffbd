#pragma once
// `waypoint explain`: the command-line front of admin::explain (see its header).

namespace wp::cli {

// argv[0] is "explain"; the options follow. Prints the explanation on stdout and returns the exit
// status: 0 allowed, 1 config error, 2 denied, 3 no chain or no route, 4 usage error.
int explain_main(int argc, char** argv);

}  // namespace wp::cli
