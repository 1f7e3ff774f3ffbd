// wp-config-bench: the cost of compiling a namespace of the Kubernetes API mode, without the
// process around it. Reads a List of objects (kubectl get -o json, or bench/kube_scale.py's
// namespace.json) and a bootstrap file, then times load_snapshot_from_objects: a load from
// scratch, then loads after one object changed as an API server writes it (an annotation and a new
// resourceVersion; pods, then slices, DestinationRules and AuthorizationPolicies in turn). With --cache, the loads
// share a config::ObjectCache as the process's reloads do (and apply the change incrementally where Compiler::update
// can); the objects are put in kube::Source's order (each kind's by name). Each load runs on a thread of its own (as
// the process's reloads run on libuv's pool); the RSS printed at the end is after malloc_trim, with the cache and the
// last snapshot alive.
//   wp-config-bench NAMESPACE.json BOOTSTRAP.yaml [ROUNDS] [--cache | --cache-sync | --cache-cold]
//                   [--change=KIND | --toggle=KIND]
// --change=KIND: only objects of that kind change (e.g. AuthorizationPolicy).
// --toggle=KIND: an object of that kind is deleted in one round and created again in the next.
// --cache-sync: the first loads see one kind more each (the first LISTs arriving one by one);
// --cache-cold: CPU caches flushed before each load (a change arriving in a quiet process).
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "waypoint/config/snapshot.h"

using namespace wp;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: wp-config-bench NAMESPACE.json BOOTSTRAP.yaml [ROUNDS]\n");
    return 2;
  }
  int rounds = argc > 3 ? std::atoi(argv[3]) : 5;
  bool use_cache = argc > 4 && std::string(argv[4]).rfind("--cache", 0) == 0;
  bool sync = argc > 4 && std::string(argv[4]) == "--cache-sync";
  // --cache-cold: before each load, 64 MiB are written so that the load starts with cold CPU
  // caches, as a change arriving in a quiet process does.
  bool cold = argc > 4 && std::string(argv[4]) == "--cache-cold";
  std::vector<char> flush(cold ? 64u << 20 : 0);
  config::ObjectCache cache;
  std::ifstream in(argv[1]);
  nlohmann::json list = nlohmann::json::parse(in);
  config::SourceObjects objects;  // as kube::Source holds them: one shared object each
  for (auto& item : list["items"]) {
    config::SourceObject o;
    o.kind = item.value("kind", "");
    o.name = item["metadata"].value("name", "");
    o.resource_version = std::to_string(objects.size() + 1);
    o.json = item.dump();
    objects.push_back(std::make_shared<const config::SourceObject>(std::move(o)));
  }
  list = nlohmann::json();         // only the objects stay
  std::vector<std::string> kinds;  // in the order they first appear
  for (const auto& o : objects) {
    if (std::find(kinds.begin(), kinds.end(), o->kind) == kinds.end()) {
      kinds.push_back(o->kind);
    }
  }
  std::stable_sort(objects.begin(), objects.end(), [&](const auto& a, const auto& b) {
    auto ka = std::find(kinds.begin(), kinds.end(), a->kind), kb = std::find(kinds.begin(), kinds.end(), b->kind);
    return ka != kb ? ka < kb : a->name < b->name;
  });
  std::vector<size_t> changeable;  // Pods, EndpointSlices, DestinationRules, AuthorizationPolicies
  const bool toggle = argc > 5 && std::string(argv[5]).rfind("--toggle=", 0) == 0;
  const std::string only = argc > 5 && (std::string(argv[5]).rfind("--change=", 0) == 0 || toggle) ? argv[5] + 9 : "";
  for (size_t i = 0; i < objects.size(); ++i) {
    if (!only.empty() ? objects[i]->kind == only
                      : objects[i]->kind == "Pod" || objects[i]->kind == "EndpointSlice" ||
                            objects[i]->kind == "DestinationRule" || objects[i]->kind == "AuthorizationPolicy") {
      changeable.push_back(i);
    }
  }
  if (changeable.empty()) {
    changeable.push_back(0);
  }
  std::string bootstrap = config::read_config_text(argv[2]);
  auto cpu_ms = [] {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
  };
  std::vector<double> cpu;
  auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  std::vector<double> times;
  size_t chains = 0;
  size_t warnings = 0;
  for (int i = 0; i < rounds; ++i) {
    // One changed object per round (none in the first): a top-level field the reader ignores, and
    // a new resourceVersion; a new object, as kube::Source makes for every event.
    size_t left_out = objects.size();  // --toggle: the object deleted this round
    if (i > 0 && toggle) {
      const size_t k = changeable[(static_cast<size_t>((i + 1) / 2) * 97) % changeable.size()];
      if (i % 2 == 1) {
        left_out = k;
      } else {  // created again: a new object, with a new resourceVersion
        config::SourceObject again = *objects[k];
        again.resource_version = std::to_string(objects.size() + static_cast<size_t>(i));
        objects[k] = std::make_shared<const config::SourceObject>(std::move(again));
      }
    } else if (i > 0) {
      config::SourceObjectPtr& slot = objects[changeable[(static_cast<size_t>(i) * 97) % changeable.size()]];
      config::SourceObject changed = *slot;
      changed.json.insert(1, "\"bench\":" + std::to_string(i) + ",");
      changed.resource_version = std::to_string(objects.size() + static_cast<size_t>(i));
      slot = std::make_shared<const config::SourceObject>(std::move(changed));
    }
    for (size_t at = 0; at < flush.size(); at += 64) {
      flush[at] = static_cast<char>(at + static_cast<size_t>(i));
    }
    double c0 = cpu_ms();
    auto t0 = std::chrono::steady_clock::now();
    config::SnapshotPtr snapshot;
    auto these = objects;
    if (left_out < these.size()) {
      these.erase(these.begin() + static_cast<std::ptrdiff_t>(left_out));
    }
    if (sync && static_cast<size_t>(i) < kinds.size()) {  // the first LISTs arrive one kind at a time
      std::erase_if(these,
                    [&](const auto& o) { return std::find(kinds.begin(), kinds.end(), o->kind) - kinds.begin() > i; });
    }
    std::thread([&] {
      snapshot = config::load_snapshot_from_objects(bootstrap, argv[2], "", these, false, use_cache ? &cache : nullptr);
    }).join();
    auto t1 = std::chrono::steady_clock::now();
    cpu.push_back(cpu_ms() - c0);
    times.push_back(ms(t0, t1));
    chains = snapshot->vip_chains.size();
    warnings = snapshot->warnings.size();
  }
  std::printf("%zu objects, %zu VIP chains, %zu warnings; first load, then per change:", objects.size(), chains,
              warnings);
  for (double t : times) {
    std::printf(" %.1f", t);
  }
  std::printf(" ms%s\n", use_cache ? " (object cache)" : "");
  std::printf("CPU per load:");
  for (double t : cpu) {
    std::printf(" %.1f", t);
  }
  std::printf(" ms; loads applied incrementally: %llu of %d\n", static_cast<unsigned long long>(cache.incremental()),
              rounds);
  // What stays once the loads are done (the cache and the last snapshot), trimmed as the process does.
  malloc_trim(0);
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0 || line.rfind("VmHWM:", 0) == 0) {
      std::printf("%s\n", line.c_str());
    }
  }
  return 0;
}
