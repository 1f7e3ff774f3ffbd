#pragma once
// One typed error for an upstream attempt that failed (Pingora's {etype, source, retry}): what the
// retry policy sees, the response flag, the local reply and the counter are decided here, once per
// kind of failure, not at each place that notices one.
#include <cstdint>
#include <optional>

#include "waypoint/proxy/upstream.h"
#include "waypoint/router/retry.h"
#include "waypoint/stats/stats.h"

namespace wp::proxy {

// How an attempt failed: the pool's or the stream's UpstreamError, or its per-try timeout.
enum class AttemptFailure : uint8_t { ConnectFailure, Reset, RefusedStream, Protocol, PerTryTimeout };

AttemptFailure attempt_failure(UpstreamError e);

struct AttemptFailureInfo {
  router::Outcome::Kind retry_kind;    // what retryOn / retry_on sees
  const char* flag;                    // the Envoy response flag when it ends the request
  const char* flag_retries_exhausted;  // the same, once the retries ran out (URX)
  const char* flag_mid_response;       // when the response had started: the client sees it cut short
  int status;                          // the local reply when nothing was sent yet
  const char* body;
  std::optional<stats::Id> counter;  // counted when it happens
};

const AttemptFailureInfo& describe(AttemptFailure f);

}  // namespace wp::proxy
