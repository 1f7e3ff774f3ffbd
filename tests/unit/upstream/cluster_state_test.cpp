// ClusterState: load balancers, previous-hosts avoidance, outlier ejection with a fake clock,
// circuit breakers and the per-worker ClusterManager.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "waypoint/upstream/cluster_state.h"

namespace wp::upstream {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kSeed = 42;
const Clock::time_point kT0 = Clock::time_point{} + std::chrono::hours(1);
const std::vector<size_t> kNone;

// A cluster of `n` endpoints 10.0.0.1:9080, 10.0.0.2:9080, ... with the given balancer.
config::RoutedCluster make_cluster(size_t n, config::LoadBalancer lb = config::LoadBalancer::RoundRobin) {
  config::RoutedCluster c;
  c.name = "inbound-vip|9080|http|reviews.default.svc.cluster.local";
  for (size_t i = 0; i < n; ++i) {
    config::Endpoint e;
    e.address = net::SockAddr(net::IpAddr::v4(0x0a000001u + static_cast<uint32_t>(i)), 9080);
    c.endpoints.push_back(e);
  }
  c.policy.load_balancer = lb;
  return c;
}

// Outlier detection on: `n` consecutive 5xx eject for `base`, at most `percent` % of hosts.
void enable_outlier(config::RoutedCluster& c, uint32_t n, uint32_t percent, milliseconds base = milliseconds(30'000)) {
  c.policy.outlier_detection = true;
  c.policy.consecutive_5xx_errors = n;
  c.policy.max_ejection_percent = percent;
  c.policy.base_ejection_time = base;
}

void fail(ClusterState& s, size_t host, uint32_t times, Clock::time_point now) {
  for (uint32_t i = 0; i < times; ++i) {
    s.report(host, true, now);
  }
}

size_t pick(ClusterState& s, Clock::time_point now = kT0, const std::vector<size_t>& avoid = kNone,
            std::optional<std::string_view> key = std::nullopt) {
  auto h = s.pick(now, avoid, key);
  REQUIRE(h.has_value());
  return *h;
}

std::vector<int> counts(ClusterState& s, int picks, const std::vector<size_t>& avoid = kNone) {
  std::vector<int> out(s.size(), 0);
  for (int i = 0; i < picks; ++i) {
    out[pick(s, kT0, avoid)]++;
  }
  return out;
}

int64_t stat(const stats::Block& b, stats::Id id) {
  return b.get(id);
}

TEST_CASE("upstream: round robin rotates exactly and skips an ejected host", "[upstream]") {
  auto c = make_cluster(3);
  enable_outlier(c, 1, 100);
  stats::Block b;
  ClusterState s(c, b, kSeed);
  std::vector<size_t> seq;
  for (int i = 0; i < 7; ++i) {
    seq.push_back(pick(s));
  }
  CHECK(seq == std::vector<size_t>{0, 1, 2, 0, 1, 2, 0});

  s.report(1, true, kT0);  // ejects host 1
  REQUIRE(s.ejected(1, kT0));
  seq.clear();
  for (int i = 0; i < 6; ++i) {
    seq.push_back(pick(s));
  }
  CHECK(seq == std::vector<size_t>{2, 0, 2, 0, 2, 0});

  // Back after base_ejection_time: the rotation includes it again.
  const auto later = kT0 + seconds(30);
  seq.clear();
  for (int i = 0; i < 3; ++i) {
    seq.push_back(pick(s, later));
  }
  CHECK(seq == std::vector<size_t>{1, 2, 0});
}

TEST_CASE("upstream: random is uniform over 30000 picks", "[upstream]") {
  auto c = make_cluster(3, config::LoadBalancer::Random);
  stats::Block b;
  ClusterState s(c, b, kSeed);
  auto n = counts(s, 30'000);
  for (int v : n) {
    CHECK(v >= 9'500);
    CHECK(v <= 10'500);
  }
}

TEST_CASE("upstream: random over the hosts left when one is ejected", "[upstream]") {
  auto c = make_cluster(3, config::LoadBalancer::Random);
  enable_outlier(c, 1, 100);
  stats::Block b;
  ClusterState s(c, b, kSeed);
  s.report(0, true, kT0);
  auto n = counts(s, 20'000);
  CHECK(n[0] == 0);
  CHECK(n[1] >= 9'500);
  CHECK(n[2] >= 9'500);
}

TEST_CASE("upstream: least request is power of two choices", "[upstream]") {
  auto c = make_cluster(3, config::LoadBalancer::LeastRequest);
  stats::Block b;
  ClusterState s(c, b, kSeed);
  for (int i = 0; i < 50; ++i) {
    REQUIRE(s.try_begin_request(0));
  }
  CHECK(s.host(0).active_requests == 50);
  auto n = counts(s, 30'000);
  // Host 0 wins only when both draws are host 0: about 1/9 of the picks.
  CHECK(n[0] < 6'000);
  CHECK(n[0] > 2'000);
  CHECK(n[1] > 12'000);
  CHECK(n[2] > 12'000);

  // Equal load again: uniform.
  for (int i = 0; i < 50; ++i) {
    s.end_request(0);
  }
  n = counts(s, 30'000);
  for (int v : n) {
    CHECK(v >= 9'500);
    CHECK(v <= 10'500);
  }
}

TEST_CASE("upstream: least request with one host busier than the others", "[upstream]") {
  auto c = make_cluster(2, config::LoadBalancer::LeastRequest);
  stats::Block b;
  ClusterState s(c, b, kSeed);
  REQUIRE(s.try_begin_request(1));
  auto n = counts(s, 10'000);
  // Host 1 only when both draws are host 1: 1/4.
  CHECK(n[1] > 2'000);
  CHECK(n[1] < 3'000);
}

TEST_CASE("upstream: consistent hash keeps a key on one host", "[upstream]") {
  auto c = make_cluster(3, config::LoadBalancer::ConsistentHash);
  c.policy.hash_header = "x-user";
  stats::Block b;
  ClusterState s(c, b, kSeed);
  const size_t first = pick(s, kT0, kNone, std::string_view("alice"));
  for (int i = 0; i < 1000; ++i) {
    CHECK(pick(s, kT0, kNone, std::string_view("alice")) == first);
  }
  // The ring depends only on the endpoints: another state (another worker, another seed) agrees.
  stats::Block b2;
  ClusterState other(c, b2, 7);
  CHECK(pick(other, kT0, kNone, std::string_view("alice")) == first);
}

TEST_CASE("upstream: consistent hash spreads keys and ejection moves only the ejected host's", "[upstream]") {
  auto c = make_cluster(3, config::LoadBalancer::ConsistentHash);
  enable_outlier(c, 1, 100);
  stats::Block b;
  ClusterState s(c, b, kSeed);
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) {
    keys.push_back("user-" + std::to_string(i));
  }
  std::vector<size_t> before;
  std::vector<int> n(3, 0);
  for (const auto& k : keys) {
    before.push_back(pick(s, kT0, kNone, std::string_view(k)));
    n[before.back()]++;
  }
  for (int v : n) {
    CHECK(v >= 150);
  }

  s.report(1, true, kT0);
  REQUIRE(s.ejected(1, kT0));
  int moved = 0;
  std::vector<int> moved_to(3, 0);
  for (size_t i = 0; i < keys.size(); ++i) {
    const size_t now = pick(s, kT0, kNone, std::string_view(keys[i]));
    CHECK(now != 1);
    if (before[i] != 1) {
      CHECK(now == before[i]);
    } else {
      ++moved;
      moved_to[now]++;
    }
  }
  CHECK(moved == n[1]);
  CHECK(moved_to[0] > 0);  // the ejected host's keys scatter over the rest
  CHECK(moved_to[2] > 0);

  // Once the ejection expires every key is back where it was.
  const auto later = kT0 + seconds(30);
  for (size_t i = 0; i < keys.size(); ++i) {
    CHECK(pick(s, later, kNone, std::string_view(keys[i])) == before[i]);
  }
}

TEST_CASE("upstream: consistent hash without the header picks at random", "[upstream]") {
  auto c = make_cluster(3, config::LoadBalancer::ConsistentHash);
  stats::Block b;
  ClusterState s(c, b, kSeed);
  auto n = counts(s, 3'000);
  for (int v : n) {
    CHECK(v > 800);
  }
}

TEST_CASE("upstream: avoid prefers hosts not tried yet", "[upstream]") {
  SECTION("round robin") {
    auto c = make_cluster(3);
    stats::Block b;
    ClusterState s(c, b, kSeed);
    for (int i = 0; i < 10; ++i) {
      CHECK(pick(s, kT0, {1}) != 1);
    }
    for (int i = 0; i < 10; ++i) {
      CHECK(pick(s, kT0, {0, 2}) == 1);
    }
    // Every host tried: any of them.
    std::vector<size_t> seq;
    for (int i = 0; i < 3; ++i) {
      seq.push_back(pick(s, kT0, {0, 1, 2}));
    }
    std::sort(seq.begin(), seq.end());
    CHECK(seq == std::vector<size_t>{0, 1, 2});
  }
  SECTION("random and least request") {
    for (auto lb : {config::LoadBalancer::Random, config::LoadBalancer::LeastRequest}) {
      auto c = make_cluster(3, lb);
      stats::Block b;
      ClusterState s(c, b, kSeed);
      auto n = counts(s, 3'000, {2});
      CHECK(n[2] == 0);
      CHECK(n[0] > 1'200);
      CHECK(n[1] > 1'200);
      n = counts(s, 100, {0, 1});
      CHECK(n[2] == 100);
      n = counts(s, 3'000, {0, 1, 2, 1});  // duplicates and all tried
      CHECK(n[0] > 0);
      CHECK(n[1] > 0);
      CHECK(n[2] > 0);
      n = counts(s, 100, {7});  // out of range: ignored
      CHECK(n[0] + n[1] + n[2] == 100);
    }
  }
  SECTION("ejected hosts never come back through the fallback") {
    auto c = make_cluster(3, config::LoadBalancer::Random);
    enable_outlier(c, 1, 100);
    stats::Block b;
    ClusterState s(c, b, kSeed);
    s.report(2, true, kT0);
    auto n = counts(s, 1'000, {0, 1});  // both eligible hosts tried: one of them, never 2
    CHECK(n[2] == 0);
    CHECK(n[0] > 0);
    CHECK(n[1] > 0);
  }
  SECTION("consistent hash moves a retry to another host, deterministically") {
    auto c = make_cluster(3, config::LoadBalancer::ConsistentHash);
    stats::Block b;
    ClusterState s(c, b, kSeed);
    const size_t home = pick(s, kT0, kNone, std::string_view("bob"));
    const size_t retry = pick(s, kT0, {home}, std::string_view("bob"));
    CHECK(retry != home);
    for (int i = 0; i < 100; ++i) {
      CHECK(pick(s, kT0, {home}, std::string_view("bob")) == retry);
    }
    CHECK(pick(s, kT0, {0, 1, 2}, std::string_view("bob")) == home);
  }
}

TEST_CASE("upstream: ejection after exactly N consecutive 5xx", "[upstream]") {
  auto c = make_cluster(3);
  enable_outlier(c, 5, 100);
  stats::Block b;
  ClusterState s(c, b, kSeed);

  fail(s, 0, 4, kT0);
  CHECK(s.host(0).consecutive_5xx == 4);
  CHECK_FALSE(s.ejected(0, kT0));
  s.report(0, false, kT0);  // a success resets the count
  CHECK(s.host(0).consecutive_5xx == 0);
  fail(s, 0, 4, kT0);
  CHECK_FALSE(s.ejected(0, kT0));
  CHECK(stat(b, stats::Id::outlier_ejections_total) == 0);

  s.report(0, true, kT0);  // the 5th in a row
  CHECK(s.ejected(0, kT0));
  CHECK(s.host(0).times_ejected == 1);
  CHECK(s.host(0).consecutive_5xx == 0);
  CHECK(s.ejected_count() == 1);
  CHECK(stat(b, stats::Id::outlier_ejections_total) == 1);
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 1);

  // Results arriving while ejected are ignored.
  fail(s, 0, 20, kT0 + seconds(1));
  CHECK(s.host(0).times_ejected == 1);
  CHECK(stat(b, stats::Id::outlier_ejections_total) == 1);
}

TEST_CASE("upstream: ejection lasts base time, then twice base", "[upstream]") {
  auto c = make_cluster(3);
  enable_outlier(c, 2, 100, milliseconds(30'000));
  stats::Block b;
  ClusterState s(c, b, kSeed);

  fail(s, 1, 2, kT0);
  CHECK(s.ejected(1, kT0 + milliseconds(29'999)));
  CHECK_FALSE(s.ejected(1, kT0 + seconds(30)));
  s.unexpire(kT0 + milliseconds(29'999));
  CHECK(s.ejected_count() == 1);
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 1);
  s.unexpire(kT0 + seconds(30));
  CHECK(s.ejected_count() == 0);
  CHECK_FALSE(s.host(1).ejected_until.has_value());
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 0);

  const auto t1 = kT0 + seconds(100);
  fail(s, 1, 2, t1);
  CHECK(s.host(1).times_ejected == 2);
  CHECK(s.ejected(1, t1 + milliseconds(59'999)));
  CHECK_FALSE(s.ejected(1, t1 + seconds(60)));
  // pick() returns expired hosts by itself.
  CHECK(s.pick(t1 + seconds(60), kNone, std::nullopt).has_value());
  CHECK(s.ejected_count() == 0);
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 0);
  CHECK(stat(b, stats::Id::outlier_ejections_total) == 2);

  // A late 5xx on an expired host counts from zero (the count was reset at uneject).
  const auto t2 = t1 + seconds(200);
  s.report(1, true, t2);
  CHECK_FALSE(s.ejected(1, t2));
  s.report(1, true, t2);
  CHECK(s.ejected(1, t2));
  CHECK(*s.host(1).ejected_until == t2 + seconds(90));
}

TEST_CASE("upstream: ejection time is capped at 300 s", "[upstream]") {
  auto c = make_cluster(1);
  enable_outlier(c, 1, 100, milliseconds(100'000));
  stats::Block b;
  ClusterState s(c, b, kSeed);
  auto t = kT0;
  for (int i = 1; i <= 5; ++i) {
    s.report(0, true, t);
    REQUIRE(s.host(0).ejected_until.has_value());
    CHECK(*s.host(0).ejected_until - t == std::min(seconds(100) * i, seconds(300)));
    t = *s.host(0).ejected_until;
  }
}

TEST_CASE("upstream: maxEjectionPercent caps ejections and counts overflow", "[upstream]") {
  SECTION("10 % of 3 hosts: the first ejection is always allowed, the second overflows") {
    auto c = make_cluster(3);
    enable_outlier(c, 2, 10);
    stats::Block b;
    ClusterState s(c, b, kSeed);
    fail(s, 0, 2, kT0);
    CHECK(s.ejected(0, kT0));
    fail(s, 1, 2, kT0);
    CHECK_FALSE(s.ejected(1, kT0));
    CHECK(s.host(1).consecutive_5xx == 0);  // the count restarts after an overflow
    CHECK(s.host(1).times_ejected == 0);
    CHECK(stat(b, stats::Id::outlier_ejections_overflow) == 1);
    s.report(1, true, kT0);
    CHECK(stat(b, stats::Id::outlier_ejections_overflow) == 1);
    s.report(1, true, kT0);
    CHECK(stat(b, stats::Id::outlier_ejections_overflow) == 2);
    CHECK(s.ejected_count() == 1);
    CHECK(stat(b, stats::Id::outlier_ejections_total) == 1);
    CHECK(stat(b, stats::Id::outlier_ejections_active) == 1);
    // Once host 0 is back, host 1 may go.
    const auto later = kT0 + seconds(30);
    s.unexpire(later);
    fail(s, 1, 2, later);
    CHECK(s.ejected(1, later));
  }
  SECTION("50 % of 4 hosts: two ejections") {
    auto c = make_cluster(4);
    enable_outlier(c, 1, 50);
    stats::Block b;
    ClusterState s(c, b, kSeed);
    for (size_t h = 0; h < 4; ++h) {
      s.report(h, true, kT0);
    }
    CHECK(s.ejected_count() == 2);
    CHECK(s.ejected(0, kT0));
    CHECK(s.ejected(1, kT0));
    CHECK(stat(b, stats::Id::outlier_ejections_overflow) == 2);
  }
  SECTION("50 % of 3 hosts: one ejection (two would be 67 %)") {
    auto c = make_cluster(3);
    enable_outlier(c, 1, 50);
    stats::Block b;
    ClusterState s(c, b, kSeed);
    for (size_t h = 0; h < 3; ++h) {
      s.report(h, true, kT0);
    }
    CHECK(s.ejected_count() == 1);
    CHECK(stat(b, stats::Id::outlier_ejections_overflow) == 2);
  }
  SECTION("0 %: never") {
    auto c = make_cluster(3);
    enable_outlier(c, 1, 0);
    stats::Block b;
    ClusterState s(c, b, kSeed);
    s.report(0, true, kT0);
    CHECK(s.ejected_count() == 0);
    CHECK(stat(b, stats::Id::outlier_ejections_overflow) == 1);
  }
}

TEST_CASE("upstream: no ejection without outlierDetection or with consecutive5xxErrors 0", "[upstream]") {
  auto c = make_cluster(3);
  stats::Block b;
  {
    ClusterState s(c, b, kSeed);
    fail(s, 0, 100, kT0);
    CHECK(s.ejected_count() == 0);
    CHECK(s.host(0).consecutive_5xx == 0);
  }
  enable_outlier(c, 0, 100);
  {
    ClusterState s(c, b, kSeed);
    fail(s, 0, 100, kT0);
    CHECK(s.ejected_count() == 0);
  }
  CHECK(stat(b, stats::Id::outlier_ejections_total) == 0);
}

TEST_CASE("upstream: every host ejected gives no host", "[upstream]") {
  for (auto lb : {config::LoadBalancer::RoundRobin, config::LoadBalancer::LeastRequest, config::LoadBalancer::Random,
                  config::LoadBalancer::ConsistentHash}) {
    auto c = make_cluster(3, lb);
    enable_outlier(c, 1, 100);
    stats::Block b;
    ClusterState s(c, b, kSeed);
    for (size_t h = 0; h < 3; ++h) {
      s.report(h, true, kT0);
    }
    CHECK(s.ejected_count() == 3);
    CHECK_FALSE(s.pick(kT0, kNone, std::nullopt).has_value());
    CHECK_FALSE(s.pick(kT0, {0}, std::string_view("k")).has_value());
    CHECK(s.pick(kT0 + seconds(30), kNone, std::nullopt).has_value());
    CHECK(stat(b, stats::Id::outlier_ejections_active) == 0);
  }
}

TEST_CASE("upstream: a cluster without endpoints gives no host", "[upstream]") {
  for (auto lb : {config::LoadBalancer::RoundRobin, config::LoadBalancer::ConsistentHash}) {
    auto c = make_cluster(0, lb);
    enable_outlier(c, 1, 100);
    stats::Block b;
    ClusterState s(c, b, kSeed);
    CHECK(s.size() == 0);
    CHECK_FALSE(s.pick(kT0, kNone, std::string_view("k")).has_value());
    s.report(0, true, kT0);  // out of range: ignored
    CHECK(s.ejected_count() == 0);
  }
}

TEST_CASE("upstream: http2MaxRequests circuit breaker", "[upstream]") {
  auto c = make_cluster(3);
  c.policy.http2_max_requests = 2;
  stats::Block b;
  ClusterState s(c, b, kSeed);
  CHECK(s.try_begin_request(0));
  CHECK(s.try_begin_request(1));
  CHECK(s.active_requests() == 2);
  CHECK_FALSE(s.try_begin_request(2));
  CHECK_FALSE(s.try_begin_request(0));
  CHECK(stat(b, stats::Id::upstream_rq_pending_overflow) == 2);
  CHECK(s.active_requests() == 2);
  CHECK(s.host(0).active_requests == 1);
  CHECK(s.host(2).active_requests == 0);

  s.end_request(1);
  CHECK(s.active_requests() == 1);
  CHECK(s.host(1).active_requests == 0);
  CHECK(s.try_begin_request(2));
  CHECK(s.host(2).active_requests == 1);
  CHECK(stat(b, stats::Id::upstream_rq_pending_overflow) == 2);

  SECTION("unset: unlimited") {
    auto u = make_cluster(1);
    ClusterState us(u, b, kSeed);
    for (int i = 0; i < 10'000; ++i) {
      REQUIRE(us.try_begin_request(0));
    }
    CHECK(us.active_requests() == 10'000);
  }
}

TEST_CASE("upstream: a cluster's circuit breakers are shared by its states of every config generation",
          "[upstream][limits]") {
  // A request begun under the old snapshot still counts once the new one is in force, so a config
  // change does not reset http2MaxRequests or maxRetries.
  auto old_c = make_cluster(2);
  old_c.policy.http2_max_requests = 2;
  old_c.policy.max_retries = 1;
  auto new_c = make_cluster(3);
  new_c.policy.http2_max_requests = 2;
  new_c.policy.max_retries = 1;
  stats::Block b;
  ClusterManager manager(b, kSeed);
  auto rm = manager.resources(old_c.name);
  CHECK(manager.resources(old_c.name) == rm);  // one per name
  ClusterState old_s(old_c, b, kSeed, rm);
  ClusterState new_s(new_c, b, kSeed, manager.resources(new_c.name));
  CHECK(&new_s.resources() == rm.get());
  {
    RequestHold r1 = old_s.hold_request(0);
    RequestHold r2 = new_s.hold_request(2);
    REQUIRE(r1);
    REQUIRE(r2);
    CHECK_FALSE(new_s.hold_request(1));  // the old generation's request counts here too
    CHECK(new_s.active_requests() == 2);
    CHECK(old_s.host(0).active_requests == 1);  // host counts stay per generation (LEAST_REQUEST)
    CHECK(new_s.host(0).active_requests == 0);
    RetryHold retry = old_s.hold_retry();
    REQUIRE(retry);
    CHECK_FALSE(new_s.hold_retry());
    CHECK(stat(b, stats::Id::upstream_rq_retry_overflow) == 1);
  }
  CHECK(rm->count(Resource::Requests) == 0);
  CHECK(rm->count(Resource::Retries) == 0);
  CHECK(new_s.hold_request(1));
  CHECK(new_s.hold_retry());
}

TEST_CASE("upstream: a ResourceManager released below zero logs and stays at zero", "[upstream][limits]") {
  stats::Block b;
  auto rm = std::make_shared<ResourceManager>("reviews", b);
  rm->dec(Resource::PendingRequests);
  CHECK(rm->count(Resource::PendingRequests) == 0);
  CHECK(stat(b, stats::Id::upstream_rq_pending_active) == 0);
  {
    auto h = ResourceHold::acquire(*rm, Resource::PendingRequests);
    CHECK(stat(b, stats::Id::upstream_rq_pending_active) == 1);
    auto moved = std::move(h);
    CHECK_FALSE(h);  // NOLINT(bugprone-use-after-move): moved-from holds nothing
    CHECK(rm->count(Resource::PendingRequests) == 1);
  }
  CHECK(rm->count(Resource::PendingRequests) == 0);
  CHECK(stat(b, stats::Id::upstream_rq_pending_active) == 0);
}

TEST_CASE("upstream: maxRetries circuit breaker", "[upstream]") {
  auto c = make_cluster(2);
  c.policy.max_retries = 2;
  stats::Block b;
  ClusterState s(c, b, kSeed);
  CHECK(s.try_begin_retry());
  CHECK(s.try_begin_retry());
  CHECK_FALSE(s.try_begin_retry());
  s.end_retry();
  CHECK(s.try_begin_retry());
  CHECK_FALSE(s.try_begin_retry());

  c.policy.max_retries = 0;
  ClusterState unlimited(c, b, kSeed);
  for (int i = 0; i < 1'000; ++i) {
    REQUIRE(unlimited.try_begin_retry());
  }
}

TEST_CASE("upstream: the ejection gauge follows the states", "[upstream]") {
  auto c = make_cluster(4);
  enable_outlier(c, 1, 100);
  stats::Block b;
  {
    ClusterState s(c, b, kSeed);
    s.report(0, true, kT0);
    s.report(1, true, kT0 + seconds(10));
    s.report(2, true, kT0 + seconds(20));
    CHECK(static_cast<int64_t>(s.ejected_count()) == stat(b, stats::Id::outlier_ejections_active));
    CHECK(stat(b, stats::Id::outlier_ejections_active) == 3);
    s.unexpire(kT0 + seconds(35));  // host 0 back (ejected until 30 s), 1 and 2 still out
    CHECK(stat(b, stats::Id::outlier_ejections_active) == 2);
    CHECK(s.ejected_count() == 2);
  }
  // A state destroyed with hosts still ejected takes them off the gauge.
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 0);
  CHECK(stat(b, stats::Id::outlier_ejections_total) == 3);
}

TEST_CASE("upstream: cluster manager keeps one state per cluster until the snapshot changes", "[upstream]") {
  auto snap = std::make_shared<config::Snapshot>();
  auto a = make_cluster(3);
  a.name = "a";
  enable_outlier(a, 1, 100);
  auto z = make_cluster(2, config::LoadBalancer::Random);
  z.name = "z";
  snap->clusters.emplace("a", std::make_shared<const config::RoutedCluster>(a));
  snap->clusters.emplace("z", std::make_shared<const config::RoutedCluster>(z));
  const config::RoutedCluster& ca = snap->clusters.at("a");
  const config::RoutedCluster& cz = snap->clusters.at("z");

  stats::Block b;
  ClusterManager m(b, kSeed);
  m.set_snapshot(snap);
  ClusterState& sa = m.get(snap, ca);
  CHECK(&m.get(snap, ca) == &sa);
  CHECK(&sa.cluster() == &ca);
  CHECK(&m.get(snap, cz) != &sa);
  CHECK(m.get(snap, cz).size() == 2);

  REQUIRE(sa.try_begin_request(0));
  sa.report(1, true, kT0);
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 1);

  // The same snapshot again changes nothing.
  m.set_snapshot(snap);
  CHECK(&m.get(snap, ca) == &sa);
  CHECK(m.generations() == 1);
}

TEST_CASE("upstream: a new snapshot gets new states, the old ones live while pinned and hand on ejections",
          "[upstream]") {
  auto make = [](size_t first_host, size_t n) {
    auto snap = std::make_shared<config::Snapshot>();
    auto a = make_cluster(0);
    a.name = "alpha";
    enable_outlier(a, 1, 100);
    for (size_t i = 0; i < n; ++i) {
      config::Endpoint e;
      e.address = net::SockAddr(net::IpAddr::v4(0x0a000001u + static_cast<uint32_t>(first_host + i)), 9080);
      a.endpoints.push_back(e);
    }
    snap->clusters.emplace("alpha", std::make_shared<const config::RoutedCluster>(a));
    return snap;
  };
  stats::Block b;
  ClusterManager m(b, kSeed);
  auto v1 = std::shared_ptr<const config::Snapshot>(make(0, 3));  // hosts .1 .2 .3
  m.set_snapshot(v1);
  const config::RoutedCluster& a1 = v1->clusters.at("alpha");
  ClusterState& s1 = m.get(v1, a1);
  REQUIRE(s1.try_begin_request(2));  // a request in flight on host .3
  s1.report(1, true, kT0);           // host .2 ejected
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 1);

  // v2: hosts .2 .3 .4 (host .2 is now index 0).
  auto v2 = std::shared_ptr<const config::Snapshot>(make(1, 3));
  m.set_snapshot(v2);
  CHECK(m.generations() == 2);
  const config::RoutedCluster& a2 = v2->clusters.at("alpha");
  ClusterState& s2 = m.get(v2, a2);
  CHECK(&s2 != &s1);
  CHECK(s2.ejected(0, kT0));  // .2 is still ejected, under its new index
  CHECK_FALSE(s2.ejected(1, kT0));
  // The circuit breaker is the cluster's, across generations: v1's request counts; the host
  // counts (LEAST_REQUEST) are per generation.
  CHECK(s2.active_requests() == 1);
  CHECK(&s2.resources() == &s1.resources());
  CHECK(s2.host(1).active_requests == 0);
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 1);  // moved, not counted twice
  // The request pinned to v1 still finds its state and ends its request there.
  CHECK(&m.get(v1, a1) == &s1);
  s1.end_request(2);
  CHECK(s1.active_requests() == 0);

  // Once nothing pins v1 its generation goes.
  v1.reset();
  m.set_snapshot(v2);
  CHECK(m.get(v2, a2).ejected(0, kT0));
  auto v3 = std::shared_ptr<const config::Snapshot>(make(0, 1));
  m.set_snapshot(v3);
  CHECK(m.generations() == 2);  // v3 current, v2 retired but pinned by this test
  v2.reset();
  m.set_snapshot(v3);
  m.get(v3, v3->clusters.at("alpha"));
  CHECK(m.generations() == 1);
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 0);  // v3 has no host .2
}

// A request's first use of a cluster in the current snapshot looks for a previous generation to
// take the hosts' state from; one whose snapshot went since the last set_snapshot (not pruned
// yet) must not be looked into: its name index views the freed snapshot's cluster names (caught
// by ASan as a heap-use-after-free in the Kubernetes restart test).
TEST_CASE("upstream: a retired generation whose snapshot went is not looked into", "[upstream]") {
  const std::string name = "inbound-vip|8080|http/v1|reviews.default.svc.cluster.local";  // on the heap
  auto make = [&](size_t hosts) {
    auto snap = std::make_shared<config::Snapshot>();
    auto c = make_cluster(hosts);
    c.name = name;
    enable_outlier(c, 1, 100);
    snap->clusters.emplace(name, std::make_shared<const config::RoutedCluster>(c));
    return std::shared_ptr<const config::Snapshot>(snap);
  };
  stats::Block b;
  ClusterManager m(b, kSeed);
  auto v1 = make(3);
  m.set_snapshot(v1);
  ClusterState& s1 = m.get(v1, v1->clusters.at(name));
  REQUIRE(s1.try_begin_request(1));
  s1.report(1, true, kT0);  // host 1 ejected in v1
  s1.end_request(1);
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 1);
  auto v2 = make(3);
  m.set_snapshot(v2);  // v1 retired, pinned by this test
  v1.reset();          // ... and gone: the generation stays until the next set_snapshot
  ClusterState& s2 = m.get(v2, v2->clusters.at(name));
  CHECK_FALSE(s2.ejected(1, kT0));  // nothing taken over from the generation that went
  m.set_snapshot(v2);               // prunes it, and its ejection with it
  CHECK(m.generations() == 1);
  CHECK(stat(b, stats::Id::outlier_ejections_active) == 0);
}

TEST_CASE("upstream: a fixed seed gives the same picks, seed 0 draws one", "[upstream]") {
  auto snap = std::make_shared<config::Snapshot>();
  snap->clusters.emplace("r",
                         std::make_shared<const config::RoutedCluster>(make_cluster(5, config::LoadBalancer::Random)));
  const config::RoutedCluster& c = snap->clusters.at("r");
  stats::Block b;
  ClusterManager m1(b, 1234);
  ClusterManager m2(b, 1234);
  ClusterManager m3(b, 99);
  m1.set_snapshot(snap);
  m2.set_snapshot(snap);
  m3.set_snapshot(snap);
  std::vector<size_t> s1, s2, s3;
  for (int i = 0; i < 64; ++i) {
    s1.push_back(pick(m1.get(snap, c)));
    s2.push_back(pick(m2.get(snap, c)));
    s3.push_back(pick(m3.get(snap, c)));
  }
  CHECK(s1 == s2);
  CHECK(s1 != s3);

  ClusterManager r(b);  // seeded from std::random_device
  r.set_snapshot(snap);
  std::vector<int> n(5, 0);
  for (int i = 0; i < 5'000; ++i) {
    n[pick(r.get(snap, c))]++;
  }
  for (int v : n) {
    CHECK(v > 800);
  }
}

}  // namespace
}  // namespace wp::upstream
