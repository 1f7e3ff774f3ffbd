#include <catch2/catch.hpp>

#include <string>

#include "waypoint/proxy/upstream_error.h"

using wp::proxy::AttemptFailure;
using wp::proxy::describe;
using wp::proxy::UpstreamError;
using Kind = wp::router::Outcome::Kind;

TEST_CASE("attempt failures: Envoy's flag, local reply and retry kind for each", "[http][error]") {
  struct Row {
    AttemptFailure f;
    Kind kind;
    const char* flag;
    const char* exhausted;
    const char* mid;
    int status;
  };
  const Row rows[] = {
      {AttemptFailure::ConnectFailure, Kind::ConnectFailure, "UF", "URX,UF", "UC", 503},
      {AttemptFailure::Reset, Kind::Reset, "UC", "URX,UC", "UC", 503},
      {AttemptFailure::RefusedStream, Kind::RefusedStream, "UC", "URX,UC", "UC", 503},
      {AttemptFailure::Protocol, Kind::Reset, "UPE", "URX,UPE", "UC", 502},
      {AttemptFailure::PerTryTimeout, Kind::Timeout, "UT", "URX,UT", "UT", 504},
  };
  for (const Row& r : rows) {
    const auto& info = describe(r.f);
    INFO(r.flag);
    CHECK(info.retry_kind == r.kind);
    CHECK(std::string(info.flag) == r.flag);
    CHECK(std::string(info.flag_retries_exhausted) == r.exhausted);
    CHECK(std::string(info.flag_mid_response) == r.mid);
    CHECK(info.status == r.status);
  }
  CHECK(std::string(describe(AttemptFailure::PerTryTimeout).body) == "upstream request timeout");
  CHECK(std::string(describe(AttemptFailure::Reset).body) ==
        "upstream connect error or disconnect/reset before headers");
  CHECK(describe(AttemptFailure::ConnectFailure).counter == wp::stats::Id::upstream_rq_connect_failure);
  CHECK(describe(AttemptFailure::Reset).counter == wp::stats::Id::upstream_rq_reset);
  CHECK(describe(AttemptFailure::PerTryTimeout).counter == wp::stats::Id::upstream_rq_per_try_timeout);
  CHECK_FALSE(describe(AttemptFailure::RefusedStream).counter.has_value());
}

TEST_CASE("attempt failures: each UpstreamError maps to its failure", "[http][error]") {
  CHECK(wp::proxy::attempt_failure(UpstreamError::ConnectFailure) == AttemptFailure::ConnectFailure);
  CHECK(wp::proxy::attempt_failure(UpstreamError::Reset) == AttemptFailure::Reset);
  CHECK(wp::proxy::attempt_failure(UpstreamError::RefusedStream) == AttemptFailure::RefusedStream);
  CHECK(wp::proxy::attempt_failure(UpstreamError::Protocol) == AttemptFailure::Protocol);
}
