#include "waypoint/proxy/upstream_error.h"

namespace wp::proxy {

namespace {

using Kind = router::Outcome::Kind;
constexpr const char* kResetBody = "upstream connect error or disconnect/reset before headers";

// Indexed by AttemptFailure.
const AttemptFailureInfo kInfo[] = {
    // ConnectFailure: no tunnel (dial, TLS, CONNECT refused, connectTimeout)
    {Kind::ConnectFailure, "UF", "URX,UF", "UC", 503, kResetBody, stats::Id::upstream_rq_connect_failure},
    // Reset: the tunnel or stream ended before the response did
    {Kind::Reset, "UC", "URX,UC", "UC", 503, kResetBody, stats::Id::upstream_rq_reset},
    // RefusedStream: h2c REFUSED_STREAM, never processed
    {Kind::RefusedStream, "UC", "URX,UC", "UC", 503, kResetBody, std::nullopt},
    // Protocol: a response the codec refused
    {Kind::Reset, "UPE", "URX,UPE", "UC", 502, kResetBody, std::nullopt},
    // PerTryTimeout
    {Kind::Timeout, "UT", "URX,UT", "UT", 504, "upstream request timeout", stats::Id::upstream_rq_per_try_timeout},
};

}  // namespace

AttemptFailure attempt_failure(UpstreamError e) {
  switch (e) {
    case UpstreamError::ConnectFailure:
      return AttemptFailure::ConnectFailure;
    case UpstreamError::RefusedStream:
      return AttemptFailure::RefusedStream;
    case UpstreamError::Protocol:
      return AttemptFailure::Protocol;
    case UpstreamError::Reset:
      break;
  }
  return AttemptFailure::Reset;
}

const AttemptFailureInfo& describe(AttemptFailure f) {
  return kInfo[static_cast<int>(f)];
}

}  // namespace wp::proxy
