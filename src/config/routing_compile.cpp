// Routing specs → the Snapshot's clusters and route tables. Runs after compile() has filled the
// served Services and Pods. Binding rules:
//  - a VirtualService binds to the served Services its hosts name (short name, name.ns, FQDN); the
//    first VirtualService in file order wins a Service, later ones are reported and skipped for it;
//  - HTTPRoutes bind through Service parentRefs (optionally one port); all HTTPRoutes of a Service
//    port are merged, one route per match, ordered by Gateway API precedence as Istio does it
//    (see gateway_precedence); a Service with an HTTPRoute ignores VirtualServices (reported);
//  - a DestinationRule gives a Service its subsets and traffic policy (the first one in file order).
// Every http or sniffed port of a served Service gets a route table; without a VirtualService or
// HTTPRoute it holds one default route to the Service's cluster.
#include <algorithm>
#include <unordered_map>

#include "config/routing.h"

namespace wp::config {

namespace {

bool labels_match(const std::map<std::string, std::string>& want, const std::map<std::string, std::string>& have) {
  return std::all_of(want.begin(), want.end(), [&](const auto& kv) {
    auto it = have.find(kv.first);
    return it != have.end() && it->second == kv.second;
  });
}

ClusterPolicy merge(const PolicySpec& top, const PolicySpec* subset) {
  ClusterPolicy out = top.policy;
  if (subset == nullptr) {
    return out;
  }
  const ClusterPolicy& s = subset->policy;
  if (subset->has_load_balancer) {
    out.load_balancer = s.load_balancer;
    out.hash_header = s.hash_header;
  }
  if (subset->has_connection_pool) {
    out.max_connections = s.max_connections;
    out.http1_max_pending_requests = s.http1_max_pending_requests;
    out.http2_max_requests = s.http2_max_requests;
    out.max_requests_per_connection = s.max_requests_per_connection;
    out.max_retries = s.max_retries;
  }
  if (subset->has_outlier_detection) {
    out.outlier_detection = s.outlier_detection;
    out.consecutive_5xx_errors = s.consecutive_5xx_errors;
    out.outlier_interval = s.outlier_interval;
    out.base_ejection_time = s.base_ejection_time;
    out.max_ejection_percent = s.max_ejection_percent;
  }
  return out;
}

int uri_rank(const RouteMatch& m) {
  if (!m.uri) {
    return -1;
  }
  switch (m.uri->kind) {
    case StringMatch::Kind::Exact:
      return 3;
    case StringMatch::Kind::Prefix:
    case StringMatch::Kind::PathPrefix:
      return 2;
    case StringMatch::Kind::Regex:
      return 1;
  }
  return -1;
}

// Gateway API match precedence, as Istio orders HTTPRoute matches: exact path, then prefix, then
// regex; a longer path first; then a method match; then more header matches; then more query
// parameter matches. Ties keep file order (HTTPRoutes in file order, rules in order).
bool gateway_precedence(const Route& a, const Route& b) {
  const RouteMatch& m1 = a.matches.front();
  const RouteMatch& m2 = b.matches.front();
  int r1 = uri_rank(m1), r2 = uri_rank(m2);
  size_t l1 = m1.uri ? m1.uri->value.size() : 0, l2 = m2.uri ? m2.uri->value.size() : 0;
  if (r1 != r2) {
    return r1 > r2;
  }
  if (l1 != l2) {
    return l1 > l2;
  }
  if (m1.method.has_value() != m2.method.has_value()) {
    return m1.method.has_value();
  }
  if (m1.headers.size() != m2.headers.size()) {
    return m1.headers.size() > m2.headers.size();
  }
  return m1.query_params.size() > m2.query_params.size();
}

void finish_weights(std::vector<WeightedCluster>& clusters, std::vector<uint32_t>& cumulative, uint32_t& total) {
  total = 0;
  cumulative.clear();
  for (const auto& c : clusters) {
    total += c.weight;
    cumulative.push_back(total);
  }
}

class RoutingCompiler {
 public:
  RoutingCompiler(const RoutingResources& routing, Diagnostics& diag, Snapshot& snapshot)
      : routing_(routing), diag_(diag), s_(snapshot) {
    // Every name a host may use for a served Service; the first Service in order wins a name.
    for (const Service& svc : s_.services) {
      const std::string ns = svc.name + "." + svc.namespace_;
      for (std::string name : {svc.name, ns, ns + ".svc", svc.fqdn}) {
        hosts_.emplace(std::move(name), &svc);
      }
    }
  }

