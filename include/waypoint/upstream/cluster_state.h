#pragma once
// Per-worker, per-cluster upstream state: the load balancer (ROUND_ROBIN, LEAST_REQUEST, RANDOM,
// consistentHash on a header), outlier detection (consecutive 5xx → ejection, Envoy's semantics)
// and connectionPool limits (circuit breakers). One ClusterState per config::RoutedCluster per
// worker, owned by a ClusterManager; no locks (a worker only touches its own).
//
// Outlier detection is per worker (Envoy keeps it per cluster across workers): with N workers a
// host is ejected by each worker that sees its errors.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "waypoint/config/snapshot.h"
#include "waypoint/stats/stats.h"
#include "waypoint/upstream/resource_manager.h"

namespace wp::upstream {

using Clock = std::chrono::steady_clock;

// Per-endpoint state, indexed like RoutedCluster::endpoints.
struct HostState {
  uint32_t active_requests = 0;                    // requests in flight to this host (LEAST_REQUEST)
  uint32_t consecutive_5xx = 0;                    // outlier detection
  uint32_t times_ejected = 0;                      // ejection time = baseEjectionTime × times_ejected, max 300 s
  std::optional<Clock::time_point> ejected_until;  // set while ejected
};

class ClusterState;

// A request's place in its cluster's circuit breaker (http2MaxRequests) and its host's active
// requests (LEAST_REQUEST), from ClusterState::hold_request to the hold's destruction or reset().
// Empty when the cluster refused it (or default-constructed). Move-only.
class RequestHold {
 public:
  RequestHold() = default;
  RequestHold(RequestHold&& o) noexcept : state_(std::exchange(o.state_, nullptr)), host_(o.host_) {}
  RequestHold& operator=(RequestHold&& o) noexcept;
  ~RequestHold() { reset(); }
  explicit operator bool() const { return state_ != nullptr; }
  ClusterState* state() const { return state_; }
  size_t host() const { return host_; }
  void reset();

 private:
  friend class ClusterState;
  RequestHold(ClusterState* state, size_t host) : state_(state), host_(host) {}
  ClusterState* state_ = nullptr;
  size_t host_ = 0;
};

// A retry's place in its cluster's maxRetries budget, from ClusterState::hold_retry (the retry
// decision) to the destruction of the hold (the end of the retried attempt). Empty when refused.
class RetryHold {
 public:
  RetryHold() = default;
  RetryHold(RetryHold&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
  RetryHold& operator=(RetryHold&& o) noexcept;
  ~RetryHold() { reset(); }
  explicit operator bool() const { return state_ != nullptr; }
  void reset();

 private:
  friend class ClusterState;
  explicit RetryHold(ClusterState* state) : state_(state) {}
  ClusterState* state_ = nullptr;
};

class ClusterState {
 public:
  // `resources`: the circuit breakers of the cluster's name (ClusterManager::resources), shared with
  // its states of other generations; null: a manager of its own (tests).
  ClusterState(const config::RoutedCluster& cluster, stats::Block& stats, uint64_t seed,
               std::shared_ptr<ResourceManager> resources = nullptr);
  // Takes the hosts still ejected off outlier_ejections_active (as Envoy's ~DetectorImpl does).
  ~ClusterState();
  ClusterState(const ClusterState&) = delete;
  ClusterState& operator=(const ClusterState&) = delete;

  const config::RoutedCluster& cluster() const { return cluster_; }
  size_t size() const { return hosts_.size(); }
  const HostState& host(size_t i) const { return hosts_[i]; }

  // Picks an endpoint index by the cluster's policy, skipping ejected hosts; returns nullopt when
  // no host is eligible (no endpoints, or all ejected: the caller answers 503 "no healthy
  // upstream", flag UH). Hosts in `avoid` (indices already tried by this request) are skipped when
  // another eligible host exists (Envoy's previous_hosts predicate with host_selection_attempts).
  // `hash_key` is the consistentHash header's value (nullopt when absent → random pick).
  std::optional<size_t> pick(Clock::time_point now, const std::vector<size_t>& avoid,
                             std::optional<std::string_view> hash_key);

  // Circuit breakers (DestinationRule connectionPool), counted in the cluster's ResourceManager.
  // try_begin_request() is false — and the request must be answered 503 with flag UO (counter
  // upstream_rq_pending_overflow) — when http2MaxRequests (max active requests to the cluster) is
  // set and reached. Every successful try_begin_request() is paired with end_request().
  bool try_begin_request(size_t host);
  void end_request(size_t host);
  // maxRetries: concurrent retries to the cluster (0 = unlimited... Envoy's default is 3; we use
  // unlimited when unset). False (counter upstream_rq_retry_overflow) when a retry would exceed it.
  bool try_begin_retry();
  void end_retry();
  // The same as owned holds, which end the request or the retry when they are destroyed (the data
  // path uses these: an attempt object owns its holds, so no exit forgets one). Empty when refused.
  RequestHold hold_request(size_t host) { return try_begin_request(host) ? RequestHold(this, host) : RequestHold(); }
  RetryHold hold_retry() { return try_begin_retry() ? RetryHold(this) : RetryHold(); }
  // Requests in flight to the cluster, this generation's and older ones'.
  uint32_t active_requests() const { return resources_->count(Resource::Requests); }
  ResourceManager& resources() const { return *resources_; }

