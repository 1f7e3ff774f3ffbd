#include <catch2/catch.hpp>

#include <string>

#include "waypoint/stats/prometheus.h"

using namespace wp::stats;

namespace {

Labels request(std::string_view principal, int code) {
  Labels l;
  l.source.principal = principal;
  l.source.namespace_ = "default";
  l.destination.workload = "reviews-v1";
  l.destination_service = "reviews.default.svc.cluster.local";
  l.response_code = code;
  return l;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

}  // namespace

TEST_CASE("prometheus: histogram buckets are Envoy's, upper bounds inclusive", "[stats]") {
  Histogram h;
  h.observe(0.5);      // le="0.5"
  h.observe(0.6);      // le="1"
  h.observe(3600000);  // the last finite bound
  h.observe(1e9);      // +Inf only
  CHECK(h.counts[0] == 1);
  CHECK(h.counts[1] == 1);
  CHECK(h.counts[kBucketBounds.size() - 1] == 1);
  CHECK(h.counts[kBucketBounds.size()] == 1);
  CHECK(h.count == 4);
  CHECK(h.sum == Approx(0.5 + 0.6 + 3600000 + 1e9));
  Histogram other;
  other.observe(7);
  h.merge(other);
  CHECK(h.count == 5);
  CHECK(h.counts[3] == 1);  // 7 ms: le="10"
}

TEST_CASE("prometheus: one series per label set, merged across workers by labels", "[stats]") {
  SeriesStore w1;
  SeriesStore w2;
  w1.record_request(request("spiffe://cluster.local/ns/default/sa/a", 200), 0.3, 100, 2000);
  w1.record_request(request("spiffe://cluster.local/ns/default/sa/a", 200), 12, 100, 2000);
  w1.record_request(request("spiffe://cluster.local/ns/default/sa/a", 503), 1, 100, 0);
  w2.record_request(request("spiffe://cluster.local/ns/default/sa/a", 200), 40, 100, 2000);
  w2.record_request(request("spiffe://cluster.local/ns/default/sa/b", 200), 40, 100, 2000);
  CHECK(w1.size() == 2);
  MetricsSample merged = merge({w1.sample(), w2.sample()});
  REQUIRE(merged.http.size() == 3);
  std::string page = render_prometheus(merged, {}, {});
  std::string a200 = render_labels(request("spiffe://cluster.local/ns/default/sa/a", 200), true);
  CHECK(has_line(page, "istio_requests_total{" + a200 + "} 3"));
  CHECK(has_line(page, "istio_request_duration_milliseconds_bucket{" + a200 + ",le=\"0.5\"} 1"));
  CHECK(has_line(page, "istio_request_duration_milliseconds_bucket{" + a200 + ",le=\"10\"} 1"));
  CHECK(has_line(page, "istio_request_duration_milliseconds_bucket{" + a200 + ",le=\"25\"} 2"));
  CHECK(has_line(page, "istio_request_duration_milliseconds_bucket{" + a200 + ",le=\"+Inf\"} 3"));
  CHECK(has_line(page, "istio_request_duration_milliseconds_count{" + a200 + "} 3"));
  CHECK(has_line(page, "istio_response_bytes_sum{" + a200 + "} 6000"));
  CHECK(page.find("# TYPE istio_request_duration_milliseconds histogram\n") != std::string::npos);
  CHECK(page.find("# TYPE istio_requests_total counter\n") != std::string::npos);
}

TEST_CASE("prometheus: Istio's label names, in Istio's order, values escaped", "[stats]") {
  Labels l = request("spiffe://cluster.local/ns/default/sa/a", 404);
  l.response_flags = "NR";
  l.destination.app = "we\"ird\\app\n";
  std::string text = render_labels(l, true);
  CHECK(text.rfind("reporter=\"waypoint\",source_workload=\"unknown\",source_canonical_service=", 0) == 0);
  CHECK(text.find("destination_app=\"we\\\"ird\\\\app\\n\"") != std::string::npos);
  CHECK(text.find("response_code=\"404\",grpc_response_status=\"\",response_flags=\"NR\","
                  "connection_security_policy=\"mutual_tls\"") != std::string::npos);
  // TCP series have no response code.
  CHECK(render_labels(l, false).find("response_code") == std::string::npos);
}

TEST_CASE("prometheus: label sets past the limit fold into one overflow series", "[stats]") {
  SeriesStore store;
  for (size_t i = 0; i < SeriesStore::kMaxSeries + 50; ++i) {
    std::string principal = "spiffe://cluster.local/ns/default/sa/client-" + std::to_string(i);
    store.record_request(request(principal, 200), 1, 0, 0);
  }
  CHECK(store.size() == SeriesStore::kMaxSeries + 1);
  CHECK(store.overflowed() == 50);
  MetricsSample s = store.sample();
  CHECK(s.http.back().labels.find("source_principal=\"overflow\"") != std::string::npos);
  CHECK(s.http.back().requests == 50);
  std::string page = render_prometheus(merge({s}), {}, {});
  CHECK(has_line(page, "waypoint_metric_series_overflow_total 50"));
}

TEST_CASE("prometheus: the proxy's counters, with labelled families", "[stats]") {
  Block b;
  b.add(Id::handshake_failed_no_certificate, 2);
  b.add(Id::rq_no_route, 3);
  b.add(Id::downstream_rq_total, 9);
  b.add(Id::tunnels_active, 4);
  ProcessMetrics p;
  p.workers = 2;
  p.config_loads_ok = 1;
  p.ready = true;
  std::string page = render_prometheus({}, {&b}, p);
  CHECK(has_line(page, "waypoint_handshake_failures_total{reason=\"no_certificate\"} 2"));
  CHECK(has_line(page, "waypoint_handshake_failures_total{reason=\"timeout\"} 0"));
  CHECK(has_line(page, "waypoint_local_replies_total{cause=\"no_route\"} 3"));
  CHECK(has_line(page, "waypoint_downstream_rq_total 9"));
  CHECK(has_line(page, "# TYPE waypoint_tunnels_active gauge"));
  CHECK(has_line(page, "waypoint_tunnels_active 4"));
  CHECK(has_line(page, "waypoint_config_loads_total{result=\"ok\"} 1"));
  CHECK(has_line(page, "waypoint_ready 1"));
  // Each family is declared once.
  size_t first = page.find("# TYPE waypoint_handshake_failures_total counter");
  REQUIRE(first != std::string::npos);
  CHECK(page.find("# TYPE waypoint_handshake_failures_total counter", first + 1) == std::string::npos);
  // The flat names of family members are not repeated on their own.
  CHECK(page.find("waypoint_rq_no_route") == std::string::npos);
}
