// Weighted cluster choice: distribution over many deterministic picks, and edge weights.
#include <catch2/catch.hpp>
#include <map>

#include "router_fixtures.h"

namespace wp::router {
namespace {

// Counts picks per cluster name over `n` numbers from a fixed 32-bit xorshift sequence.
std::map<std::string, int> distribution(const config::Route& route, int n) {
  std::map<std::string, int> counts;
  uint32_t x = 2463534242u;
  for (int i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    counts[pick(route, x).cluster->name]++;
  }
  return counts;
}

const config::Route& only_route(const config::Snapshot& s) {
  const auto& t = testing::table(s, "10.96.0.20:9080");
  REQUIRE(t.routes.size() == 1);
  return t.routes[0];
}

std::string vs(const std::string& routes) {
  return testing::reviews_vs("  - route:\n" + routes) + "---\n" + testing::reviews_rule();
}

const std::string kV1 = "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local";
const std::string kV2 = "inbound-vip|9080|http/v2|reviews.default.svc.cluster.local";
const std::string kV3 = "inbound-vip|9080|http/v3|reviews.default.svc.cluster.local";

TEST_CASE("router: 90/10 split over 100,000 picks", "[router]") {
  auto s = testing::load(vs(R"(    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
)"));
  const config::Route& r = only_route(*s);
  CHECK(r.cumulative_weights == std::vector<uint32_t>{90, 100});
  CHECK(r.total_weight == 100);
  auto counts = distribution(r, 100'000);
  CHECK(counts.size() == 2);
  CHECK(counts[kV1] > 89'500);
  CHECK(counts[kV1] < 90'500);
  CHECK(counts[kV2] == 100'000 - counts[kV1]);
  // Every residue maps exactly: 0..89 → v1, 90..99 → v2.
  CHECK(pick(r, 0).cluster->name == kV1);
  CHECK(pick(r, 89).cluster->name == kV1);
  CHECK(pick(r, 90).cluster->name == kV2);
  CHECK(pick(r, 99).cluster->name == kV2);
  CHECK(pick(r, 100).cluster->name == kV1);
}

TEST_CASE("router: edge weights 0 and 100", "[router]") {
  auto s = testing::load(vs(R"(    - {destination: {host: reviews, subset: v1}, weight: 0}
    - {destination: {host: reviews, subset: v2}, weight: 100}
    - {destination: {host: reviews, subset: v3}, weight: 0}
)"));
  const config::Route& r = only_route(*s);
  auto counts = distribution(r, 10'000);
  CHECK(counts == std::map<std::string, int>{{kV2, 10'000}});
  CHECK(pick(r, 0).cluster->name == kV2);
  CHECK(pick(r, 0xFFFFFFFFu).cluster->name == kV2);
}

TEST_CASE("router: three-way split and omitted weights", "[router]") {
  auto s = testing::load(vs(R"(    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 30}
    - {destination: {host: reviews, subset: v3}, weight: 20}
)"));
  auto counts = distribution(only_route(*s), 100'000);
  CHECK(counts[kV1] == Approx(50'000).margin(600));
  CHECK(counts[kV2] == Approx(30'000).margin(600));
  CHECK(counts[kV3] == Approx(20'000).margin(600));

  // All weights omitted: equal shares (100 / 3 → 34, 33, 33).
  auto equal = testing::load(vs(R"(    - {destination: {host: reviews, subset: v1}}
    - {destination: {host: reviews, subset: v2}}
    - {destination: {host: reviews, subset: v3}}
)"));
  const config::Route& r = only_route(*equal);
  CHECK(r.cumulative_weights == std::vector<uint32_t>{34, 67, 100});

  // One destination without a weight takes everything.
  auto single = testing::load(vs("    - {destination: {host: reviews, subset: v3}}\n"));
  CHECK(only_route(*single).cumulative_weights == std::vector<uint32_t>{100});
  CHECK(pick(only_route(*single), 12345).cluster->name == kV3);
}

TEST_CASE("router: subset clusters hold the pods with the subset's labels", "[router]") {
  auto s = testing::load(vs(R"(    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
)"));
  const config::RoutedCluster* v1 = s->find_cluster(kV1);
  REQUIRE(v1 != nullptr);
  REQUIRE(v1->endpoints.size() == 1);
  CHECK(v1->endpoints[0].address.to_string() == "10.0.0.1:9080");
  CHECK(v1->endpoints[0].pod->name == "reviews-v1");
  CHECK(v1->subset == "v1");
  CHECK(v1->destination_rule == "reviews");
  CHECK(s->find_cluster(kV2)->endpoints.at(0).address.to_string() == "10.0.0.2:9080");
  CHECK(s->find_cluster(kV3) == nullptr);  // clusters exist only where a route sends
}

}  // namespace
}  // namespace wp::router
