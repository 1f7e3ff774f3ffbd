#include <catch2/catch.hpp>

#include "waypoint/internal/access_log.h"

TEST_CASE("access log lines are one JSON object with Envoy-style fields, strings escaped", "[internal]") {
  wp::internal::TunnelRecord r;
  r.start = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
  r.duration = std::chrono::milliseconds(42);
  r.chain = "inbound-vip|7000|tcp|echo.default.svc.cluster.local";
  r.source_principal = "spiffe://cluster.local/ns/default/sa/sleep";
  r.source_address = "10.1.2.3";
  r.destination = "10.96.0.5:7000";
  r.upstream_host = "10.244.0.7:7000";
  r.response_code = 200;
  r.response_flags = "-";
  r.bytes_received = 5;
  r.bytes_sent = 7;
  CHECK(wp::internal::AccessLog::format(r) ==
        "{\"start_time\":\"2023-11-14T22:13:20.123Z\",\"protocol\":\"tcp\",\"duration_ms\":42,\"response_code\":200,"
        "\"response_flags\":\"-\",\"route_name\":\"inbound-vip|7000|tcp|echo.default.svc.cluster.local\","
        "\"source_principal\":\"spiffe://cluster.local/ns/default/sa/sleep\",\"downstream_remote_address\":"
        "\"10.1.2.3\",\"authority\":\"10.96.0.5:7000\",\"upstream_host\":\"10.244.0.7:7000\",\"bytes_received\":5,"
        "\"bytes_sent\":7}");
  r.source_principal = "a\"b\\c\nd\x01";
  std::string line = wp::internal::AccessLog::format(r);
  CHECK(line.find("\"source_principal\":\"a\\\"b\\\\c\\nd\\u0001\"") != std::string::npos);
  CHECK(line.find('\n') == std::string::npos);
}
