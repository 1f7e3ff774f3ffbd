#include "waypoint/router/retry.h"

#include <algorithm>

namespace wp::router {

namespace {

// gRPC status codes named by retryOn conditions.
constexpr int kGrpcCancelled = 1;
constexpr int kGrpcDeadlineExceeded = 4;
constexpr int kGrpcResourceExhausted = 8;
constexpr int kGrpcInternal = 13;
constexpr int kGrpcUnavailable = 14;

bool any(uint32_t bits, uint32_t mask) {
  return (bits & mask) != 0;
}

bool retriable_response(const config::RetryPolicy& p, const Outcome& o) {
  const uint32_t on = p.retry_on;
  if (any(on, config::kRetry5xx) && o.status >= 500 && o.status <= 599) {
    return true;
  }
  if (any(on, config::kRetryGatewayError) && (o.status == 502 || o.status == 503 || o.status == 504)) {
    return true;
  }
  if (any(on, config::kRetryRetriable4xx) && o.status == 409) {
    return true;
  }
  if (any(on, config::kRetryRetriableStatusCodes) &&
      std::find(p.retriable_status_codes.begin(), p.retriable_status_codes.end(), o.status) !=
          p.retriable_status_codes.end()) {
    return true;
  }
  if (any(on, config::kRetryEnvoyRateLimited) && o.rate_limited) {
    return true;
  }
  switch (o.grpc_status) {
    case kGrpcCancelled:
      return any(on, config::kRetryGrpcCancelled);
    case kGrpcDeadlineExceeded:
      return any(on, config::kRetryGrpcDeadlineExceeded);
    case kGrpcResourceExhausted:
      return any(on, config::kRetryGrpcResourceExhausted);
    case kGrpcInternal:
      return any(on, config::kRetryGrpcInternal);
    case kGrpcUnavailable:
      return any(on, config::kRetryGrpcUnavailable);
    default:
      return false;
  }
}

}  // namespace

bool retriable(const config::RetryPolicy& p, const Outcome& o) {
  // Envoy: 5xx, gateway-error and reset cover every failure without a response.
  constexpr uint32_t kAnyFailure = config::kRetry5xx | config::kRetryGatewayError | config::kRetryReset;
  switch (o.kind) {
    case Outcome::Kind::Response:
      return retriable_response(p, o);
    case Outcome::Kind::ConnectFailure:
      // Nothing reached the upstream: reset-before-request applies too.
      return any(p.retry_on, kAnyFailure | config::kRetryConnectFailure | config::kRetryResetBeforeRequest);
    case Outcome::Kind::RefusedStream:
      return any(p.retry_on, kAnyFailure | config::kRetryRefusedStream | config::kRetryResetBeforeRequest);
    case Outcome::Kind::Reset:
    case Outcome::Kind::Timeout:
      return any(p.retry_on, kAnyFailure);
    case Outcome::Kind::Overflow:
      return false;
  }
  return false;
}

RetryDecision should_retry(const config::RetryPolicy& policy, int attempt, const Outcome& outcome) {
  if (!retriable(policy, outcome)) {
    return {false, RetryDecision::Reason::NotRetriable};
  }
  if (policy.num_retries == 0) {
    return {false, RetryDecision::Reason::RetriesDisabled};
  }
  if (attempt < 1 || static_cast<uint32_t>(attempt) > policy.num_retries) {
    return {false, RetryDecision::Reason::AttemptsExhausted};
  }
  return {true, RetryDecision::Reason::Retriable};
}

}  // namespace wp::router
