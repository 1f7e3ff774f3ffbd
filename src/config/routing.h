#pragma once
// Private to config/: VirtualService, DestinationRule and HTTPRoute as read from the file, before
// their destinations are resolved against the served Services (routing_parse.cpp), and the step
// that compiles them into the Snapshot's clusters and route tables (routing_compile.cpp).
// Everything that can be checked without other resources (regexes, durations, percentages,
// retryOn tokens, weights) is checked while parsing; references are checked while compiling.

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
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

// Binds VirtualServices, DestinationRules and HTTPRoutes to the served Services, then compiles the
// route tables of one Service port at a time into a Snapshot's route_tables, tcp_routes and
// clusters. The Kubernetes API mode keeps it between loads (Compiler), so that a change rebuilds the
// tables of the Services it touches alone. Services are numbered as in Snapshot::services.
class RoutingCompiler {
 public:
  // Binds every routing resource of `res` to the served Services of `s` (s.services filled);
  // reports bindings that do not apply (warnings) and unknown hosts, ports and subsets (errors).
  void bind(const Resources& res, const Snapshot& s, Diagnostics& diag);

  struct Tables {
    std::shared_ptr<const RouteTable> http;    // http and sniffed ports
    std::shared_ptr<const TcpRouteTable> tcp;  // tcp and sniffed ports with a VirtualService tcp[] route
  };
  // The tables of port `port` of Service `i`, creating the clusters they send to in `s.clusters`
  // unless there already; the names of those clusters are appended to `used`.
  Tables build(size_t i, const ServicePort& port, Snapshot& s, std::vector<std::string>& used);

  // Incremental compiles. Service `i` is now `svc` (a rebuilt piece of the same Service).
  void set_service(size_t i, const Service* svc) { services_[i] = svc; }
  // Checks again the destinations of the routes bound to Service `i`; false on an error.
  bool check(size_t i);
  // The Services a routing resource is bound to (as a winner: its routes or subsets apply there).
  std::vector<size_t> bound(const VirtualServiceSpec* vs) const;
  std::vector<size_t> bound(const DestinationRuleSpec* dr) const;
  std::vector<size_t> bound(const HttpRouteResource* route) const;
  // The routing resources bound again (the Services unchanged), as bind() binds them, after some
  // were added, removed or rebound: returns the Services whose DestinationRule, VirtualService or
  // HTTPRoutes are not the ones they had. Reports go to `diag` as bind()'s do.
  std::vector<size_t> rebind(const std::vector<const DestinationRuleSpec*>& destination_rules,
                             const std::vector<const VirtualServiceSpec*>& virtual_services,
                             const std::vector<const HttpRouteResource*>& http_routes, Diagnostics& diag);
  // A resource replaced by a new version that binds the same way (same hosts, host, parents).
  void replace(const VirtualServiceSpec* old, const VirtualServiceSpec* now);
  void replace(const DestinationRuleSpec* old, const DestinationRuleSpec* now);
  void replace(const HttpRouteResource* old, const HttpRouteResource* now);
  // Same hosts / host / parents: a new version of the resource binds as the old one did.
  static bool binds_alike(const VirtualServiceSpec& a, const VirtualServiceSpec& b);
  static bool binds_alike(const DestinationRuleSpec& a, const DestinationRuleSpec& b);
  static bool binds_alike(const HttpRouteResource& a, const HttpRouteResource& b);

 private:
  struct BoundRoute {
    const HttpRouteResource* route;
    uint16_t port;
  };
  std::optional<size_t> find_index(const std::string& host) const;
  const Service* find_service(const std::string& host) const;
  std::string unknown_service(const std::string& host) const;
  const SubsetSpec* find_subset(size_t service, const std::string& name) const;
  bool check_destination(Reader& r, const DestinationRef& d) const;
  void check_route_destinations(Reader& r, const HttpRouteSpec& spec) const;
  void bind_all(const std::vector<const DestinationRuleSpec*>& destination_rules,
                const std::vector<const VirtualServiceSpec*>& virtual_services,
                const std::vector<const HttpRouteResource*>& http_routes, Diagnostics& diag);
  void bind_destination_rules(const std::vector<const DestinationRuleSpec*>& destination_rules, Diagnostics& diag);
  void bind_http_routes(const std::vector<const HttpRouteResource*>& http_routes, Diagnostics& diag);
  void bind_virtual_services(const std::vector<const VirtualServiceSpec*>& virtual_services, Diagnostics& diag);
  const RoutedCluster* cluster(size_t service, const ServicePort& port, const std::string& subset,
                               std::string_view protocol, Snapshot& s, std::vector<std::string>& used) const;
  const RoutedCluster* resolve(const DestinationRef& d, uint16_t table_port, std::string_view protocol, Snapshot& s,
                               std::vector<std::string>& used) const;
  std::optional<Route> build_route(const HttpRouteSpec& spec, uint16_t table_port, bool gateway_api, Snapshot& s,
                                   std::vector<std::string>& used) const;
  std::shared_ptr<const RouteTable> http_table(size_t i, const ServicePort& port, Snapshot& s,
                                               std::vector<std::string>& used) const;
  std::shared_ptr<const TcpRouteTable> tcp_table(size_t i, const ServicePort& port, Snapshot& s,
                                                 std::vector<std::string>& used) const;

  std::string namespace_;
  std::vector<const Service*> services_;           // the served Services, in order
  std::unordered_map<std::string, size_t> hosts_;  // every name a host may use for one of them
  std::vector<const DestinationRuleSpec*> rules_;  // per Service (null: none)
  std::vector<const VirtualServiceSpec*> virtual_services_;
  std::vector<std::vector<BoundRoute>> http_routes_;
};

// Exposed for tests: an Istio retryOn token list ("5xx,gateway-error,503") into `policy`;
// returns the first unknown token, or "" when all are known.
std::string parse_retry_on(std::string_view text, RetryPolicy& policy);

}  // namespace wp::config