  void run() {
    bind_destination_rules();
    bind_http_routes();
    bind_virtual_services();
    if (diag_.error_count() != errors_before_) {
      return;
    }
    build_tables();
  }

 private:
  // Short name, name.ns, name.ns.svc, or the FQDN of a served Service.
  const Service* find_service(const std::string& host) const {
    auto it = hosts_.find(host);
    return it == hosts_.end() ? nullptr : it->second;
  }

  std::string unknown_service(const std::string& host) const {
    return "unknown service " + host + " (not a served Service of namespace " + s_.bootstrap.namespace_ + ")";
  }

  void bind_destination_rules() {
    for (const auto& dr : routing_.destination_rules) {
      Reader r(diag_, "DestinationRule " + dr.name);
      const Service* svc = find_service(dr.host.host);
      if (svc == nullptr) {
        r.warn(dr.host.at, dr.host.path, "host " + dr.host.host + " names no served service; ignored");
        continue;
      }
      auto [it, inserted] = rules_.emplace(svc, &dr);
      if (!inserted) {
        r.warn(dr.host.at, dr.host.path,
               "service " + svc->name + " already has DestinationRule " + it->second->name + "; ignored");
      }
    }
  }

  const SubsetSpec* find_subset(const Service& svc, const std::string& name) const {
    auto it = rules_.find(&svc);
    if (it == rules_.end()) {
      return nullptr;
    }
    for (const auto& subset : it->second->subsets) {
      if (subset.name == name) {
        return &subset;
      }
    }
    return nullptr;
  }

  // Checks a destination's service, port and subset; reports problems at the offending field.
  bool check_destination(Reader& r, const DestinationRef& d) {
    const Service* svc = find_service(d.host);
    if (svc == nullptr) {
      r.error(d.host_at, d.path + "." + d.host_key, unknown_service(d.host));
      return false;
    }
    bool ok = true;
    if (d.port != 0 &&
        std::none_of(svc->ports.begin(), svc->ports.end(), [&](const ServicePort& p) { return p.port == d.port; })) {
      r.error(d.port_at, d.path + (d.host_key == "host" ? ".port.number" : ".port"),
              "service " + svc->name + " has no port " + std::to_string(d.port));
      ok = false;
    }
    if (svc->ports.empty()) {
      r.error(d.host_at, d.path + "." + d.host_key, "service " + svc->name + " has no ports");
      ok = false;
    }
    if (!d.subset.empty() && find_subset(*svc, d.subset) == nullptr) {
      auto rule = rules_.find(svc);
      std::string known;
      if (rule != rules_.end()) {
        for (const auto& subset : rule->second->subsets) {
          known += (known.empty() ? "" : ", ") + subset.name;
        }
      }
      r.error(d.subset_at, d.path + ".subset",
              "unknown subset " + d.subset + " of " + svc->name +
                  (rule == rules_.end()
                       ? " (no DestinationRule for " + svc->name + ")"
                       : " (DestinationRule " + rule->second->name + " has " + (known.empty() ? "none" : known) + ")"));
      ok = false;
    }
    return ok;
  }

  void check_route_destinations(Reader& r, const HttpRouteSpec& spec) {
    for (const auto& d : spec.destinations) {
      check_destination(r, d);
    }
    for (const auto& d : spec.mirrors) {
      check_destination(r, d);
    }
  }

  void bind_http_routes() {
    for (const auto& route : routing_.http_routes) {
      Reader r(diag_, "HTTPRoute " + route.name);
      size_t bound = 0;
      for (const auto& parent : route.parents) {
        const Service* svc = find_service(parent.service);
        if (svc == nullptr) {
          r.error(parent.at, parent.path + ".name", unknown_service(parent.service));
          continue;
        }
        if (parent.port != 0 && std::none_of(svc->ports.begin(), svc->ports.end(),
                                             [&](const ServicePort& p) { return p.port == parent.port; })) {
          r.error(parent.at, parent.path + ".port",
                  "service " + svc->name + " has no port " + std::to_string(parent.port));
          continue;
        }
        http_routes_[svc].push_back({&route, parent.port});
        ++bound;
      }
      if (bound == 0) {
        continue;
      }
      for (const auto& rule : route.rules) {
        check_route_destinations(r, rule);
      }
    }
  }

