// Retry decisions: Istio's default policy, each retryOn condition, status codes, exhaustion.
#include <catch2/catch.hpp>

#include "config/routing.h"
#include "router_fixtures.h"

namespace wp::router {
namespace {

using Kind = Outcome::Kind;
using Reason = RetryDecision::Reason;

Outcome status(uint16_t code, int grpc = -1) {
  return Outcome{Kind::Response, code, grpc, false};
}
Outcome failure(Kind kind) {
  return Outcome{kind, 0, -1, false};
}

config::RetryPolicy policy(std::string_view retry_on, uint32_t retries = 3) {
  config::RetryPolicy p;
  p.num_retries = retries;
  REQUIRE(config::parse_retry_on(retry_on, p).empty());
  return p;
}

TEST_CASE("router: the default retry policy is Istio's", "[router]") {
  auto s = testing::load("");
  const config::RetryPolicy& p = testing::table(*s, "10.96.0.20:9080").routes.at(0).retry;
  CHECK(p.num_retries == 2);
  CHECK(p.retry_on == (config::kRetryConnectFailure | config::kRetryRefusedStream | config::kRetryGrpcUnavailable |
                       config::kRetryGrpcCancelled | config::kRetryRetriableStatusCodes));
  CHECK(p.retriable_status_codes == std::vector<uint16_t>{503});
  CHECK(p.previous_hosts);
  CHECK(p.host_selection_attempts == 5);
  CHECK_FALSE(p.per_try_timeout);
  CHECK_FALSE(testing::table(*s, "10.96.0.20:9080").routes.at(0).timeout);

  CHECK(should_retry(p, 1, failure(Kind::ConnectFailure)).retry);
  CHECK(should_retry(p, 2, failure(Kind::RefusedStream)).retry);
  CHECK(should_retry(p, 1, status(503)).retry);
  CHECK(should_retry(p, 1, status(200, 14)).retry);  // grpc UNAVAILABLE
  CHECK(should_retry(p, 1, status(200, 1)).retry);   // grpc CANCELLED
  CHECK_FALSE(should_retry(p, 1, status(500)).retry);
  CHECK_FALSE(should_retry(p, 1, status(502)).retry);
  CHECK_FALSE(should_retry(p, 1, failure(Kind::Reset)).retry);
  CHECK_FALSE(should_retry(p, 1, failure(Kind::Timeout)).retry);
  CHECK_FALSE(should_retry(p, 1, status(200, 4)).retry);
  RetryDecision exhausted = should_retry(p, 3, failure(Kind::ConnectFailure));
  CHECK_FALSE(exhausted.retry);
  CHECK(exhausted.reason == Reason::AttemptsExhausted);
  CHECK(should_retry(p, 1, status(200)).reason == Reason::NotRetriable);
}

TEST_CASE("router: retry decisions for each retryOn condition", "[router]") {
  struct Row {
    std::string_view retry_on;
    Outcome outcome;
    bool retry;
  };
  const Row rows[] = {
      {"5xx", status(500), true},
      {"5xx", status(503), true},
      {"5xx", status(599), true},
      {"5xx", status(404), false},
      {"5xx", status(200), false},
      {"5xx", failure(Kind::ConnectFailure), true},
      {"5xx", failure(Kind::RefusedStream), true},
      {"5xx", failure(Kind::Reset), true},
      {"5xx", failure(Kind::Timeout), true},
      {"5xx", failure(Kind::Overflow), false},
      {"gateway-error", status(502), true},
      {"gateway-error", status(503), true},
      {"gateway-error", status(504), true},
      {"gateway-error", status(500), false},
      {"gateway-error", failure(Kind::Reset), true},
      {"gateway-error", failure(Kind::ConnectFailure), true},
      {"reset", failure(Kind::Reset), true},
      {"reset", failure(Kind::Timeout), true},
      {"reset", failure(Kind::ConnectFailure), true},
      {"reset", status(503), false},
      {"reset-before-request", failure(Kind::ConnectFailure), true},
      {"reset-before-request", failure(Kind::Reset), false},
      {"connect-failure", failure(Kind::ConnectFailure), true},
      {"connect-failure", failure(Kind::Reset), false},
      {"connect-failure", failure(Kind::RefusedStream), false},
      {"connect-failure", status(503), false},
      {"refused-stream", failure(Kind::RefusedStream), true},
      {"refused-stream", failure(Kind::ConnectFailure), false},
      {"retriable-4xx", status(409), true},
      {"retriable-4xx", status(404), false},
      {"retriable-status-codes", status(503), false},  // no codes listed
      {"retriable-status-codes,418", status(418), true},
      {"418", status(418), true},  // a bare code implies retriable-status-codes
      {"418,429", status(429), true},
      {"418,429", status(500), false},
      {"envoy-ratelimited", Outcome{Kind::Response, 429, -1, true}, true},
      {"envoy-ratelimited", status(429), false},
      {"cancelled", status(200, 1), true},
      {"deadline-exceeded", status(200, 4), true},
      {"resource-exhausted", status(200, 8), true},
      {"internal", status(200, 13), true},
      {"unavailable", status(200, 14), true},
      {"unavailable", status(200, 13), false},
      {"unavailable", status(503), false},
      {"5xx, connect-failure ,", status(500), true},  // spaces and empty tokens are tolerated
  };
  for (const auto& row : rows) {
    INFO("retryOn " << row.retry_on << " outcome kind " << static_cast<int>(row.outcome.kind) << " status "
                    << row.outcome.status << " grpc " << row.outcome.grpc_status);
    CHECK(should_retry(policy(row.retry_on), 1, row.outcome).retry == row.retry);
  }
}

TEST_CASE("router: retries stop when the attempts are used up", "[router]") {
  config::RetryPolicy p = policy("5xx", 3);
  CHECK(should_retry(p, 1, status(500)).retry);
  CHECK(should_retry(p, 2, status(500)).retry);
  CHECK(should_retry(p, 3, status(500)).retry);
  CHECK(should_retry(p, 4, status(500)).reason == Reason::AttemptsExhausted);
  CHECK(should_retry(p, 0, status(500)).reason == Reason::AttemptsExhausted);
  config::RetryPolicy off = policy("5xx", 0);
  CHECK(should_retry(off, 1, status(500)).reason == Reason::RetriesDisabled);
  CHECK(should_retry(off, 1, status(200)).reason == Reason::NotRetriable);
}

TEST_CASE("router: unknown retryOn tokens are named", "[router]") {
  config::RetryPolicy p;
  CHECK(config::parse_retry_on("5xx,bogus", p) == "bogus");
  CHECK(config::parse_retry_on("99", p) == "99");
  CHECK(config::parse_retry_on("600", p) == "600");
  CHECK(config::parse_retry_on("5xx,retriable-headers", p) == "retriable-headers");
}

TEST_CASE("router: VirtualService retries, timeout and their Istio defaults", "[router]") {
  auto s = testing::load(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: custom
    match: [{uri: {prefix: /custom}}]
    route: [{destination: {host: reviews}}]
    retries: {attempts: 4, perTryTimeout: 250ms, retryOn: "gateway-error,503"}
    timeout: 3s
  - name: attempts-only
    match: [{uri: {prefix: /attempts}}]
    route: [{destination: {host: reviews}}]
    retries: {attempts: 5}
  - name: disabled
    match: [{uri: {prefix: /off}}]
    route: [{destination: {host: reviews}}]
    retries: {attempts: 0}
    timeout: 0s
  - name: list
    route: [{destination: {host: reviews}}]
    retries: {attempts: 1, retryOn: [reset, "409"]}
)");
  const auto& t = testing::table(*s, "10.96.0.20:9080");
  const config::Route& custom = t.routes.at(0);
  CHECK(custom.retry.num_retries == 4);
  CHECK(custom.retry.per_try_timeout == config::Millis{250});
  CHECK(custom.retry.retry_on == (config::kRetryGatewayError | config::kRetryRetriableStatusCodes));
  CHECK(custom.retry.retriable_status_codes == std::vector<uint16_t>{503});
  CHECK(custom.timeout == config::Millis{3000});
  const config::Route& attempts = t.routes.at(1);
  CHECK(attempts.retry.num_retries == 5);
  CHECK(attempts.retry.retry_on == config::RetryPolicy{}.retry_on);  // default conditions kept
  const config::Route& off = t.routes.at(2);
  CHECK(off.retry.num_retries == 0);
  CHECK_FALSE(off.timeout);
  const config::Route& list = t.routes.at(3);
  CHECK(list.retry.retry_on == (config::kRetryReset | config::kRetryRetriableStatusCodes));
  CHECK(list.retry.retriable_status_codes == std::vector<uint16_t>{409});
}

}  // namespace
}  // namespace wp::router
