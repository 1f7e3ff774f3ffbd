#pragma once
// Every circuit breaker of a cluster in one place (Envoy's ResourceManager, resource_manager_impl.h):
// the tunnels open to it (maxConnections), the requests waiting for a stream (http1MaxPendingRequests),
// the requests in flight (http2MaxRequests) and the retries in flight (maxRetries).
//
// One ResourceManager per cluster name per worker, shared by the cluster's ClusterStates of every
// config generation (ClusterManager::resources): requests and tunnels begun under an older snapshot
// still count against the cluster, so a config change never resets a breaker. The limit is the one
// of the config the caller runs under, given at each check (0 = unlimited, Istio's defaults).
// Whoever counts a unit keeps the manager alive: a tunnel by its ResourceHold, a request by the
// ClusterState it pins, a waiting request by its requester's ClusterState.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "waypoint/stats/stats.h"

namespace wp::upstream {

enum class Resource : uint8_t { Connections, PendingRequests, Requests, Retries };
inline constexpr size_t kResourceCount = 4;

const char* to_string(Resource r);

class ResourceManager : public std::enable_shared_from_this<ResourceManager> {
 public:
  ResourceManager(std::string cluster, stats::Block& stats) : cluster_(std::move(cluster)), stats_(stats) {}
  ResourceManager(const ResourceManager&) = delete;
  ResourceManager& operator=(const ResourceManager&) = delete;

  const std::string& cluster() const { return cluster_; }
  // True when one more unit stays within `max` (0 = unlimited).
  bool can_create(Resource r, uint32_t max) const { return max == 0 || counts_[index(r)] < max; }
  // Unchecked: the caller asked can_create() first, or may go over by design (a tunnel to an
  // endpoint that has none, as Envoy guarantees one per host).
  void inc(Resource r);
  void dec(Resource r);  // a unit never counted is a bug: logged, the count stays at zero
  uint32_t count(Resource r) const { return counts_[index(r)]; }

 private:
  static size_t index(Resource r) { return static_cast<size_t>(r); }
  std::string cluster_;
  stats::Block& stats_;
  std::array<uint32_t, kResourceCount> counts_{};
};

// One unit of a resource, from acquire() to its destruction or reset(); keeps its manager alive
// (a tunnel outlives the snapshot and the ClusterState it was opened under). Move-only.
class ResourceHold {
 public:
  ResourceHold() = default;
  static ResourceHold acquire(ResourceManager& m, Resource r) {
    m.inc(r);
    return ResourceHold(m.shared_from_this(), r);
  }
  ResourceHold(ResourceHold&& o) noexcept : manager_(std::move(o.manager_)), resource_(o.resource_) {}
  ResourceHold& operator=(ResourceHold&& o) noexcept {
    if (this != &o) {
      reset();
      manager_ = std::move(o.manager_);
      resource_ = o.resource_;
    }
    return *this;
  }
  ~ResourceHold() { reset(); }
  explicit operator bool() const { return manager_ != nullptr; }
  const ResourceManager* manager() const { return manager_.get(); }
  void reset() {
    if (auto m = std::move(manager_)) {
      m->dec(resource_);
    }
  }

 private:
  ResourceHold(std::shared_ptr<ResourceManager> m, Resource r) : manager_(std::move(m)), resource_(r) {}
  std::shared_ptr<ResourceManager> manager_;
  Resource resource_ = Resource::Connections;
};

}  // namespace wp::upstream
