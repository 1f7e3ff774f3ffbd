#pragma once
// Shared by the router tests: a small bookinfo-like namespace (reviews v1/v2/v3, ratings, echo),
// request views over in-memory headers, and table lookups.
#include <string>
#include <utility>
#include <vector>

#include "../config/fixtures.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/router/policy.h"
#include "waypoint/router/retry.h"
#include "waypoint/router/route_match.h"

namespace wp::router::testing {

// Services reviews (10.96.0.20:9080 http), ratings (10.96.0.12:9080 http, 9443 sniffed), echo
// (10.96.0.30:7000 tcp); pods reviews-v1/v2/v3 (label version) and ratings-v1, echo-1.
inline std::string services() {
  return R"(apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec: {clusterIP: 10.96.0.12, ports: [{name: http, port: 9080}, {name: other, port: 9443}], selector: {app: ratings}}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec: {clusterIP: 10.96.0.30, ports: [{name: tcp, port: 7000}], selector: {app: echo}}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, labels: {app: reviews, version: v2}}
status: {podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v3, labels: {app: reviews, version: v3}}
status: {podIP: 10.0.0.3}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-v1, labels: {app: ratings, version: v1}}
status: {podIP: 10.0.0.4}
---
apiVersion: v1
kind: Pod
metadata: {name: echo-1, labels: {app: echo}}
status: {podIP: 10.0.0.5}
)";
}

// The reviews DestinationRule with subsets v1, v2, v3 by label version.
inline std::string reviews_rule(const std::string& extra = "") {
  return R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
)" + extra;
}

// The reviews VirtualService with `http` as its http: list (YAML at the list's indentation, 2).
inline std::string reviews_vs(const std::string& http) {
  return R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
)" + http;
}

// `docs` (each ending in a newline, separated by ---) plus the services and the bootstrap.
inline config::SnapshotPtr load(const std::string& docs) {
  return config::testing::load(docs + "---\n" + services() + config::testing::base_config());
}

inline std::string errors(const std::string& docs) {
  return config::testing::errors(docs + "---\n" + services() + config::testing::base_config());
}

inline const config::RouteTable& table(const config::Snapshot& s, const std::string& vip) {
  const config::RouteTable* t = s.find_routes(*net::SockAddr::parse(vip));
  if (t == nullptr) {
    throw std::runtime_error("no route table for " + vip);
  }
  return *t;
}

class FakeHeaders : public HeaderSource {
 public:
  FakeHeaders() = default;
  FakeHeaders(std::initializer_list<std::pair<std::string, std::string>> h) : headers_(h) {}
  std::optional<std::string_view> get(std::string_view name) const override {
    for (const auto& [k, v] : headers_) {
      if (k == name) {
        return std::string_view(v);
      }
    }
    return std::nullopt;
  }

 private:
  std::vector<std::pair<std::string, std::string>> headers_;
};

// A request view for `target` ("/path?query"); the FakeHeaders must outlive it.
inline RequestView request(std::string_view method, std::string_view target, const FakeHeaders* headers = nullptr,
                           std::string_view authority = "reviews:9080", uint16_t port = 9080) {
  RequestView r;
  r.method = method;
  split_target(target, r.path, r.query);
  r.authority = authority;
  r.port = port;
  r.headers = headers;
  return r;
}

// The route name that `r` takes through `t`, or "404".
inline std::string route_of(const config::RouteTable& t, const RequestView& r) {
  const config::Route* route = match(t, r);
  return route == nullptr ? "404" : route->name;
}

}  // namespace wp::router::testing
