// Routing specs → the Snapshot's clusters and route tables: RoutingCompiler::bind once the Compiler
// has the served Services (with their endpoints), then build() per Service port. Binding rules:
//  - a VirtualService binds to the served Services its hosts name (short name, name.ns, FQDN); the
//    first VirtualService in file order wins a Service, later ones are reported and skipped for it;
//  - HTTPRoutes bind through Service parentRefs (optionally one port); all HTTPRoutes of a Service
//    port are merged, one route per match, ordered by Gateway API precedence as Istio does it
//    (see gateway_precedence); a Service with an HTTPRoute ignores VirtualServices (reported);
//  - a DestinationRule gives a Service its subsets and traffic policy (the first one in file order).
// Every http or sniffed port of a served Service gets a route table; without a VirtualService or
// HTTPRoute it holds one default route to the Service's cluster.
#include <algorithm>
#include <memory>
#include <unordered_map>

#include "config/routing.h"
#include "waypoint/config/names.h"

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

}  // namespace

void RoutingCompiler::bind(const Resources& res, const Snapshot& s, Diagnostics& diag) {
  namespace_ = s.bootstrap.namespace_;
  services_.clear();
  hosts_.clear();
  for (const Service& svc : s.services) {
    services_.push_back(&svc);
  }
  // Every name a host may use for a served Service; the first Service in order wins a name.
  for (size_t i = 0; i < services_.size(); ++i) {
    const Service& svc = *services_[i];
    const std::string ns = svc.name + "." + svc.namespace_;
    for (std::string name : {svc.name, ns, ns + ".svc", svc.fqdn}) {
      hosts_.emplace(std::move(name), i);
    }
  }
  bind_all(res.destination_rules, res.virtual_services, res.http_routes, diag);
}

void RoutingCompiler::bind_all(const std::vector<const DestinationRuleSpec*>& destination_rules,
                               const std::vector<const VirtualServiceSpec*>& virtual_services,
                               const std::vector<const HttpRouteResource*>& http_routes, Diagnostics& diag) {
  rules_.assign(services_.size(), nullptr);
  virtual_services_.assign(services_.size(), nullptr);
  http_routes_.assign(services_.size(), {});
  bind_destination_rules(destination_rules, diag);
  bind_http_routes(http_routes, diag);
  bind_virtual_services(virtual_services, diag);
}

std::vector<size_t> RoutingCompiler::rebind(const std::vector<const DestinationRuleSpec*>& destination_rules,
                                            const std::vector<const VirtualServiceSpec*>& virtual_services,
                                            const std::vector<const HttpRouteResource*>& http_routes,
                                            Diagnostics& diag) {
  auto rules = std::move(rules_);
  auto vss = std::move(virtual_services_);
  auto routes = std::move(http_routes_);
  bind_all(destination_rules, virtual_services, http_routes, diag);
  auto same = [](const std::vector<BoundRoute>& a, const std::vector<BoundRoute>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](const BoundRoute& x, const BoundRoute& y) { return x.route == y.route && x.port == y.port; });
  };
  std::vector<size_t> changed;
  for (size_t i = 0; i < services_.size(); ++i) {
    if (rules[i] != rules_[i] || vss[i] != virtual_services_[i] || !same(routes[i], http_routes_[i])) {
      changed.push_back(i);
    }
  }
  return changed;
}

// The number of the served Service a host names (short name, name.ns, name.ns.svc, or the FQDN).
std::optional<size_t> RoutingCompiler::find_index(const std::string& host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? std::nullopt : std::optional<size_t>(it->second);
}

const Service* RoutingCompiler::find_service(const std::string& host) const {
  auto i = find_index(host);
  return i ? services_[*i] : nullptr;
}

std::string RoutingCompiler::unknown_service(const std::string& host) const {
  return "unknown service " + host + " (not a served Service of namespace " + namespace_ + ")";
}

void RoutingCompiler::bind_destination_rules(const std::vector<const DestinationRuleSpec*>& destination_rules,
                                             Diagnostics& diag) {
  for (const DestinationRuleSpec* dr : destination_rules) {
    Reader r(diag, "DestinationRule " + dr->name);
    auto i = find_index(dr->host.host);
    if (!i) {
      r.warn(dr->host.at, dr->host.path, "host " + dr->host.host + " names no served service; ignored");
      continue;
    }
    const Service* svc = services_[*i];
    const DestinationRuleSpec*& rule = rules_[*i];
    if (rule != nullptr) {
      r.warn(dr->host.at, dr->host.path,
             "service " + svc->name + " already has DestinationRule " + rule->name + "; ignored");
      continue;
    }
    rule = dr;
  }
}

