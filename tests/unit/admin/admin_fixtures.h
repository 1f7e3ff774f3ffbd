#pragma once
// Shared by the admin tests: config/bookinfo.yaml loaded from disk next to generated certificates
// (as tests/unit/config/examples_test.cpp does), and a richer namespace with sniffed and TCP ports,
// matches, retries, faults, a TCP route and AuthorizationPolicies.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "unit/config/fixtures.h"
#include "unit/router/router_fixtures.h"
#include "waypoint/config/snapshot.h"

namespace wp::admin::testing {

inline std::filesystem::path source_dir() {
  return std::filesystem::path(__FILE__).parent_path();
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

inline config::SnapshotPtr bookinfo() {
  auto source = source_dir() / "../../../config/bookinfo.yaml";
  std::string copy = config::testing::fixture_dir() + "/bookinfo.yaml";
  config::testing::write_file(copy, read_text(source));
  return config::load_snapshot(copy);
}

// router_fixtures' services (reviews http, ratings http + sniffed 9443, echo tcp) and pods, plus
// routing and authorization that exercise every field the admin API prints.
inline config::SnapshotPtr rich() {
  return router::testing::load(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool: {http: {http2MaxRequests: 100, maxRetries: 3}}
    outlierDetection: {consecutive5xxErrors: 3, interval: 5s, baseEjectionTime: 15s, maxEjectionPercent: 50}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: api
    match:
    - uri: {prefix: /api}
      method: {exact: GET}
      headers: {end-user: {exact: jason}}
    - uri: {regex: "/v[0-9]+/.*"}
    route:
    - destination: {host: reviews, subset: v2}
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset"}
    timeout: 10s
    fault: {abort: {httpStatus: 503, percentage: {value: 10}}}
  - name: split
    route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v3}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  tcp:
  - route: [{destination: {host: echo, port: {number: 7000}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}]
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/*"], notNamespaces: ["*-test"], ipBlocks: ["10.0.0.0/8", "10.1.2.3"]}}]
    to: [{operation: {methods: [GET], paths: ["/api*"], ports: ["9080"]}}]
    when: [{key: "request.headers[x-user]", values: ["*"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-echo}
spec:
  targetRefs: [{kind: Service, group: "", name: echo}]
  action: DENY
  rules:
  - {}
)");
}

}  // namespace wp::admin::testing
