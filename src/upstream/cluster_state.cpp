// Load balancing, outlier detection and circuit breakers for one cluster on one worker.
//
// Choices (Envoy's behaviour as Istio configures it, simplified where noted):
//  - Eligible hosts are those not ejected. With every host ejected pick() returns nullopt: Istio
//    sets the healthy panic threshold to 0 (minHealthPercent 0), which disables Envoy's panic mode
//    (routing to all hosts when too few are healthy).
//  - `avoid` (previous_hosts): a host not in `avoid` is preferred deterministically; one in `avoid`
//    is returned only when every eligible host is in it. Envoy re-picks up to
//    host_selection_attempts times instead, so it may still land on a tried host; we never do
//    when another exists.
//  - ROUND_ROBIN: a cursor over the endpoint list that skips ineligible hosts.
//  - RANDOM: uniform over the candidates.
//  - LEAST_REQUEST: Envoy's unweighted power of two choices: two independent uniform draws (maybe
//    the same host), the one with fewer active requests wins, a tie keeps the first draw.
//  - consistentHash: a Ketama-style ring. Each host gets max(100, ceil(1024 / hosts)) virtual
//    nodes (Envoy's minimum ring size is 1024) hashed from "<ip:port>_<i>"; a key is hashed and
//    served by the first candidate clockwise from it. Skipping ineligible hosts on the walk is the
//    same as rebuilding the ring without them, so ejecting a host moves only that host's keys. All
//    hashes are 64-bit FNV-1a followed by murmur3's fmix64 finalizer: deterministic across runs,
//    workers and platforms (std::hash is not). No key (header absent) → a random pick.
//  - Ejection follows Envoy's DetectorImpl::ejectHost (source/common/upstream/
//    outlier_detection_impl.cc): a host is ejected when 100 × (ejected + 1) / hosts <=
//    maxEjectionPercent, or when no host is ejected yet and maxEjectionPercent > 0 (Envoy's
//    always_eject_one_host; older Envoy allowed the first ejection by checking the percentage
//    before ejecting, `100 × ejected / hosts < max`). Otherwise outlier_ejections_overflow counts.
//    Either way the host's consecutive count restarts, as Envoy resets it after ejectHost().
//  - Ejection time is base_ejection_time × times_ejected, capped at Envoy's default
//    max_ejection_time (300 s, or base_ejection_time when larger; Istio does not set it), without
//    jitter (Envoy's default is 0). times_ejected only grows: Envoy decrements it on each interval
//    in which the host stayed healthy; we do not yet.
//  - A report on a host still ejected is ignored (Envoy ignores a threshold reached by an ejected
//    host and resets its counts when it returns); an uneject resets consecutive_5xx.
#include "waypoint/upstream/cluster_state.h"

#include <algorithm>
#include <random>
#include <string>
#include <utility>