const SubsetSpec* RoutingCompiler::find_subset(size_t service, const std::string& name) const {
  const DestinationRuleSpec* rule = rules_[service];
  if (rule == nullptr) {
    return nullptr;
  }
  for (const auto& subset : rule->subsets) {
    if (subset.name == name) {
      return &subset;
    }
  }
  return nullptr;
}

// Checks a destination's service, port and subset; reports problems at the offending field.
bool RoutingCompiler::check_destination(Reader& r, const DestinationRef& d) const {
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
  const size_t i = hosts_.at(d.host);
  if (!d.subset.empty() && find_subset(i, d.subset) == nullptr) {
    const DestinationRuleSpec* rule = rules_[i];
    std::string known;
    if (rule != nullptr) {
      for (const auto& subset : rule->subsets) {
        known += (known.empty() ? "" : ", ") + subset.name;
      }
    }
    r.error(
        d.subset_at, d.path + ".subset",
        "unknown subset " + d.subset + " of " + svc->name +
            (rule == nullptr ? " (no DestinationRule for " + svc->name + ")"
                             : " (DestinationRule " + rule->name + " has " + (known.empty() ? "none" : known) + ")"));
    ok = false;
  }
  return ok;
}

void RoutingCompiler::check_route_destinations(Reader& r, const HttpRouteSpec& spec) const {
  for (const auto& d : spec.destinations) {
    check_destination(r, d);
  }
  for (const auto& d : spec.mirrors) {
    check_destination(r, d);
  }
}

void RoutingCompiler::bind_http_routes(const std::vector<const HttpRouteResource*>& http_routes, Diagnostics& diag) {
  for (const HttpRouteResource* route : http_routes) {
    Reader r(diag, "HTTPRoute " + route->name);
    size_t bound = 0;
    for (const auto& parent : route->parents) {
      auto i = find_index(parent.service);
      if (!i) {
        r.error(parent.at, parent.path + ".name", unknown_service(parent.service));
        continue;
      }
      const Service* svc = services_[*i];
      if (parent.port != 0 && std::none_of(svc->ports.begin(), svc->ports.end(),
                                           [&](const ServicePort& p) { return p.port == parent.port; })) {
        r.error(parent.at, parent.path + ".port",
                "service " + svc->name + " has no port " + std::to_string(parent.port));
        continue;
      }
      http_routes_[*i].push_back({route, parent.port});
      ++bound;
    }
    if (bound == 0) {
      continue;
    }
    for (const auto& rule : route->rules) {
      check_route_destinations(r, rule);
    }
  }
}

void RoutingCompiler::bind_virtual_services(const std::vector<const VirtualServiceSpec*>& virtual_services,
                                            Diagnostics& diag) {
  for (const VirtualServiceSpec* vs : virtual_services) {
    Reader r(diag, "VirtualService " + vs->name);
    size_t bound = 0;
    for (const auto& host : vs->hosts) {
      auto found = find_index(host.host);
      if (!found) {
        r.warn(host.at, host.path, "host " + host.host + " names no served service; ignored");
        continue;
      }
      const size_t i = *found;
      const Service* svc = services_[i];
      if (!http_routes_[i].empty()) {
        r.warn(host.at, host.path,
               "service " + svc->name + " is routed by HTTPRoute " + http_routes_[i].front().route->name +
                   "; this VirtualService is ignored for it");
        continue;
      }
      if (virtual_services_[i] != nullptr && virtual_services_[i] != vs) {
        r.warn(host.at, host.path,
               "service " + svc->name + " is already routed by VirtualService " + virtual_services_[i]->name +
                   "; ignored");
        continue;
      }
      virtual_services_[i] = vs;
      ++bound;
    }
    if (bound == 0) {
      continue;  // applies nowhere (reported above): its destinations do not matter
    }
    for (const auto& spec : vs->http) {
      check_route_destinations(r, spec);
    }
    for (const auto& tcp : vs->tcp) {
      for (const auto& d : tcp.destinations) {
        check_destination(r, d);
      }
    }
  }
}

