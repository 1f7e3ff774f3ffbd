#pragma once
// The process: load the config, build TLS contexts, start the workers, serve the admin listener on
// the main thread, handle signals, drain and exit.
#include <chrono>
#include <string>

namespace wp::server {

struct RunOptions {
  std::string config_path;
  std::chrono::milliseconds drain_time{5'000};
  std::string kubeconfig;  // --kubeconfig: overrides spec.kubernetes.kubeconfig
};

// Returns the process exit status.
int run(const RunOptions& options);

}  // namespace wp::server
