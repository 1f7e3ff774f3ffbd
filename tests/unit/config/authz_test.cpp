// AuthorizationPolicy documents: what is read into the compiled policy sets, and every error and
// warning with its position.
#include <catch2/catch.hpp>

#include <algorithm>

#include "fixtures.h"

namespace wp::config {
namespace {

using testing::base_config;
using testing::errors;
using testing::load;

const char* kServices = R"(apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: http, port: 9080}]
  selector: {app: reviews}
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  clusterIP: 10.96.0.21
  ports: [{name: http, port: 9080}]
  selector: {app: ratings}
---
)";

// An AuthorizationPolicy named p whose spec lines start on line 4.
std::string policy(const std::string& spec) {
  return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n" + spec + "---\n" +
         kServices + base_config().substr(4);
}

bool has_warning(const SnapshotPtr& s, const std::string& part) {
  return std::any_of(s->warnings.begin(), s->warnings.end(),
                     [&](const std::string& w) { return w.find(part) != std::string::npos; });
}

filters::Attributes from(std::string_view principal) {
  filters::Attributes a;
  a.principal = principal;
  a.source_ip = *net::IpAddr::parse("10.1.2.3");
  a.remote_ip = a.source_ip;
  a.destination_ip = *net::IpAddr::parse("10.96.0.20");
  a.destination_port = 9080;
  a.http = true;
  a.method = "GET";
  a.path = "/";
  a.host = "reviews";
  return a;
}

TEST_CASE("config: an AuthorizationPolicy on the Gateway applies to every served Service", "[config][authz]") {
  auto s = load(policy(R"(  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/productpage"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/reviews*"], ports: ["9080"]}}]
    when: [{key: "request.headers[x-user]", values: ["alice"]}]
)"));
  REQUIRE(s);
  CHECK(s->authz_policy_count == 1);
  CHECK_FALSE(s->authz_gateway.empty());
  REQUIRE(s->authz_services.count("reviews") == 1);
  REQUIRE(s->authz_services.count("ratings") == 1);
  CHECK_FALSE(s->authz_services.at("ratings").empty());
  CHECK(s->warnings.empty());
}

TEST_CASE("config: an AuthorizationPolicy on a Service applies to that Service only", "[config][authz]") {
  auto s = load(policy(R"(  targetRefs: [{kind: Service, group: "", name: reviews}]
  action: DENY
  rules: [{from: [{source: {namespaces: ["other"]}}]}]
)"));
  REQUIRE(s);
  CHECK(s->authz_gateway.empty());
  CHECK_FALSE(s->authz_services.at("reviews").empty());
  CHECK(s->authz_services.at("ratings").empty());
  // The compiled set decides: a DENY on the namespace "other".
  CHECK_FALSE(s->authz_services.at("reviews").evaluate(from("spiffe://cluster.local/ns/other/sa/x")).allowed);
  CHECK(s->authz_services.at("reviews").evaluate(from("spiffe://cluster.local/ns/default/sa/x")).allowed);
}

TEST_CASE("config: AuthorizationPolicies that target nothing here are ignored with a warning", "[config][authz]") {
  auto none = load(policy("  action: DENY\n  rules: [{}]\n"));
  CHECK(none->authz_policy_count == 0);
  CHECK(none->authz_services.at("reviews").empty());
  CHECK(has_warning(none, "cfg.yaml:5:3: AuthorizationPolicy p: spec.targetRefs: none: ignored"));

  auto selector = load(policy("  selector: {matchLabels: {app: reviews}}\n  action: DENY\n  rules: [{}]\n"));
  CHECK(selector->authz_policy_count == 0);
  CHECK(has_warning(selector, "spec.targetRefs: none: ignored"));

  auto other_gateway = load(policy("  targetRefs: [{kind: Gateway, name: other}]\n  rules: [{}]\n"));
  CHECK(other_gateway->authz_policy_count == 0);
  CHECK(has_warning(other_gateway, "Gateway other is not this waypoint (waypoint); this target is ignored"));

  auto unserved = load(policy("  targetRefs: [{kind: Service, name: nosuch}, {kind: Service, name: reviews}]\n"));
  CHECK(unserved->authz_policy_count == 1);
  CHECK(has_warning(unserved, "Service nosuch is not served by this waypoint"));
}

TEST_CASE("config: HTTP fields in a policy on a TCP service are a warning", "[config][authz]") {
  std::string tcp_service =
      "---\napiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: 10.96.0.30\n"
      "  ports: [{name: tcp, port: 5432, appProtocol: tcp}]\n  selector: {app: db}\n";
  auto s = load(policy("  targetRefs: [{kind: Service, name: db}]\n"
                       "  rules: [{to: [{operation: {methods: [GET]}}]}]\n") +
                tcp_service);
  CHECK(has_warning(s,
                    "AuthorizationPolicy default/p: HTTP fields (hosts, methods, paths, request.headers) cannot "
                    "apply to the TCP ports of Service db: there the rules using them never match (fail closed)"));
  auto l4 = load(policy("  targetRefs: [{kind: Service, name: db}]\n"
                        "  rules: [{to: [{operation: {ports: [\"5432\"]}}]}]\n") +
                 tcp_service);
  CHECK_FALSE(has_warning(l4, "HTTP fields"));
}

TEST_CASE("config: AuthorizationPolicy errors point at the field", "[config][authz]") {
  struct Case {
    std::string spec;
    std::string error;
  };
  const std::string gw = "  targetRefs: [{kind: Gateway, name: waypoint}]\n";
  const Case cases[] = {
      {gw + "  action: CUSTOM\n",
       "cfg.yaml:6:11: AuthorizationPolicy p: spec.action: CUSTOM (an external authorizer) is not supported by the "
       "waypoint"},
      {gw + "  action: allow\n",
       "cfg.yaml:6:11: AuthorizationPolicy p: spec.action: \"allow\" is not ALLOW, DENY or AUDIT"},
      {gw + "  rules:\n  - when: [{key: \"request.auth.claims[iss]\", values: [x]}]\n",
       "cfg.yaml:7:18: AuthorizationPolicy p: spec.rules[0].when[0].key: unknown key \"request.auth.claims[iss]\" "
       "(Istio ignores unknown keys silently; the waypoint refuses them so a typo cannot open access)"},
      {gw + "  rules:\n  - when: [{key: source.ip}]\n",
       "cfg.yaml:7:12: AuthorizationPolicy p: spec.rules[0].when[0]: needs values or notValues"},
      {gw + "  rules:\n  - from: [{source: {ipBlocks: [10.0.0.0/33]}}]\n",
       "cfg.yaml:7:33: AuthorizationPolicy p: spec.rules[0].from[0].source.ipBlocks[0]: \"10.0.0.0/33\" is not an IP "
       "address or CIDR"},
      {gw + "  rules:\n  - to: [{operation: {ports: [\"http\"]}}]\n",
       "cfg.yaml:7:31: AuthorizationPolicy p: spec.rules[0].to[0].operation.ports[0]: \"http\" is not a port "
       "(1..65535)"},
      {gw + "  rules:\n  - from: [{source: {requestPrincipals: [\"*\"]}}]\n",
       "cfg.yaml:7:41: AuthorizationPolicy p: spec.rules[0].from[0].source.requestPrincipals: request principals need "
       "RequestAuthentication (JWT), which the waypoint does not do"},
      {gw + "  rules:\n  - from: [{principals: [a]}]\n",
       "cfg.yaml:7:12: AuthorizationPolicy p: spec.rules[0].from[0].source: required"},
  };
  for (const auto& c : cases) {
    INFO(c.spec);
    CHECK(errors(policy(c.spec)) == c.error);
  }
}

}  // namespace
}  // namespace wp::config