bool RoutingCompiler::check(size_t i) {
  Diagnostics scratch("");
  if (const VirtualServiceSpec* vs = virtual_services_[i]) {
    Reader r(scratch, "VirtualService " + vs->name);
    for (const auto& spec : vs->http) {
      check_route_destinations(r, spec);
    }
    for (const auto& tcp : vs->tcp) {
      for (const auto& d : tcp.destinations) {
        check_destination(r, d);
      }
    }
  }
  for (const auto& bound : http_routes_[i]) {
    Reader r(scratch, "HTTPRoute " + bound.route->name);
    for (const auto& rule : bound.route->rules) {
      check_route_destinations(r, rule);
    }
  }
  return !scratch.failed();
}

namespace {
// The indexes (Service numbers) of the bindings that hold `pred`.
template <typename Bindings, typename Pred>
std::vector<size_t> indexes_where(const Bindings& bindings, Pred pred) {
  std::vector<size_t> out;
  for (size_t i = 0; i < bindings.size(); ++i) {
    if (pred(bindings[i])) {
      out.push_back(i);
    }
  }
  return out;
}
}  // namespace

std::vector<size_t> RoutingCompiler::bound(const VirtualServiceSpec* vs) const {
  return indexes_where(virtual_services_, [vs](const VirtualServiceSpec* bound) { return bound == vs; });
}

std::vector<size_t> RoutingCompiler::bound(const DestinationRuleSpec* dr) const {
  return indexes_where(rules_, [dr](const DestinationRuleSpec* bound) { return bound == dr; });
}

std::vector<size_t> RoutingCompiler::bound(const HttpRouteResource* route) const {
  return indexes_where(http_routes_, [route](const auto& routes) {
    return std::any_of(routes.begin(), routes.end(), [route](const BoundRoute& b) { return b.route == route; });
  });
}

void RoutingCompiler::replace(const VirtualServiceSpec* old, const VirtualServiceSpec* now) {
  std::replace(virtual_services_.begin(), virtual_services_.end(), old, now);
}

void RoutingCompiler::replace(const DestinationRuleSpec* old, const DestinationRuleSpec* now) {
  std::replace(rules_.begin(), rules_.end(), old, now);
}

void RoutingCompiler::replace(const HttpRouteResource* old, const HttpRouteResource* now) {
  for (auto& routes : http_routes_) {
    for (auto& b : routes) {
      if (b.route == old) {
        b.route = now;
      }
    }
  }
}

bool RoutingCompiler::binds_alike(const VirtualServiceSpec& a, const VirtualServiceSpec& b) {
  return a.name == b.name && std::equal(a.hosts.begin(), a.hosts.end(), b.hosts.begin(), b.hosts.end(),
                                        [](const HostRef& x, const HostRef& y) { return x.host == y.host; });
}

bool RoutingCompiler::binds_alike(const DestinationRuleSpec& a, const DestinationRuleSpec& b) {
  return a.name == b.name && a.host.host == b.host.host;
}

bool RoutingCompiler::binds_alike(const HttpRouteResource& a, const HttpRouteResource& b) {
  return a.name == b.name &&
         std::equal(a.parents.begin(), a.parents.end(), b.parents.begin(), b.parents.end(),
                    [](const ParentRef& x, const ParentRef& y) { return x.service == y.service && x.port == y.port; });
}

// The cluster for (service, port, subset): the one in `s` already, else a new one.
const RoutedCluster* RoutingCompiler::cluster(size_t service, const ServicePort& port, const std::string& subset,
                                              std::string_view protocol, Snapshot& s,
                                              std::vector<std::string>& used) const {
  const Service& svc = *services_[service];
  std::string name = inbound_vip_name(port.port, protocol, svc.fqdn, subset);
  used.push_back(name);
  if (const RoutedCluster* found = s.clusters.find_piece(name)) {
    return found;
  }
  auto c = std::make_shared<RoutedCluster>();
  c->name = name;
  c->service = &svc;
  c->port = &port;
  c->subset = subset;
  const DestinationRuleSpec* rule = rules_[service];
  const SubsetSpec* sub = subset.empty() ? nullptr : find_subset(service, subset);
  if (sub != nullptr) {
    c->labels = sub->labels;
  }
  if (rule != nullptr) {
    c->destination_rule = rule->name;
    c->policy = merge(rule->policy, sub != nullptr && sub->has_policy ? &sub->policy : nullptr);
  }
  // The port's endpoints (from its EndpointSlices, else its selector: compile()), narrowed to the
  // subset's labels.
  for (const Endpoint& ep : port.endpoints) {
    if (labels_match(c->labels, ep.pod->labels())) {
      c->endpoints.push_back(ep);
    }
  }
  const RoutedCluster* out = c.get();
  s.clusters.emplace(std::move(name), std::move(c));
  return out;
}