namespace wp::upstream {

namespace {

constexpr size_t kMinRingSize = 1024;  // Envoy's ring_hash minimum_ring_size default
constexpr size_t kMinVirtualNodes = 100;
constexpr Clock::duration kDefaultMaxEjectionTime = std::chrono::seconds(300);

uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return fmix64(h);
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

bool contains(const std::vector<size_t>& v, size_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

ClusterState::ClusterState(const config::RoutedCluster& cluster, stats::Block& stats, uint64_t seed,
                           std::shared_ptr<ResourceManager> resources)
    : cluster_(cluster),
      stats_(stats),
      hosts_(cluster.endpoints.size()),
      resources_(resources != nullptr ? std::move(resources) : std::make_shared<ResourceManager>(cluster.name, stats)) {
  rng_ = splitmix64(seed != 0 ? seed : random_seed());
  if (rng_ == 0) {
    rng_ = 0x2545f4914f6cdd1dULL;  // xorshift must not start at 0
  }
  if (cluster.policy.load_balancer == config::LoadBalancer::ConsistentHash && !hosts_.empty()) {
    const size_t n = hosts_.size();
    const size_t per_host = std::max(kMinVirtualNodes, (kMinRingSize + n - 1) / n);
    ring_.reserve(n * per_host);
    for (size_t i = 0; i < n; ++i) {
      const std::string base = cluster.endpoints[i].address.to_string() + "_";
      for (size_t v = 0; v < per_host; ++v) {
        ring_.push_back({hash_bytes(base + std::to_string(v)), static_cast<uint32_t>(i)});
      }
    }
    std::sort(ring_.begin(), ring_.end(), [](const RingEntry& a, const RingEntry& b) {
      return a.hash != b.hash ? a.hash < b.hash : a.host < b.host;
    });
  }
}

ClusterState::~ClusterState() {
  if (ejected_ > 0) {
    stats_.sub(stats::Id::outlier_ejections_active, static_cast<int64_t>(ejected_));
  }
}

uint32_t ClusterState::next_random() {
  // xorshift64*
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return static_cast<uint32_t>((rng_ * 0x2545f4914f6cdd1dULL) >> 32);
}

size_t ClusterState::uniform(size_t n) {
  return static_cast<size_t>((static_cast<uint64_t>(next_random()) * n) >> 32);
}

// ---- load balancing ----------------------------------------------------------------------------

ClusterState::Candidates ClusterState::candidates(const std::vector<size_t>& avoid) const {
  const size_t eligible = hosts_.size() - ejected_;  // pick() ran unexpire() first
  // Eligible hosts named in `avoid`, each counted once (avoid is a handful of entries).
  size_t avoided = 0;
  for (size_t j = 0; j < avoid.size(); ++j) {
    const size_t h = avoid[j];
    if (h < hosts_.size() && !hosts_[h].ejected_until &&
        std::find(avoid.begin(), avoid.begin() + static_cast<std::ptrdiff_t>(j), h) ==
            avoid.begin() + static_cast<std::ptrdiff_t>(j)) {
      ++avoided;
    }
  }
  if (avoided < eligible) {
    return {&avoid, avoided > 0, eligible - avoided};
  }
  return {&avoid, false, eligible};  // every eligible host was tried: any of them will do
}

bool ClusterState::is_candidate(const Candidates& c, size_t host) const {
  return !hosts_[host].ejected_until && !(c.strict && contains(*c.avoid, host));
}

size_t ClusterState::nth_candidate(const Candidates& c, size_t k) const {
  if (c.count == hosts_.size()) {
    return k;  // every host is a candidate
  }
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (is_candidate(c, i) && k-- == 0) {
      return i;
    }
  }
  return 0;  // unreachable: k < c.count
}

size_t ClusterState::pick_round_robin(const Candidates& c) {
  const size_t n = hosts_.size();
  size_t i = rr_cursor_ % n;
  for (size_t step = 0; step < n && !is_candidate(c, i); ++step) {
    i = i + 1 == n ? 0 : i + 1;
  }
  rr_cursor_ = static_cast<uint32_t>(i + 1 == n ? 0 : i + 1);
  return i;
}

size_t ClusterState::pick_random(const Candidates& c) {
  return nth_candidate(c, uniform(c.count));
}

size_t ClusterState::pick_least_request(const Candidates& c) {
  const size_t first = nth_candidate(c, uniform(c.count));
  const size_t second = nth_candidate(c, uniform(c.count));
  return hosts_[second].active_requests < hosts_[first].active_requests ? second : first;
}

size_t ClusterState::pick_ring(const Candidates& c, std::string_view key) const {
  const uint64_t h = hash_bytes(key);
  auto it = std::lower_bound(ring_.begin(), ring_.end(), h,
                             [](const RingEntry& e, uint64_t value) { return e.hash < value; });
  size_t i = it == ring_.end() ? 0 : static_cast<size_t>(it - ring_.begin());
  for (size_t step = 0; step < ring_.size(); ++step) {
    if (is_candidate(c, ring_[i].host)) {
      return ring_[i].host;
    }
    i = i + 1 == ring_.size() ? 0 : i + 1;
  }
  return nth_candidate(c, 0);  // unreachable: every host has virtual nodes
}

std::optional<size_t> ClusterState::pick(Clock::time_point now, const std::vector<size_t>& avoid,
                                         std::optional<std::string_view> hash_key) {
  unexpire(now);
  const Candidates c = candidates(avoid);
  if (c.count == 0) {
    return std::nullopt;
  }
  switch (cluster_.policy.load_balancer) {
    case config::LoadBalancer::RoundRobin:
      return pick_round_robin(c);
    case config::LoadBalancer::LeastRequest:
      return pick_least_request(c);
    case config::LoadBalancer::Random:
      return pick_random(c);
    case config::LoadBalancer::ConsistentHash:
      if (hash_key && !ring_.empty()) {
        return pick_ring(c, *hash_key);
      }
      return pick_random(c);
  }
  return pick_random(c);
}

// ---- circuit breakers --------------------------------------------------------------------------

RequestHold& RequestHold::operator=(RequestHold&& o) noexcept {
  if (this != &o) {
    reset();
    state_ = std::exchange(o.state_, nullptr);
    host_ = o.host_;
  }
  return *this;
}

void RequestHold::reset() {
  if (ClusterState* s = std::exchange(state_, nullptr)) {
    s->end_request(host_);
  }
}

RetryHold& RetryHold::operator=(RetryHold&& o) noexcept {
  if (this != &o) {
    reset();
    state_ = std::exchange(o.state_, nullptr);
  }
  return *this;
}

void RetryHold::reset() {
  if (ClusterState* s = std::exchange(state_, nullptr)) {
    s->end_retry();
  }
}

bool ClusterState::try_begin_request(size_t host) {
  if (!resources_->can_create(Resource::Requests, cluster_.policy.http2_max_requests)) {
    stats_.add(stats::Id::upstream_rq_pending_overflow);
    return false;
  }
  resources_->inc(Resource::Requests);
  if (host < hosts_.size()) {
    ++hosts_[host].active_requests;
  }
  return true;
}

void ClusterState::end_request(size_t host) {
  resources_->dec(Resource::Requests);
  if (host < hosts_.size() && hosts_[host].active_requests > 0) {
    --hosts_[host].active_requests;
  }
}

bool ClusterState::try_begin_retry() {
  if (!resources_->can_create(Resource::Retries, cluster_.policy.max_retries)) {
    stats_.add(stats::Id::upstream_rq_retry_overflow);
    return false;
  }
  resources_->inc(Resource::Retries);
  return true;
}

void ClusterState::end_retry() {
  resources_->dec(Resource::Retries);
}

// ---- outlier detection -------------------------------------------------------------------------

void ClusterState::report(size_t host, bool gateway_or_5xx, Clock::time_point now) {
  const config::ClusterPolicy& p = cluster_.policy;
  if (!p.outlier_detection || host >= hosts_.size()) {
    return;
  }
  HostState& h = hosts_[host];
  if (h.ejected_until) {
    if (*h.ejected_until > now) {
      return;  // still ejected: late results of requests sent before the ejection
    }
    uneject(host);
  }
  if (!gateway_or_5xx) {
    h.consecutive_5xx = 0;
    return;
  }
  if (p.consecutive_5xx_errors == 0 || ++h.consecutive_5xx < p.consecutive_5xx_errors) {
    return;
  }
  h.consecutive_5xx = 0;
  const uint64_t n = hosts_.size();
  const uint64_t max_percent = std::min<uint32_t>(p.max_ejection_percent, 100);
  const bool within = 100 * (static_cast<uint64_t>(ejected_) + 1) <= max_percent * n;
  const bool first = ejected_ == 0 && max_percent > 0;
  if (!within && !first) {
    stats_.add(stats::Id::outlier_ejections_overflow);
    return;
  }
  ++h.times_ejected;
  const Clock::duration base = p.base_ejection_time;
  const Clock::duration cap = std::max(kDefaultMaxEjectionTime, base);
  Clock::duration length = cap;  // base × times_ejected, without overflowing
  if (base <= Clock::duration::zero()) {
    length = Clock::duration::zero();
  } else if (h.times_ejected < cap / base) {
    length = base * h.times_ejected;
  }
  h.ejected_until = now + length;
  ++ejected_;
  stats_.add(stats::Id::outlier_ejections_total);
  stats_.add(stats::Id::outlier_ejections_active);
}

void ClusterState::uneject(size_t host) {
  HostState& h = hosts_[host];
  h.ejected_until.reset();
  h.consecutive_5xx = 0;
  --ejected_;
  stats_.sub(stats::Id::outlier_ejections_active);
}

void ClusterState::unexpire(Clock::time_point now) {
  if (ejected_ == 0) {
    return;
  }
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (hosts_[i].ejected_until && *hosts_[i].ejected_until <= now) {
      uneject(i);
    }
  }
}

bool ClusterState::ejected(size_t host, Clock::time_point now) const {
  return host < hosts_.size() && hosts_[host].ejected_until && *hosts_[host].ejected_until > now;
}

void ClusterState::take_over(ClusterState& previous) {
  std::unordered_map<net::SockAddr, size_t> index;
  for (size_t i = 0; i < cluster_.endpoints.size(); ++i) {
    index.emplace(cluster_.endpoints[i].address, i);
  }
  for (size_t j = 0; j < previous.hosts_.size(); ++j) {
    auto it = index.find(previous.cluster_.endpoints[j].address);
    if (it == index.end()) {
      continue;
    }
    HostState& mine = hosts_[it->second];
    HostState& theirs = previous.hosts_[j];
    mine.consecutive_5xx = theirs.consecutive_5xx;
    mine.times_ejected = theirs.times_ejected;
    if (theirs.ejected_until) {
      // The ejection moves: counted once, here, in outlier_ejections_active.
      mine.ejected_until = theirs.ejected_until;
      theirs.ejected_until.reset();
      --previous.ejected_;
      ++ejected_;
    }
  }
}

// ---- ClusterManager ----------------------------------------------------------------------------

ClusterManager::ClusterManager(stats::Block& stats, uint64_t seed)
    : stats_(stats), seed_(seed != 0 ? seed : random_seed()) {}

ClusterManager::~ClusterManager() {
  // States go before the snapshots their clusters live in.
  retired_.clear();
  current_.reset();
}

void ClusterManager::set_snapshot(const config::SnapshotPtr& snapshot) {
  prune();
  if (current_ && current_->raw == snapshot.get()) {
    return;
  }
  if (current_) {
    current_->pinned.reset();
    retired_.push_back(std::move(current_));
  }
  current_ = std::make_unique<Generation>();
  current_->pinned = snapshot;
  current_->weak = snapshot;
  current_->raw = snapshot.get();
  prune();
}

void ClusterManager::prune() {
  std::erase_if(retired_, [](const std::unique_ptr<Generation>& g) { return g->weak.expired(); });
  std::erase_if(resources_, [](const auto& kv) { return kv.second.expired(); });
}

std::shared_ptr<ResourceManager> ClusterManager::resources(const std::string& name) {
  std::weak_ptr<ResourceManager>& slot = resources_[name];
  std::shared_ptr<ResourceManager> m = slot.lock();
  if (m == nullptr) {
    m = std::make_shared<ResourceManager>(name, stats_);
    slot = m;
  }
  return m;
}

ClusterManager::Generation* ClusterManager::find(const config::Snapshot& snapshot) {
  if (current_ && current_->raw == &snapshot) {
    return current_.get();  // pinned: its address cannot have been reused
  }
  prune();
  for (auto& g : retired_) {
    // Alive (not expired), so the address is still this snapshot's.
    if (g->raw == &snapshot && !g->weak.expired()) {
      return g.get();
    }
  }
  return nullptr;
}

ClusterState& ClusterManager::get(const config::SnapshotPtr& snapshot, const config::RoutedCluster& cluster) {
  Generation* g = find(*snapshot);
  if (g == nullptr) {
    // A snapshot this manager was never given as current (every tunnel starts on the current
    // one, so only tests): track it as a retired generation, which goes with its snapshot.
    auto owned = std::make_unique<Generation>();
    owned->raw = snapshot.get();
    owned->weak = snapshot;
    g = owned.get();
    retired_.push_back(std::move(owned));
  }
  auto it = g->states.find(&cluster);
  if (it != g->states.end()) {
    return *it->second;
  }
  // Per-cluster stream derived from the worker's seed and the cluster's name, so that a fixed
  // seed gives the same picks whatever the order clusters are first used in.
  const uint64_t seed = splitmix64(seed_ ^ hash_bytes(cluster.name));
  auto state = std::make_unique<ClusterState>(cluster, stats_, seed, resources(cluster.name));
  if (g == current_.get()) {
    // The newest previous generation that used a cluster of this name hands its host state on.
    // Only one whose snapshot is alive, held while it is looked at: the keys of its by_name view
    // the names of that snapshot's clusters (a generation whose snapshot went is only pruned at the
    // next set_snapshot, and another thread may drop a snapshot's last reference).
    for (auto r = retired_.rbegin(); r != retired_.rend(); ++r) {
      const config::SnapshotPtr alive = (*r)->weak.lock();
      if (alive == nullptr) {
        continue;
      }
      auto prev = (*r)->by_name.find(cluster.name);
      if (prev != (*r)->by_name.end()) {
        state->take_over(*prev->second);
        break;
      }
    }
  }
  ClusterState& ref = *state;
  g->by_name.emplace(ref.cluster().name, &ref);
  g->states.emplace(&cluster, std::move(state));
  return ref;
}

}  // namespace wp::upstream
