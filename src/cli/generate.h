#pragma once
// `waypoint generate`: the Gateway resource for a waypoint, as `istioctl waypoint generate` prints
// it, ready for `kubectl apply -f -` and for the waypoint's own config file.
#include <string>

namespace wp::cli {

struct GenerateOptions {
  std::string name = "waypoint";
  std::string namespace_ = "default";
  std::string service_account;  // non-empty: a service-account waypoint (istio.io/for-service-account)
};

std::string generate_gateway(const GenerateOptions& options);

// argv[0] is "generate". Returns the exit status (0, or 2 on a usage error).
int generate_main(int argc, char** argv);

}  // namespace wp::cli