// A checked destination → its cluster; an omitted port is the table's port when the service has
// it, else the service's first port.
const RoutedCluster* RoutingCompiler::resolve(const DestinationRef& d, uint16_t table_port, std::string_view protocol,
                                              Snapshot& s, std::vector<std::string>& used) const {
  const size_t i = hosts_.at(d.host);
  const Service* svc = services_[i];
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
  return cluster(i, *port, d.subset, protocol, s, used);
}

std::optional<Route> RoutingCompiler::build_route(const HttpRouteSpec& spec, uint16_t table_port, bool gateway_api,
                                                  Snapshot& s, std::vector<std::string>& used) const {
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
    route.clusters.push_back(WeightedCluster{resolve(d, table_port, "http", s, used), d.weight});
  }
  finish_weights(route.clusters, route.cumulative_weights, route.total_weight);
  for (const auto& m : spec.mirrors) {
    route.mirrors.push_back(Mirror{resolve(m, table_port, "http", s, used), m.per_million});
  }
  // Gateway API: a rule with no usable backend (none, or all of weight 0) answers 500.
  if (gateway_api && !route.redirect && route.total_weight == 0) {
    route.direct_status = 500;
  }
  return route;
}

RoutingCompiler::Tables RoutingCompiler::build(size_t i, const ServicePort& port, Snapshot& s,
                                               std::vector<std::string>& used) {
  Tables t;
  if (port.protocol != ChainProtocol::Tcp) {
    t.http = http_table(i, port, s, used);
  }
  if (port.protocol != ChainProtocol::Http) {
    t.tcp = tcp_table(i, port, s, used);
  }
  return t;
}

std::shared_ptr<const RouteTable> RoutingCompiler::http_table(size_t i, const ServicePort& port, Snapshot& s,
                                                              std::vector<std::string>& used) const {
  const Service& svc = *services_[i];
  auto table = std::make_shared<RouteTable>();
  table->name = inbound_vip_name(port.port, "http", svc.fqdn);
  table->service = &svc;
  table->port = &port;
  if (!http_routes_[i].empty()) {
    for (const auto& bound : http_routes_[i]) {
      if (bound.port != 0 && bound.port != port.port) {
        continue;
      }
      table->sources.push_back("HTTPRoute " + bound.route->name);
      for (const auto& rule : bound.route->rules) {
        auto route = build_route(rule, port.port, true, s, used);
        if (!route) {
          continue;
        }
        // One route per match, so that each is ordered by its own precedence.
        for (const auto& m : route->matches) {
          Route single = *route;
          single.matches = {m};
          table->routes.push_back(std::move(single));
        }
      }
    }
    std::stable_sort(table->routes.begin(), table->routes.end(), gateway_precedence);
  } else if (const VirtualServiceSpec* vs = virtual_services_[i]; vs != nullptr && !vs->http.empty()) {
    table->sources.push_back("VirtualService " + vs->name);
    for (const auto& spec : vs->http) {
      if (auto route = build_route(spec, port.port, false, s, used)) {
        table->routes.push_back(std::move(*route));
      }
    }
  }
  if (table->sources.empty()) {
    Route route;
    route.name = "default";
    route.source = "default";
    route.clusters.push_back(WeightedCluster{cluster(i, port, "", "http", s, used), 100});
    finish_weights(route.clusters, route.cumulative_weights, route.total_weight);
    table->routes.push_back(std::move(route));
  }
  return table;
}

std::shared_ptr<const TcpRouteTable> RoutingCompiler::tcp_table(size_t i, const ServicePort& port, Snapshot& s,
                                                                std::vector<std::string>& used) const {
  const VirtualServiceSpec* vs = virtual_services_[i];
  if (vs == nullptr) {
    return nullptr;
  }
  const Service& svc = *services_[i];
  for (const auto& tcp : vs->tcp) {
    if (!tcp.ports.empty() && std::find(tcp.ports.begin(), tcp.ports.end(), port.port) == tcp.ports.end()) {
      continue;
    }
    auto table = std::make_shared<TcpRouteTable>();
    table->name = inbound_vip_name(port.port, "tcp", svc.fqdn);
    table->source = "VirtualService " + vs->name;
    for (const auto& d : tcp.destinations) {
      table->route.clusters.push_back(WeightedCluster{resolve(d, port.port, "tcp", s, used), d.weight});
    }
    finish_weights(table->route.clusters, table->route.cumulative_weights, table->route.total_weight);
    return table;
  }
  return nullptr;
}

}  // namespace wp::config
