#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "waypoint/accesslog/access_log.h"

TEST_CASE("access log lines are one JSON object with Envoy-style fields, strings escaped", "[internal]") {
  wp::accesslog::TunnelRecord r;
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
  CHECK(wp::accesslog::AccessLog::format(r) ==
        "{\"start_time\":\"2023-11-14T22:13:20.123Z\",\"protocol\":\"tcp\",\"duration_ms\":42,\"response_code\":200,"
        "\"response_flags\":\"-\",\"route_name\":\"inbound-vip|7000|tcp|echo.default.svc.cluster.local\","
        "\"source_principal\":\"spiffe://cluster.local/ns/default/sa/sleep\",\"downstream_remote_address\":"
        "\"10.1.2.3\",\"authority\":\"10.96.0.5:7000\",\"upstream_host\":\"10.244.0.7:7000\",\"bytes_received\":5,"
        "\"bytes_sent\":7}");
  r.source_principal = "a\"b\\c\nd\x01";
  std::string line = wp::accesslog::AccessLog::format(r);
  CHECK(line.find("\"source_principal\":\"a\\\"b\\\\c\\nd\\u0001\"") != std::string::npos);
  CHECK(line.find('\n') == std::string::npos);
}

TEST_CASE("access log: a field with no value is written as -, as Envoy's formatter writes it", "[internal]") {
  wp::accesslog::TunnelRecord r;  // a local reply before any route, cluster or host was picked
  r.protocol = "HTTP/1.1";
  r.response_code = 403;
  const std::string line = wp::accesslog::AccessLog::format(r);
  CHECK(line.find("\"route_name\":\"-\"") != std::string::npos);
  CHECK(line.find("\"upstream_cluster\":\"-\"") != std::string::npos);
  CHECK(line.find("\"upstream_host\":\"-\"") != std::string::npos);
  r.route = "default";
  r.cluster = "outbound|9080||reviews.default.svc.cluster.local";
  r.upstream_host = "10.244.0.7:15008";
  const std::string picked = wp::accesslog::AccessLog::format(r);
  CHECK(picked.find("\"route_name\":\"default\"") != std::string::npos);
  CHECK(picked.find("\"upstream_cluster\":\"outbound|9080||reviews.default.svc.cluster.local\"") != std::string::npos);
  CHECK(picked.find("\"upstream_host\":\"10.244.0.7:15008\"") != std::string::npos);
}

TEST_CASE("access log lines beyond the 1 MiB backlog are dropped and counted", "[internal]") {
  char path[] = "/tmp/wp-access-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  wp::event::Loop loop;
  wp::stats::Block stats;
  wp::accesslog::TunnelRecord r;
  r.chain = std::string(900, 'c');  // about 1 KiB per line
  size_t written = 0;
  {
    wp::accesslog::AccessLog log(loop, path, stats);
    // Within one loop iteration nothing is flushed: the backlog trips after about 1 MiB.
    for (int i = 0; i < 3000; ++i) {
      log.log(r);
    }
    CHECK(stats.get(wp::stats::Id::access_log_dropped) > 0);
    CHECK(stats.get(wp::stats::Id::access_log_dropped) < 3000);
    written = 3000 - static_cast<size_t>(stats.get(wp::stats::Id::access_log_dropped));
    uv_run(loop.uv(), UV_RUN_NOWAIT);  // the end-of-iteration flush writes the backlog
  }
  std::ifstream in(path);
  size_t lines = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++lines;
  }
  ::unlink(path);
  CHECK(lines == written);
}
