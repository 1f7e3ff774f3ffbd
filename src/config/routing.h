#pragma once
// Private to config/: VirtualService, DestinationRule and HTTPRoute as read from the file, before
// their destinations are resolved against the served Services (routing_parse.cpp), and the step
// that compiles them into the Snapshot's clusters and route tables (routing_compile.cpp).
// Everything that can be checked without other resources (regexes, durations, percentages,
// retryOn tokens, weights) is checked while parsing; references are checked while compiling.

#include <optional>
#include <string>
#include <vector>

#include "config/reader.h"
#include "config/resources.h"
#include "waypoint/config/snapshot.h"

namespace wp::config {

// A destination as written: VirtualService route[].destination / mirror, HTTPRoute backendRef.
struct DestinationRef {
  std::string host;  // as written (short name, name.ns, FQDN)
  Mark host_at;
  std::string subset;
  Mark subset_at;
  uint16_t port = 0;  // 0: not given
  Mark port_at;
  uint32_t weight = 0;
  uint32_t per_million = 1'000'000;  // mirrors only
  std::string path;                  // "spec.http[0].route[1].destination"
  std::string host_key = "host";     // the field naming the service: "host" (Istio), "name" (Gateway API)
};

// One VirtualService http[] entry or one HTTPRoute rule. `route` is complete except for its
// clusters and mirrors, which compile fills from `destinations` and `mirrors`.
struct HttpRouteSpec {
  Route route;
  std::vector<uint16_t> match_ports;  // parallel to route.matches; 0 = any port
  std::vector<DestinationRef> destinations;
  std::vector<DestinationRef> mirrors;
};

struct TcpRouteSpec {
  std::vector<uint16_t> ports;  // match[].port; empty = any port
  std::vector<DestinationRef> destinations;
};

struct HostRef {
  std::string host;
  Mark at;
  std::string path;
};

struct VirtualServiceSpec {
  std::string name;
  Mark at;
  std::vector<HostRef> hosts;
  std::vector<HttpRouteSpec> http;
  std::vector<TcpRouteSpec> tcp;
};

// A trafficPolicy and which of its groups were given (a subset's groups replace the top level's).
struct PolicySpec {
  ClusterPolicy policy;
  bool has_load_balancer = false;
  bool has_connection_pool = false;
  bool has_outlier_detection = false;
};

struct SubsetSpec {
  std::string name;
  std::map<std::string, std::string> labels;
  PolicySpec policy;
  bool has_policy = false;
};

struct DestinationRuleSpec {
  std::string name;
  Mark at;
  HostRef host;
  PolicySpec policy;
  std::vector<SubsetSpec> subsets;
};

struct ParentRef {
  std::string service;
  Mark at;
  uint16_t port = 0;  // 0: every port
  std::string path;
};

struct HttpRouteResource {
  std::string name;
  Mark at;
  std::vector<ParentRef> parents;  // kind Service only
  std::vector<HttpRouteSpec> rules;
};

struct RoutingResources {
  std::vector<VirtualServiceSpec> virtual_services;
  std::vector<DestinationRuleSpec> destination_rules;
  std::vector<HttpRouteResource> http_routes;
};

// Each reports its problems to `diag` and appends the resource to `out` unless it is unusable.
void parse_virtual_service(const Node& doc, const ObjectMeta& meta, Diagnostics& diag, RoutingResources& out);
void parse_destination_rule(const Node& doc, const ObjectMeta& meta, Diagnostics& diag, RoutingResources& out);
void parse_http_route(const Node& doc, const ObjectMeta& meta, const Bootstrap& bootstrap, Diagnostics& diag,
                      RoutingResources& out);

// Builds snapshot.clusters, route_tables and tcp_routes from the served Services and Pods already
// in `snapshot`; reports unknown hosts, services and subsets.
void compile_routing(const RoutingResources& routing, Diagnostics& diag, Snapshot& snapshot);

// Exposed for tests: an Istio retryOn token list ("5xx,gateway-error,503") into `policy`;
// returns the first unknown token, or "" when all are known.
std::string parse_retry_on(std::string_view text, RetryPolicy& policy);

}  // namespace wp::config
