#pragma once
// The live namespace (SPEC §7): one Reflector per kind keeps a copy of the namespace's objects;
// every change bumps a generation and calls `changed` (from a reflector's thread), and the process
// compiles objects() through the file mode's path (config::load_snapshot_from_objects).
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "waypoint/config/snapshot.h"
#include "waypoint/kube/access.h"
#include "waypoint/kube/reflector.h"
#include "waypoint/stats/prometheus.h"

namespace wp::kube {

class Source {
 public:
  // The kinds read, in the order their objects are compiled.
  static const std::vector<Kind>& kinds();

  Source(Access access, std::string namespace_, ReflectorOptions options = {});
  ~Source();
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  // Called (from a reflector's thread) after every change; set before start().
  void set_changed(std::function<void()> changed) { changed_ = std::move(changed); }
  void start();
  void stop();  // joins every reflector

  // Every kind has completed its first LIST (a kind whose CRD is missing counts as an empty list).
  bool synced() const;
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // Every object (shared, not copied), kinds in kinds() order, names sorted. An object keeps its
  // address until it changes, so a load's ObjectCache passes over the unchanged ones cheaply.
  config::SourceObjects objects() const;
  std::vector<stats::KubernetesKindMetrics> metrics() const;
  const std::string& namespace_name() const { return namespace_; }

  // The kind's object as kept: without metadata.managedFields and the last-applied annotation
  // (a copy of the whole object kubectl leaves behind), on one line. `object` is trimmed in place
  // and left to the caller to free. A Pod keeps only what the waypoint reads of it (project_pod).
  static config::SourceObject keep(const Kind& kind, nlohmann::json&& object);

  // A Pod reduced to the fields its reader looks at (SPEC §7: metadata name, namespace, labels,
  // ownerReferences, deletionTimestamp, resourceVersion; spec.serviceAccountName and the containers'
  // ports; status podIP, podIPs, phase, conditions), each as it came, wrong types included, so the
  // reader reports what it would have reported. The rest (containers' images, env, volumes,
  // statuses: most of a real pod's 5-20 KB) is not kept, as client-go informers' transforms do.
  static void project_pod(nlohmann::json& pod);

 private:
  struct KindState {
    std::map<std::string, config::SourceObjectPtr> objects;  // by name
    bool listed = false;
    bool absent = false;
    int64_t watch_errors = 0;
    std::map<std::string, int64_t> events;  // by type
    double last_sync = 0;                   // Unix seconds of the last LIST or event applied
  };
  void bump();

  Access access_;
  std::string namespace_;
  std::function<void()> changed_;
  ReflectorOptions options_;
  // A LIST being read: the kept fields of its items so far, in chunks (source.cpp says why).
  struct Staging {
    static constexpr size_t kChunk = size_t{1} << 20;
    struct Span {
      size_t chunk = 0, at = 0;
      size_t name = 0, resource_version = 0, json = 0;  // lengths
    };
    std::vector<std::string> chunks;
    std::vector<Span> spans;
    void add(config::SourceObject o);
    void reset();  // frees what it holds
    std::map<std::string, config::SourceObjectPtr> take(const Kind& kind);
  };
  std::map<std::string, Staging> staging_;  // by kind; each entry its reflector's thread's only
  mutable std::mutex mu_;
  std::map<std::string, KindState> state_;  // by kind name
  std::vector<std::unique_ptr<Reflector>> reflectors_;
  std::atomic<uint64_t> generation_{0};
};

// One LIST of every kind, as `waypoint validate --kubernetes` needs: the objects, and a line in
// `problems` per kind that could not be listed ("... skipped" for a kind the server does not have).
std::vector<config::SourceObject> list_once(const Access& access, const std::string& namespace_,
                                            std::vector<std::string>& problems);

// The namespace watched: spec.kubernetes.namespace, else the access's (the service account's
// namespace file in a pod, the kubeconfig context's namespace), else the bootstrap's.
std::string watched_namespace(const std::string& configured, const Access& access, const std::string& bootstrap);

}  // namespace wp::kube
