#pragma once
// `waypoint validate --kubernetes`: lists the live namespace once and prints what would be served
// from it, with every object that would be rejected and why (as `istioctl analyze` does).
#include <string>

namespace wp::cli {

// config_path may be empty: then a bootstrap of every default is assumed (gateway `gateway`, or
// "waypoint"; no certificates are read). Returns 0 when every object applies, 1 when some are
// rejected or the API cannot be read, 2 on a usage error.
int validate_kubernetes_main(const std::string& config_path, const std::string& kubeconfig,
                             const std::string& namespace_, const std::string& gateway);

}  // namespace wp::cli