  // Outlier detection input: the result of one attempt on `host`. `gateway_or_5xx` is true for a
  // 5xx response, a connect failure, a reset or a timeout (Envoy counts locally originated
  // failures as 5xx when split_external_local_origin_errors is off, as Istio leaves it). A success
  // resets the host's consecutive count. Ejects when consecutive_5xx_errors is reached, unless
  // ejected hosts would exceed maxEjectionPercent of the cluster (at least one host may always be
  // ejected, as Envoy does) — then counts outlier_ejections_overflow.
  void report(size_t host, bool gateway_or_5xx, Clock::time_point now);
  // Returns hosts whose ejection time has passed (called lazily from pick() and by a timer every
  // outlierDetection.interval).
  void unexpire(Clock::time_point now);
  bool ejected(size_t host, Clock::time_point now) const;
  // Takes over the outlier state (consecutive 5xx, ejections) of the hosts of `previous` that have
  // the same address here; they are no longer counted as ejected there.
  void take_over(ClusterState& previous);
  size_t ejected_count() const { return ejected_; }

 private:
  // One virtual node of the consistent-hash ring (LoadBalancer::ConsistentHash only).
  struct RingEntry {
    uint64_t hash;
    uint32_t host;
  };
  // Which hosts pick() may return: every host not ejected, and when `strict` also not in `avoid`.
  struct Candidates {
    const std::vector<size_t>* avoid;
    bool strict;
    size_t count;
  };

  const config::RoutedCluster& cluster_;
  stats::Block& stats_;
  std::vector<HostState> hosts_;
  std::vector<RingEntry> ring_;  // sorted by hash; built in the constructor
  uint32_t rr_cursor_ = 0;
  uint64_t rng_;  // xorshift state
  std::shared_ptr<ResourceManager> resources_;
  size_t ejected_ = 0;
  uint32_t next_random();
  size_t uniform(size_t n);  // in [0, n)
  Candidates candidates(const std::vector<size_t>& avoid) const;
  bool is_candidate(const Candidates& c, size_t host) const;
  size_t nth_candidate(const Candidates& c, size_t k) const;
  size_t pick_round_robin(const Candidates& c);
  size_t pick_random(const Candidates& c);
  size_t pick_least_request(const Candidates& c);
  size_t pick_ring(const Candidates& c, std::string_view key) const;
  void uneject(size_t host);
};

// The ClusterStates of one worker. Each snapshot has its own generation of states, because an
// in-flight request keeps using the clusters (and endpoint indices) of the snapshot it pinned. A
// config change makes a new current generation; the previous ones stay while some request or
// tunnel still pins their snapshot, and are dropped once it is gone. A cluster of the new snapshot
// that has a cluster of the same name in the previous one takes over its hosts' outlier state,
// matched by endpoint address (as Envoy keeps host health across cluster updates).
class ClusterManager {
 public:
  explicit ClusterManager(stats::Block& stats, uint64_t seed = 0);
  ~ClusterManager();
  void set_snapshot(const config::SnapshotPtr& snapshot);  // the same snapshot again: no change
  // The state of `cluster`, which belongs to `snapshot`; the caller pins `snapshot` for as long as
  // it uses the state. Created on first use.
  ClusterState& get(const config::SnapshotPtr& snapshot, const config::RoutedCluster& cluster);
  size_t generations() const { return (current_ ? 1 : 0) + retired_.size(); }
  // The circuit breakers of the cluster called `name`, one for all generations: created on first
  // use, kept while a ClusterState or a tunnel holds it.
  std::shared_ptr<ResourceManager> resources(const std::string& name);
  // The current snapshot's clusters used so far (the others have no state yet: every host
  // healthy, nothing active).
  template <typename Fn>
  void for_each(Fn&& fn) const {
    if (current_) {
      for (const auto& [cluster, state] : current_->states) {
        fn(*cluster, *state);
      }
    }
  }

 private:
  struct Generation {
    config::SnapshotPtr pinned;                  // the current generation only
    std::weak_ptr<const config::Snapshot> weak;  // every generation
    const config::Snapshot* raw = nullptr;
    std::unordered_map<const config::RoutedCluster*, std::unique_ptr<ClusterState>> states;
    std::unordered_map<std::string_view, ClusterState*> by_name;  // for the next generation's takeover
  };
  Generation* find(const config::Snapshot& snapshot);
  void prune();  // drops retired generations whose snapshot is gone

  stats::Block& stats_;
  uint64_t seed_;
  std::unique_ptr<Generation> current_;
  std::vector<std::unique_ptr<Generation>> retired_;
  std::unordered_map<std::string, std::weak_ptr<ResourceManager>> resources_;  // by cluster name
};
}  // namespace wp::upstream
