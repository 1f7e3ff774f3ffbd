// wp-config-bench: the cost of compiling a namespace of the Kubernetes API mode, without the
// process around it. Reads a List of objects (kubectl get -o json, or bench/kube_scale.py's
// namespace.json) and a bootstrap file, then times load_snapshot_from_objects: a load from
// scratch, and a load after one object changed (a pod's label, so the object's JSON differs).
// With --cache, the loads share a config::ObjectCache as the process's reloads do.
//   wp-config-bench NAMESPACE.json BOOTSTRAP.yaml [ROUNDS] [--cache]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "waypoint/config/snapshot.h"

using namespace wp;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: wp-config-bench NAMESPACE.json BOOTSTRAP.yaml [ROUNDS]\n");
    return 2;
  }
  int rounds = argc > 3 ? std::atoi(argv[3]) : 5;
  bool use_cache = argc > 4 && std::string(argv[4]) == "--cache";
  config::ObjectCache cache;
  std::ifstream in(argv[1]);
  nlohmann::json list = nlohmann::json::parse(in);
  std::vector<config::SourceObject> objects;
  for (auto& item : list["items"]) {
    config::SourceObject o;
    o.kind = item.value("kind", "");
    o.name = item["metadata"].value("name", "");
    o.resource_version = std::to_string(objects.size() + 1);
    o.json = item.dump();
    objects.push_back(std::move(o));
  }
  std::string bootstrap = config::read_config_text(argv[2]);
  auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  std::vector<double> times;
  size_t chains = 0;
  for (int i = 0; i < rounds; ++i) {
    // One changed object per round: the JSON of object i * 97 gets an annotation.
    config::SourceObject& changed = objects[(static_cast<size_t>(i) * 97) % objects.size()];
    changed.json.insert(1, "\"bench\":" + std::to_string(i) + ",");
    auto t0 = std::chrono::steady_clock::now();
    auto snapshot =
        config::load_snapshot_from_objects(bootstrap, argv[2], "", objects, false, use_cache ? &cache : nullptr);
    auto t1 = std::chrono::steady_clock::now();
    times.push_back(ms(t0, t1));
    chains = snapshot->vip_chains.size();
    changed.json.erase(1, changed.json.find(','));
  }
  std::printf("%zu objects, %zu VIP chains; load per change:", objects.size(), chains);
  for (double t : times) {
    std::printf(" %.1f", t);
  }
  std::printf(" ms%s\n", use_cache ? " (object cache)" : "");
  return 0;
}