  void bind_virtual_services() {
    for (const auto& vs : routing_.virtual_services) {
      Reader r(diag_, "VirtualService " + vs.name);
      size_t bound = 0;
      for (const auto& host : vs.hosts) {
        const Service* svc = find_service(host.host);
        if (svc == nullptr) {
          r.warn(host.at, host.path, "host " + host.host + " names no served service; ignored");
          continue;
        }
        if (http_routes_.count(svc) != 0) {
          r.warn(host.at, host.path,
                 "service " + svc->name + " is routed by HTTPRoute " + http_routes_[svc].front().route->name +
                     "; this VirtualService is ignored for it");
          continue;
        }
        auto [it, inserted] = virtual_services_.emplace(svc, &vs);
        if (!inserted && it->second != &vs) {
          r.warn(host.at, host.path,
                 "service " + svc->name + " is already routed by VirtualService " + it->second->name + "; ignored");
          continue;
        }
        ++bound;
      }
      if (bound == 0) {
        continue;  // applies nowhere (reported above): its destinations do not matter
      }
      for (const auto& spec : vs.http) {
        check_route_destinations(r, spec);
      }
      for (const auto& tcp : vs.tcp) {
        for (const auto& d : tcp.destinations) {
          check_destination(r, d);
        }
      }
    }
  }

  // The cluster for (service, port, subset), created on first use.
  const RoutedCluster* cluster(const Service& svc, const ServicePort& port, const std::string& subset,
                               std::string_view protocol) {
    std::string name = "inbound-vip|" + std::to_string(port.port) + "|" + std::string(protocol) +
                       (subset.empty() ? "" : "/" + subset) + "|" + svc.fqdn;
    auto found = s_.clusters.find(name);
    if (found != s_.clusters.end()) {
      return &found->second;
    }
    RoutedCluster c;
    c.name = name;
    c.service = &svc;
    c.port = &port;
    c.subset = subset;
    auto rule = rules_.find(&svc);
    const SubsetSpec* sub = subset.empty() ? nullptr : find_subset(svc, subset);
    if (sub != nullptr) {
      c.labels = sub->labels;
    }
    if (rule != rules_.end()) {
      c.destination_rule = rule->second->name;
      c.policy = merge(rule->second->policy, sub != nullptr && sub->has_policy ? &sub->policy : nullptr);
    }
    // The port's endpoints (from its EndpointSlices, else its selector: compile()), narrowed to the
    // subset's labels.
    for (const Endpoint& ep : port.endpoints) {
      if (labels_match(c.labels, ep.pod->labels)) {
        c.endpoints.push_back(ep);
      }
    }
    return &s_.clusters.emplace(name, std::move(c)).first->second;
  }

  // A checked destination → its cluster; an omitted port is the table's port when the service has
  // it, else the service's first port.
  const RoutedCluster* resolve(const DestinationRef& d, uint16_t table_port, std::string_view protocol) {
    const Service* svc = find_service(d.host);
    uint16_t want = d.port != 0 ? d.port : table_port;
    const ServicePort* port = nullptr;
    for (const ServicePort& p : svc->ports) {
      if (p.port == want) {
        port = &p;
      }
    }
    if (port == nullptr) {
      port = &svc->ports.front();
    }
    return cluster(*svc, *port, d.subset, protocol);
  }

  std::optional<Route> build_route(const HttpRouteSpec& spec, uint16_t table_port, bool gateway_api) {
    Route route;
    route.name = spec.route.name;
    route.source = spec.route.source;
    // Match blocks for another port are dropped; a route whose blocks all are is not in this table.
    for (size_t i = 0; i < spec.route.matches.size(); ++i) {
      if (spec.match_ports[i] == 0 || spec.match_ports[i] == table_port) {
        route.matches.push_back(spec.route.matches[i]);
      }
    }
    if (!spec.route.matches.empty() && route.matches.empty()) {
      return std::nullopt;
    }
    route.redirect = spec.route.redirect;
    route.direct_status = spec.route.direct_status;
    route.direct_body = spec.route.direct_body;
    route.retry = spec.route.retry;
    route.timeout = spec.route.timeout;
    route.fault = spec.route.fault;
    route.request_headers = spec.route.request_headers;
    route.response_headers = spec.route.response_headers;
    route.rewrite = spec.route.rewrite;
    for (const auto& d : spec.destinations) {
      route.clusters.push_back(WeightedCluster{resolve(d, table_port, "http"), d.weight});
    }
    finish_weights(route.clusters, route.cumulative_weights, route.total_weight);
    for (const auto& m : spec.mirrors) {
      route.mirrors.push_back(Mirror{resolve(m, table_port, "http"), m.per_million});
    }
    // Gateway API: a rule with no usable backend (none, or all of weight 0) answers 500.
    if (gateway_api && !route.redirect && route.total_weight == 0) {
      route.direct_status = 500;
    }
    return route;
  }

