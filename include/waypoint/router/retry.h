#pragma once
// The retry decision for one finished upstream attempt, with Envoy's retry_on semantics.
#include <cstdint>

#include "waypoint/config/snapshot.h"

namespace wp::router {

// How an upstream attempt ended.
struct Outcome {
  enum class Kind {
    Response,        // response headers arrived: see status / grpc_status
    ConnectFailure,  // the upstream connection (or its tunnel) could not be opened
    Reset,           // the stream was reset or the connection dropped before response headers
    RefusedStream,   // REFUSED_STREAM from the upstream
    Timeout,         // the per-try timeout fired before response headers
    Overflow,        // a connection-pool limit refused the attempt (never retried)
  };
  Kind kind = Kind::Response;
  uint16_t status = 0;        // Kind::Response
  int grpc_status = -1;       // grpc-status of the response headers, -1 when absent
  bool rate_limited = false;  // x-envoy-ratelimited in the response
};

struct RetryDecision {
  enum class Reason {
    Retriable,          // retry: the outcome matches a retryOn condition and attempts remain
    NotRetriable,       // the outcome matches no condition (or is a success)
    AttemptsExhausted,  // it would be retried, but every allowed retry was made
    RetriesDisabled,    // the policy allows no retries
  };
  bool retry = false;
  Reason reason = Reason::NotRetriable;
};

// `attempt` counts the attempts made so far, 1 after the first try: a retry is allowed while
// attempt <= policy.num_retries.
RetryDecision should_retry(const config::RetryPolicy& policy, int attempt, const Outcome& outcome);

// True when `outcome` matches one of the policy's retryOn conditions (attempts aside).
bool retriable(const config::RetryPolicy& policy, const Outcome& outcome);

}  // namespace wp::router
