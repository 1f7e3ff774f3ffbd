#include "cli/validate_kubernetes.h"

#include <cstdio>

#include "waypoint/config/snapshot.h"
#include "waypoint/kube/source.h"

namespace wp::cli {

int validate_kubernetes_main(const std::string& config_path, const std::string& kubeconfig,
                             const std::string& namespace_, const std::string& gateway) {
  std::string text;
  std::string path = config_path;
  config::Bootstrap boot;
  try {
    if (!config_path.empty()) {
      text = config::read_config_text(config_path);
      boot = config::load_bootstrap(text, config_path);
    } else {
      path = "(defaults)";
      boot.namespace_ = "default";
      text = "apiVersion: waypoint.proxy/v1alpha1\nkind: WaypointBootstrap\nmetadata: {name: waypoint, namespace: "
             "default}\nspec:\n  gateway: " +
             (gateway.empty() ? std::string("waypoint") : gateway) +
             "\n  kubernetes: {}\n  tls: {certChain: unread, privateKey: unread, rootCert: unread}\n";
    }
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::string error;
  auto access = kube::resolve_access(kubeconfig.empty() ? boot.kubernetes.kubeconfig : kubeconfig, error);
  if (!access) {
    std::fprintf(stderr, "waypoint: kubernetes: %s\n", error.c_str());
    return 1;
  }
  std::string ns =
      namespace_.empty() ? kube::watched_namespace(boot.kubernetes.namespace_, *access, boot.namespace_) : namespace_;
  std::vector<std::string> problems;
  auto objects = kube::list_once(*access, ns, problems);
  std::printf("kubernetes: %s (%s), namespace %s: %zu objects\n", access->server.c_str(), access->origin.c_str(),
              ns.c_str(), objects.size());
  for (const auto& p : problems) {
    std::printf("  %s\n", p.c_str());
  }
  try {
    auto snapshot = config::load_snapshot_from_objects(text, path, ns, objects, !config_path.empty());
    std::fputs(config::describe(*snapshot).c_str(), stdout);
    bool unreadable = false;
    for (const auto& p : problems) {
      unreadable = unreadable || p.find("skipped") == std::string::npos;
    }
    return snapshot->rejected.empty() && !unreadable ? 0 : 1;
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

}  // namespace wp::cli