  void build_tables() {
    for (const Service& svc : s_.services) {
      for (const ServicePort& port : svc.ports) {
        for (const net::IpAddr& ip : svc.cluster_ips) {  // dual stack: one chain per VIP, same tables
          net::SockAddr vip(ip, port.port);
          auto chain = s_.vip_chains.find(vip);
          if (chain == s_.vip_chains.end() || chain->second.service != &svc) {
            continue;  // not served (a VIP clash was reported by compile())
          }
          // Elements of an unordered_map keep their address when it grows: the pointers stay valid.
          if (port.protocol != ChainProtocol::Tcp) {
            chain->second.routes = &s_.route_tables.emplace(vip, http_table(svc, port)).first->second;
          }
          if (port.protocol != ChainProtocol::Http) {
            if (auto table = tcp_table(svc, port)) {
              chain->second.tcp_routes = &s_.tcp_routes.emplace(vip, std::move(*table)).first->second;
            }
          }
        }
      }
    }
  }

  RouteTable http_table(const Service& svc, const ServicePort& port) {
    RouteTable table;
    table.name = "inbound-vip|" + std::to_string(port.port) + "|http|" + svc.fqdn;
    table.service = &svc;
    table.port = &port;
    if (auto routes = http_routes_.find(&svc); routes != http_routes_.end()) {
      for (const auto& bound : routes->second) {
        if (bound.port != 0 && bound.port != port.port) {
          continue;
        }
        table.sources.push_back("HTTPRoute " + bound.route->name);
        for (const auto& rule : bound.route->rules) {
          auto route = build_route(rule, port.port, true);
          if (!route) {
            continue;
          }
          // One route per match, so that each is ordered by its own precedence.
          for (const auto& m : route->matches) {
            Route single = *route;
            single.matches = {m};
            table.routes.push_back(std::move(single));
          }
        }
      }
      std::stable_sort(table.routes.begin(), table.routes.end(), gateway_precedence);
    } else if (auto vs = virtual_services_.find(&svc); vs != virtual_services_.end() && !vs->second->http.empty()) {
      table.sources.push_back("VirtualService " + vs->second->name);
      for (const auto& spec : vs->second->http) {
        if (auto route = build_route(spec, port.port, false)) {
          table.routes.push_back(std::move(*route));
        }
      }
    }
    if (table.sources.empty()) {
      Route route;
      route.name = "default";
      route.source = "default";
      route.clusters.push_back(WeightedCluster{cluster(svc, port, "", "http"), 100});
      finish_weights(route.clusters, route.cumulative_weights, route.total_weight);
      table.routes.push_back(std::move(route));
    }
    return table;
  }

  std::optional<TcpRouteTable> tcp_table(const Service& svc, const ServicePort& port) {
    auto vs = virtual_services_.find(&svc);
    if (vs == virtual_services_.end()) {
      return std::nullopt;
    }
    for (const auto& tcp : vs->second->tcp) {
      if (!tcp.ports.empty() && std::find(tcp.ports.begin(), tcp.ports.end(), port.port) == tcp.ports.end()) {
        continue;
      }
      TcpRouteTable table;
      table.name = "inbound-vip|" + std::to_string(port.port) + "|tcp|" + svc.fqdn;
      table.source = "VirtualService " + vs->second->name;
      for (const auto& d : tcp.destinations) {
        table.route.clusters.push_back(WeightedCluster{resolve(d, port.port, "tcp"), d.weight});
      }
      finish_weights(table.route.clusters, table.route.cumulative_weights, table.route.total_weight);
      return table;
    }
    return std::nullopt;
  }

  struct BoundRoute {
    const HttpRouteResource* route;
    uint16_t port;
  };

  const RoutingResources& routing_;
  Diagnostics& diag_;
  Snapshot& s_;
  std::unordered_map<std::string, const Service*> hosts_;  // see the constructor
  size_t errors_before_ = diag_.error_count();
  std::map<const Service*, const DestinationRuleSpec*> rules_;
  std::map<const Service*, const VirtualServiceSpec*> virtual_services_;
  std::map<const Service*, std::vector<BoundRoute>> http_routes_;
};

}  // namespace

void compile_routing(const RoutingResources& routing, Diagnostics& diag, Snapshot& snapshot) {
  RoutingCompiler(routing, diag, snapshot).run();
}

}  // namespace wp::config
