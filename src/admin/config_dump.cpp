// The Snapshot as the admin API shows it (see config_dump.h for the shapes). Names follow what the
// process really has: the HBONE listener `connect_terminate`, the internal listener `main_internal`
// with one entry per service VIP:port and per pod IP (src/internal/listener.cpp decides between
// them), the EDS clusters of the route tables, and the three static clusters the data path uses.
#include "waypoint/admin/config_dump.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <vector>

#include "waypoint/common/json.h"
#include "waypoint/config/names.h"
#include "waypoint/net/order.h"

namespace wp::admin {

namespace {

using config::ChainProtocol;
using config::Snapshot;
using json::Writer;

constexpr std::string_view kConnectTerminate = "connect_terminate";
constexpr std::string_view kMainInternal = "main_internal";
constexpr std::string_view kConnectOriginate = "connect_originate";
constexpr std::string_view kEncap = "encap";
constexpr std::string_view kDirectHttp = "direct-http";
constexpr std::string_view kDirectTcp = "direct-tcp";

// What the sniffer tells apart on a chain that carries HTTP (src/internal/sniff.cpp).
constexpr std::string_view kHttpProtocols[] = {"http/1.1", "h2c"};

// Envoy's JSON form of a protobuf Duration: "10s", "0.250s".
std::string duration(config::Millis d) {
  long long ms = d.count();
  if (ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%lld.%03llds", ms / 1000, ms % 1000);
  return buf;
}

void optional_duration(Writer& w, std::string_view key, const std::optional<config::Millis>& d) {
  w.key(key);
  if (d) {
    w.string(duration(*d));
  } else {
    w.null();
  }
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double percent(uint32_t per_million) {
  return per_million / 10'000.0;
}

// "<name>.<namespace>", as istioctl names Istio resources; every resource the snapshot holds is in
// the waypoint's namespace.
std::string qualified(const Snapshot& s, std::string_view name) {
  return std::string(name) + "." + s.bootstrap.namespace_;
}

// The VirtualService or HTTPRoute behind a route ("VirtualService reviews" → "reviews.default");
// null for the generated default route.
void virtual_service(Writer& w, const Snapshot& s, std::string_view source) {
  w.key("virtual_service");
  for (std::string_view kind : {"VirtualService ", "HTTPRoute "}) {
    if (source.starts_with(kind)) {
      w.string(qualified(s, source.substr(kind.size())));
      return;
    }
  }
  w.null();
}

void string_list(Writer& w, std::string_view key, const std::vector<std::string>& values) {
  w.key(key).begin_array();
  for (const auto& v : values) {
    w.string(v);
  }
  w.end_array();
}

void labels(Writer& w, std::string_view key, const std::map<std::string, std::string>& values) {
  w.key(key).begin_object();
  for (const auto& [k, v] : values) {
    w.field(k, v);
  }
  w.end_object();
}

// ---- listeners ----------------------------------------------------------------------------------

void http_chain(Writer& w, std::string_view name, std::string_view route) {
  w.begin_object().field("name", name).key("application_protocols").begin_array();
  for (std::string_view p : kHttpProtocols) {
    w.string(p);
  }
  w.end_array().field("route", route).end_object();
}

// `route`: the VirtualService tcp[] route table the chain picks its cluster from ("": none).
void tcp_chain(Writer& w, std::string_view name, std::string_view cluster, std::string_view route = "") {
  w.begin_object().field("name", name).key("application_protocols").begin_array().end_array();
  w.field("cluster", cluster);
  if (!route.empty()) {
    w.field("route", route);
  }
  w.end_object();
}

void connect_terminate(Writer& w, const Snapshot& s) {
  const net::SockAddr& addr = s.bootstrap.listeners.hbone;
  w.begin_object()
      .field("listener", kConnectTerminate)
      .field("name", kConnectTerminate)
      .field("kind", "socket")
      .field("address", addr.to_string())
      .field("ip", addr.ip().to_string())
      .field("port", addr.port())
      .field("protocol", "hbone");
  // mTLS with ALPN h2; every CONNECT stream is handed to the internal listener.
  w.key("chains").begin_array();
  w.begin_object().field("name", "default").key("application_protocols").begin_array().string("h2").end_array();
  w.field("cluster", kMainInternal).end_object();
  w.end_array().end_object();
}

// A service VIP:port: HTTP ports go to their route table, TCP ports to the service's pods, and
// sniffed ports to one or the other by the tunnel's first bytes.
void vip_entry(Writer& w, const net::SockAddr& vip, const config::VipChain& chain) {
  w.begin_object()
      .field("listener", kMainInternal)
      .field("name", chain.name)
      .field("kind", "service")
      .field("address", vip.to_string())
      .field("ip", vip.ip().to_string())
      .field("port", vip.port())
      .field("protocol", config::to_string(chain.protocol))
      .field("service", chain.service->fqdn);
  w.key("chains").begin_array();
  if (chain.protocol != ChainProtocol::Tcp) {
    const config::RouteTable* table = chain.routes;
    std::string http_name = config::inbound_vip_name(vip.port(), "http", chain.service->fqdn);
    http_chain(w, http_name, table != nullptr ? table->name : http_name);
  }
  if (chain.protocol != ChainProtocol::Http) {
    const config::TcpRouteTable* tcp = chain.tcp_routes;
    tcp_chain(w, chain.name, chain.cluster.name, tcp != nullptr ? tcp->name : "");
  }
  w.end_array().end_object();
}

// A pod IP: whatever the port, forwarded to that same pod.
void pod_entry(Writer& w, const config::Pod& pod) {
  w.begin_object()
      .field("listener", kMainInternal)
      .field("name", pod.name)
      .field("kind", "pod")
      .field("address", pod.ip.to_string())
      .field("ip", pod.ip.to_string())
      .field("protocol", config::to_string(ChainProtocol::Sniff))
      .field("pod", pod.name);
  w.key("chains").begin_array();
  w.begin_object().field("name", kDirectHttp).key("application_protocols").begin_array();
  for (std::string_view p : kHttpProtocols) {
    w.string(p);
  }
  w.end_array().field("cluster", kEncap).end_object();
  tcp_chain(w, kDirectTcp, kEncap);
  w.end_array().end_object();
}

void write_listeners(Writer& w, const Snapshot& s) {
  struct Target {
    net::SockAddr address;  // port 0 for a pod IP
    const config::VipChain* vip = nullptr;
    const config::Pod* pod = nullptr;
  };
  std::vector<Target> targets;
  for (const auto& [vip, chain] : s.vip_chains) {
    targets.push_back({vip, chain.get(), nullptr});
  }
  for (const auto& [ip, pod] : s.pods_by_ip) {
    targets.push_back({net::SockAddr(ip, 0), nullptr, pod});
  }
  std::sort(targets.begin(), targets.end(),
            [](const Target& a, const Target& b) { return net::addr_less(a.address, b.address); });

  w.begin_array();
  connect_terminate(w, s);
  for (const Target& t : targets) {
    if (t.vip != nullptr) {
      vip_entry(w, t.address, *t.vip);
    } else {
      pod_entry(w, *t.pod);
    }
  }
  w.end_array();
}

// ---- clusters -----------------------------------------------------------------------------------

// The parts of "inbound-vip|<port>|<protocol>[/<subset>]|<fqdn>"; another name is all fqdn.
struct ClusterKey {
  std::string direction, subset, fqdn;
  int port = 0;
};

ClusterKey parse_cluster_name(const std::string& name) {
  ClusterKey key;
  auto parts = config::split_inbound_name(name);
  if (!parts) {
    key.fqdn = name;
    return key;
  }
  key.direction = parts->direction;
  key.port = static_cast<int>(parts->port);
  key.subset = parts->protocol;
  key.fqdn = parts->fqdn;
  return key;
}

// istioctl's order: service FQDN (or the static cluster's name), subset, port, direction.
bool cluster_less(const std::string& a, const std::string& b) {
  ClusterKey ka = parse_cluster_name(a), kb = parse_cluster_name(b);
  return std::tie(ka.fqdn, ka.subset, ka.port, ka.direction) < std::tie(kb.fqdn, kb.subset, kb.port, kb.direction);
}

void target_port(Writer& w, const config::ServicePort& port) {
  w.key("target_port");
  if (port.target_port_name.empty()) {
    w.number(port.target_port_number);
  } else {
    w.string(port.target_port_name);
  }
}

void service_cluster_head(Writer& w, const std::string& name, const config::Service& svc,
                          const config::ServicePort& port, size_t endpoints) {
  ClusterKey key = parse_cluster_name(name);
  w.field("name", name)
      .field("type", "EDS")
      .field("direction", key.direction)
      .field("service_fqdn", svc.fqdn)
      .field("port", port.port);
  target_port(w, port);
  w.field("protocol", key.subset.substr(0, key.subset.find('/')));
  w.field("endpoint_count", endpoints);
}

void routed_cluster(Writer& w, const Snapshot& s, const config::RoutedCluster& c) {
  const config::ClusterPolicy& p = c.policy;
  w.begin_object();
  service_cluster_head(w, c.name, *c.service, *c.port, c.endpoints.size());
  w.key("subset");
  c.subset.empty() ? w.null() : w.string(c.subset);
  labels(w, "labels", c.labels);
  w.key("destination_rule");
  c.destination_rule.empty() ? w.null() : w.string(qualified(s, c.destination_rule));
  w.field("load_balancer", config::to_string(p.load_balancer));
  if (p.load_balancer == config::LoadBalancer::ConsistentHash) {
    w.field("hash_header", p.hash_header);
  }
  // 0: not set, no limit.
  w.key("connection_pool")
      .begin_object()
      .field("max_connections", p.max_connections)
      .field("http1_max_pending_requests", p.http1_max_pending_requests)
      .field("http2_max_requests", p.http2_max_requests)
      .field("max_requests_per_connection", p.max_requests_per_connection)
      .field("max_retries", p.max_retries)
      .end_object();
  w.key("outlier_detection");
  if (p.outlier_detection) {
    w.begin_object()
        .field("consecutive_5xx_errors", p.consecutive_5xx_errors)
        .field("interval", duration(p.outlier_interval))
        .field("base_ejection_time", duration(p.base_ejection_time))
        .field("max_ejection_percent", p.max_ejection_percent)
        .end_object();
  } else {
    w.null();
  }
  w.end_object();
}

// The cluster of a TCP or sniffed service port when no route table names it: TCP tunnels go round
// robin over the service's ready pods, without DestinationRule policy.
void chain_cluster(Writer& w, const config::VipChain& chain) {
  w.begin_object();
  service_cluster_head(w, chain.cluster.name, *chain.service, *chain.port, chain.cluster.endpoints.size());
  w.key("subset").null();
  labels(w, "labels", {});
  w.key("destination_rule").null();
  w.field("load_balancer", config::to_string(config::LoadBalancer::RoundRobin));
  w.key("connection_pool").null();
  w.key("outlier_detection").null();
  w.end_object();
}

void static_cluster(Writer& w, const Snapshot& s, std::string_view name) {
  w.begin_object().field("name", name);
  if (name == kConnectOriginate) {
    // Where every upstream tunnel goes: <pod IP>:<hbonePort>, pooled per address and identity.
    const config::UpstreamSettings& u = s.bootstrap.upstream;
    w.field("type", "ORIGINAL_DST")
        .field("hbone_port", u.hbone_port)
        .field("connect_timeout", duration(u.connect_timeout))
        .field("max_streams_per_connection", u.max_streams_per_connection)
        .field("idle_timeout", duration(u.idle_timeout));
  } else if (name == kEncap) {
    w.field("type", "STATIC")
        .field("description",
               "pod-IP chains: the pod the tunnel was addressed to, via " + std::string(kConnectOriginate));
  } else {
    w.field("type", "STATIC").field("description", "the internal listener: a chain per tunnel destination");
  }
  w.end_object();
}

// VIP chains whose cluster no route table created (TCP and sniffed ports without tcp routes to it).
std::vector<const config::VipChain*> extra_chain_clusters(const Snapshot& s) {
  std::vector<const config::VipChain*> out;
  for (const auto& [vip, chain] : s.vip_chains) {
    if (chain->protocol != ChainProtocol::Http && s.find_cluster(chain->cluster.name) == nullptr) {
      out.push_back(chain.get());
    }
  }
  return out;
}

void write_clusters(Writer& w, const Snapshot& s) {
  struct Entry {
    std::string name;
    const config::RoutedCluster* routed = nullptr;
    const config::VipChain* chain = nullptr;
  };
  std::vector<Entry> entries;
  for (const auto& [name, c] : s.clusters) {
    entries.push_back({name, c.get(), nullptr});
  }
  for (const config::VipChain* chain : extra_chain_clusters(s)) {
    entries.push_back({chain->cluster.name, nullptr, chain});
  }
  for (std::string_view name : {kConnectOriginate, kEncap, kMainInternal}) {
    entries.push_back({std::string(name), nullptr, nullptr});
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return cluster_less(a.name, b.name); });

  w.begin_array();
  for (const Entry& e : entries) {
    if (e.routed != nullptr) {
      routed_cluster(w, s, *e.routed);
    } else if (e.chain != nullptr) {
      chain_cluster(w, *e.chain);
    } else {
      static_cluster(w, s, e.name);
    }
  }
  w.end_array();
}

// ---- routes -------------------------------------------------------------------------------------

std::string_view match_kind(config::StringMatch::Kind k) {
  switch (k) {
    case config::StringMatch::Kind::Exact:
      return "exact";
    case config::StringMatch::Kind::Prefix:
      return "prefix";
    case config::StringMatch::Kind::Regex:
      return "regex";
    case config::StringMatch::Kind::PathPrefix:
      return "path_prefix";
  }
  return "unknown";
}

void string_match(Writer& w, const config::StringMatch& m) {
  w.begin_object().field("kind", match_kind(m.kind)).field("value", m.value);
  if (m.ignore_case) {
    w.field("ignore_case", true);
  }
  w.end_object();
}

void optional_match(Writer& w, std::string_view key, const std::optional<config::StringMatch>& m) {
  if (m) {
    w.key(key);
    string_match(w, *m);
  }
}

void key_matches(Writer& w, std::string_view key, const std::vector<config::KeyMatch>& matches) {
  if (matches.empty()) {
    return;
  }
  w.key(key).begin_array();
  for (const auto& m : matches) {
    w.begin_object().field("name", m.name);
    if (m.value) {
      w.key("value");
      string_match(w, *m.value);
    } else {
      w.field("present", true);
    }
    if (m.invert) {
      w.field("invert", true);
    }
    w.end_object();
  }
  w.end_array();
}

void route_match(Writer& w, const config::RouteMatch& m) {
  w.begin_object();
  if (!m.name.empty()) {
    w.field("name", m.name);
  }
  optional_match(w, "uri", m.uri);
  optional_match(w, "method", m.method);
  optional_match(w, "authority", m.authority);
  key_matches(w, "headers", m.headers);
  key_matches(w, "query_params", m.query_params);
  w.end_object();
}

void weighted_clusters(Writer& w, const std::vector<config::WeightedCluster>& clusters, uint32_t total) {
  w.key("weighted_clusters").begin_array();
  for (const auto& c : clusters) {
    w.begin_object()
        .field("cluster", c.cluster->name)
        .field("weight", c.weight)
        .field("percent", total == 0 ? 0.0 : 100.0 * c.weight / total)
        .end_object();
  }
  w.end_array().field("total_weight", total);
}

void retry_policy(Writer& w, const config::RetryPolicy& r) {
  w.key("retry_policy")
      .begin_object()
      .field("num_retries", r.num_retries)
      .field("retry_on", config::retry_on_names(r.retry_on));
  w.key("retriable_status_codes").begin_array();
  for (uint16_t code : r.retriable_status_codes) {
    w.number(code);
  }
  w.end_array();
  optional_duration(w, "per_try_timeout", r.per_try_timeout);
  w.field("previous_hosts", r.previous_hosts).field("host_selection_retry_max_attempts", r.host_selection_attempts);
  w.end_object();
}

void fault(Writer& w, const config::FaultPolicy& f) {
  w.key("fault");
  if (!f.has_delay && !f.has_abort) {
    w.null();
    return;
  }
  w.begin_object().key("delay");
  if (f.has_delay) {
    w.begin_object()
        .field("fixed_delay", duration(f.delay))
        .field("percent", percent(f.delay_per_million))
        .end_object();
  } else {
    w.null();
  }
  w.key("abort");
  if (f.has_abort) {
    w.begin_object().field("http_status", f.abort_status).field("percent", percent(f.abort_per_million)).end_object();
  } else {
    w.null();
  }
  w.end_object();
}

void header_pairs(Writer& w, std::string_view key, const std::vector<std::pair<std::string, std::string>>& pairs) {
  w.key(key).begin_array();
  for (const auto& [name, value] : pairs) {
    w.begin_object().field("name", name).field("value", value).end_object();
  }
  w.end_array();
}

void header_mutation(Writer& w, std::string_view key, const config::HeaderMutation& m) {
  w.key(key);
  if (m.empty()) {
    w.null();
    return;
  }
  w.begin_object();
  header_pairs(w, "set", m.set);
  header_pairs(w, "add", m.add);
  string_list(w, "remove", m.remove);
  w.end_object();
}

std::string_view path_kind(config::PathRewrite k) {
  return k == config::PathRewrite::Prefix ? "prefix" : "full";
}

void rewrite(Writer& w, const config::Rewrite& r) {
  w.key("rewrite");
  if (r.path_kind == config::PathRewrite::None && r.authority.empty()) {
    w.null();
    return;
  }
  w.begin_object();
  if (r.path_kind != config::PathRewrite::None) {
    w.field("path", r.path).field("path_kind", path_kind(r.path_kind));
  }
  if (!r.authority.empty()) {
    w.field("authority", r.authority);
  }
  w.end_object();
}

void redirect(Writer& w, const config::Redirect& r) {
  w.key("redirect").begin_object();
  if (!r.scheme.empty()) {
    w.field("scheme", r.scheme);
  }
  if (!r.authority.empty()) {
    w.field("authority", r.authority);
  }
  if (r.port != 0) {
    w.field("port", r.port);
  }
  if (r.path_kind != config::PathRewrite::None) {
    w.field("path", r.path).field("path_kind", path_kind(r.path_kind));
  }
  w.field("status", r.status).end_object();
}

void route(Writer& w, const Snapshot& s, size_t index, const config::Route& r) {
  w.begin_object().field("index", index).field("name", r.name).field("source", r.source);
  virtual_service(w, s, r.source);
  w.key("matches").begin_array();  // empty: every request
  for (const auto& m : r.matches) {
    route_match(w, m);
  }
  w.end_array();
  if (r.redirect) {
    w.field("action", "redirect");
    redirect(w, *r.redirect);
  } else if (r.direct_status != 0) {
    w.field("action", "direct_response");
    w.key("direct_response").begin_object().field("status", r.direct_status).field("body", r.direct_body).end_object();
  } else {
    w.field("action", "route");
  }
  weighted_clusters(w, r.clusters, r.total_weight);
  retry_policy(w, r.retry);
  optional_duration(w, "timeout", r.timeout);
  fault(w, r.fault);
  header_mutation(w, "request_headers", r.request_headers);
  header_mutation(w, "response_headers", r.response_headers);
  rewrite(w, r.rewrite);
  w.key("mirrors").begin_array();
  for (const auto& m : r.mirrors) {
    w.begin_object().field("cluster", m.cluster->name).field("percent", percent(m.per_million)).end_object();
  }
  w.end_array().end_object();
}

void table_head(Writer& w, std::string_view name, std::string_view type, const net::SockAddr& vip,
                const config::Service* svc) {
  w.begin_object()
      .field("name", name)
      .field("type", type)
      .field("vip", vip.to_string())
      .field("port", vip.port())
      .field("service", svc != nullptr ? svc->fqdn : std::string());
}

void http_table(Writer& w, const Snapshot& s, const net::SockAddr& vip, const config::RouteTable& t) {
  table_head(w, t.name, "http", vip, t.service);
  string_list(w, "domains", {"*"});  // the table is chosen by the tunnel's VIP:port, not by Host
  string_list(w, "sources", t.sources);
  w.key("routes").begin_array();
  for (size_t i = 0; i < t.routes.size(); ++i) {
    route(w, s, i, t.routes[i]);
  }
  w.end_array().end_object();
}

void tcp_table(Writer& w, const Snapshot& s, const net::SockAddr& vip, const config::TcpRouteTable& t) {
  const config::VipChain* chain = s.find_vip(vip);
  table_head(w, t.name, "tcp", vip, chain != nullptr ? chain->service : nullptr);
  string_list(w, "domains", {});
  string_list(w, "sources", {t.source});
  w.key("routes").begin_array();
  w.begin_object().field("index", 0).field("source", t.source);
  virtual_service(w, s, t.source);
  w.key("matches").begin_array().end_array().field("action", "route");
  weighted_clusters(w, t.route.clusters, t.route.total_weight);
  w.end_object();
  w.end_array().end_object();
}

void write_routes(Writer& w, const Snapshot& s) {
  struct Entry {
    net::SockAddr vip;
    const config::RouteTable* http = nullptr;
    const config::TcpRouteTable* tcp = nullptr;
  };
  std::vector<Entry> entries;
  for (const auto& [vip, t] : s.route_tables) {
    entries.push_back({vip, t.get(), nullptr});
  }
  for (const auto& [vip, t] : s.tcp_routes) {
    entries.push_back({vip, nullptr, t.get()});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (!(a.vip == b.vip)) {
      return net::addr_less(a.vip, b.vip);
    }
    return a.http != nullptr && b.http == nullptr;
  });
  w.begin_array();
  for (const Entry& e : entries) {
    if (e.http != nullptr) {
      http_table(w, s, e.vip, *e.http);
    } else {
      tcp_table(w, s, e.vip, *e.tcp);
    }
  }
  w.end_array();
}

// ---- endpoints ----------------------------------------------------------------------------------

void endpoint_head(Writer& w, const Snapshot& s, const config::Endpoint& ep) {
  w.begin_object()
      .field("address", ep.address.to_string())
      .field("ip", ep.address.ip().to_string())
      .field("port", ep.address.port())
      .field("hbone_address", net::SockAddr(ep.pod->ip, s.bootstrap.upstream.hbone_port).to_string())
      .field("pod", ep.pod->name)
      .field("service_account", ep.pod->service_account())
      .field("spiffe_id", ep.pod->spiffe_id())
      .field("health", "HEALTHY");  // only ready pods are endpoints
}

void routed_endpoints(Writer& w, const Snapshot& s, const config::RoutedCluster& c, const HostLookup& lookup) {
  w.begin_object()
      .field("cluster", c.name)
      .field("service_fqdn", c.service->fqdn)
      .field("outlier_detection", c.policy.outlier_detection);
  w.key("endpoints").begin_array();
  for (size_t i = 0; i < c.endpoints.size(); ++i) {
    HostRuntime rt = lookup ? lookup(c, i) : HostRuntime{};
    endpoint_head(w, s, c.endpoints[i]);
    w.field("outlier", rt.ejected ? "FAILED" : "OK")
        .field("ejected", rt.ejected)
        .field("ejected_on_workers", rt.ejected_on_workers)
        .field("consecutive_5xx", rt.consecutive_5xx)
        .field("active_requests", rt.active_requests)
        .end_object();
  }
  w.end_array().end_object();
}

// TCP tunnels of a service port: round robin, no outlier detection, so no runtime state to show.
void chain_endpoints(Writer& w, const Snapshot& s, const config::VipChain& chain) {
  w.begin_object()
      .field("cluster", chain.cluster.name)
      .field("service_fqdn", chain.service->fqdn)
      .field("outlier_detection", false);
  w.key("endpoints").begin_array();
  for (const auto& ep : chain.cluster.endpoints) {
    endpoint_head(w, s, ep);
    w.field("outlier", "OK").end_object();
  }
  w.end_array().end_object();
}

void write_endpoints(Writer& w, const Snapshot& s, const HostLookup& lookup) {
  struct Entry {
    const std::string* name;
    const config::RoutedCluster* routed = nullptr;
    const config::VipChain* chain = nullptr;
  };
  std::vector<Entry> entries;
  for (const auto& [name, c] : s.clusters) {
    entries.push_back({&name, c.get(), nullptr});
  }
  for (const config::VipChain* chain : extra_chain_clusters(s)) {
    entries.push_back({&chain->cluster.name, nullptr, chain});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return *a.name < *b.name; });
  w.begin_array();
  for (const Entry& e : entries) {
    if (e.routed != nullptr) {
      routed_endpoints(w, s, *e.routed, lookup);
    } else {
      chain_endpoints(w, s, *e.chain);
    }
  }
  w.end_array();
}

// ---- authorization ------------------------------------------------------------------------------

// Istio's pattern syntax: "abc", "abc*", "*abc", "*".
std::string pattern(const filters::StringMatch& m) {
  switch (m.kind) {
    case filters::StringMatch::Kind::Exact:
      return m.value;
    case filters::StringMatch::Kind::Prefix:
      return m.value + "*";
    case filters::StringMatch::Kind::Suffix:
      return "*" + m.value;
    case filters::StringMatch::Kind::Any:
      return "*";
  }
  return m.value;
}

std::string cidr(const filters::Cidr& c) {
  bool host = c.prefix == (c.base.is_v4() ? 32 : 128);
  return host ? c.base.to_string() : c.base.to_string() + "/" + std::to_string(c.prefix);
}

void patterns(Writer& w, std::string_view key, const std::vector<filters::StringMatch>& values) {
  if (values.empty()) {
    return;
  }
  w.key(key).begin_array();
  for (const auto& v : values) {
    w.string(pattern(v));
  }
  w.end_array();
}

void cidrs(Writer& w, std::string_view key, const std::vector<filters::Cidr>& values) {
  if (values.empty()) {
    return;
  }
  w.key(key).begin_array();
  for (const auto& v : values) {
    w.string(cidr(v));
  }
  w.end_array();
}

// Ports are strings in AuthorizationPolicy.
void ports(Writer& w, std::string_view key, const std::vector<uint16_t>& values) {
  if (values.empty()) {
    return;
  }
  w.key(key).begin_array();
  for (uint16_t p : values) {
    w.string(std::to_string(p));
  }
  w.end_array();
}

void strings(Writer& w, std::string_view key, const std::vector<std::string>& values) {
  if (!values.empty()) {
    string_list(w, key, values);
  }
}

void source(Writer& w, const filters::Source& src) {
  w.begin_object().key("source").begin_object();
  patterns(w, "principals", src.principals);
  patterns(w, "notPrincipals", src.not_principals);
  patterns(w, "namespaces", src.namespaces);
  patterns(w, "notNamespaces", src.not_namespaces);
  patterns(w, "serviceAccounts", src.service_accounts);
  patterns(w, "notServiceAccounts", src.not_service_accounts);
  cidrs(w, "ipBlocks", src.ip_blocks);
  cidrs(w, "notIpBlocks", src.not_ip_blocks);
  cidrs(w, "remoteIpBlocks", src.remote_ip_blocks);
  cidrs(w, "notRemoteIpBlocks", src.not_remote_ip_blocks);
  w.end_object().end_object();
}

void operation(Writer& w, const filters::Operation& op) {
  w.begin_object().key("operation").begin_object();
  patterns(w, "hosts", op.hosts);
  patterns(w, "notHosts", op.not_hosts);
  ports(w, "ports", op.ports);
  ports(w, "notPorts", op.not_ports);
  strings(w, "methods", op.methods);
  strings(w, "notMethods", op.not_methods);
  patterns(w, "paths", op.paths);
  patterns(w, "notPaths", op.not_paths);
  w.end_object().end_object();
}

std::string condition_key(const filters::Condition& c) {
  using Key = filters::Condition::Key;
  switch (c.key) {
    case Key::RequestHeader:
      return "request.headers[" + c.header + "]";
    case Key::SourceIp:
      return "source.ip";
    case Key::RemoteIp:
      return "remote.ip";
    case Key::SourceNamespace:
      return "source.namespace";
    case Key::SourcePrincipal:
      return "source.principal";
    case Key::SourceServiceAccount:
      return "source.serviceAccount";
    case Key::DestinationIp:
      return "destination.ip";
    case Key::DestinationPort:
      return "destination.port";
    case Key::ConnectionSni:
      return "connection.sni";
  }
  return "unknown";
}

void condition(Writer& w, const filters::Condition& c) {
  w.begin_object().field("key", condition_key(c));
  // Only the vectors of the key's type are filled (string patterns, CIDRs or ports).
  patterns(w, "values", c.values);
  cidrs(w, "values", c.cidrs);
  ports(w, "values", c.ports);
  patterns(w, "notValues", c.not_values);
  cidrs(w, "notValues", c.not_cidrs);
  ports(w, "notValues", c.not_ports);
  w.end_object();
}

void rule(Writer& w, const filters::Rule& r) {
  w.begin_object();
  if (!r.from.empty()) {
    w.key("from").begin_array();
    for (const auto& src : r.from) {
      source(w, src);
    }
    w.end_array();
  }
  if (!r.to.empty()) {
    w.key("to").begin_array();
    for (const auto& op : r.to) {
      operation(w, op);
    }
    w.end_array();
  }
  if (!r.when.empty()) {
    w.key("when").begin_array();
    for (const auto& c : r.when) {
      condition(w, c);
    }
    w.end_array();
  }
  w.end_object();
}

// In evaluation order: DENY, then AUDIT, then ALLOW.
void policy_set(Writer& w, const filters::PolicySet& set) {
  w.begin_array();
  for (const auto* list : {&set.deny(), &set.audit(), &set.allow()}) {
    for (const filters::Policy& p : *list) {
      w.begin_object().field("name", p.name).field("action", filters::to_string(p.action)).key("rules").begin_array();
      for (const auto& r : p.rules) {
        rule(w, r);
      }
      w.end_array().end_object();
    }
  }
  w.end_array();
}

void write_authorization(Writer& w, const Snapshot& s) {
  w.begin_object().field("policy_count", s.authz_policy_count).key("gateway");
  policy_set(w, s.authz_gateway);
  // Each Service's set is what its chains evaluate: the Gateway's policies plus its own.
  std::vector<const std::string*> names;
  for (const auto& [name, set] : s.authz_services) {
    names.push_back(&name);
  }
  std::sort(names.begin(), names.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
  w.key("services").begin_array();
  for (const std::string* name : names) {
    w.begin_object().field("service", *name).key("policies");
    policy_set(w, s.authz_services.at(*name));
    w.end_object();
  }
  w.end_array().end_object();
}

// More than a dump of `s` takes (measured on 10,000 × 10: ~180 bytes per endpoint listed, ~1.5 KB
// per cluster and chain with its routes), so that its writer reserves once.
size_t size_hint(const Snapshot& s) {
  size_t endpoints = 0;
  for (const auto& [name, c] : s.clusters) {
    endpoints += c->endpoints.size();
  }
  for (const config::VipChain* chain : extra_chain_clusters(s)) {
    endpoints += chain->cluster.endpoints.size();
  }
  return 64 * 1024 + 512 * endpoints + 4096 * (s.clusters.size() + s.vip_chains.size());
}

}  // namespace

std::string listeners_json(const Snapshot& s) {
  Writer w;
  write_listeners(w, s);
  return w.take();
}

std::string clusters_json(const Snapshot& s) {
  Writer w;
  write_clusters(w, s);
  return w.take();
}

std::string routes_json(const Snapshot& s) {
  Writer w;
  write_routes(w, s);
  return w.take();
}

std::string endpoints_json(const Snapshot& s, const HostLookup& lookup) {
  Writer w;
  w.reserve(size_hint(s));
  write_endpoints(w, s, lookup);
  return w.take();
}

std::string authorization_json(const Snapshot& s) {
  Writer w;
  write_authorization(w, s);
  return w.take();
}

std::string config_dump_json(const Snapshot& s, const HostLookup& lookup) {
  Writer w;
  w.reserve(size_hint(s));
  w.begin_object()
      .field("version", s.version)
      .field("loaded_at", rfc3339(s.loaded_at))
      .field("source_file", s.source_file)
      .field("namespace", s.bootstrap.namespace_)
      .field("gateway", s.gateway.name);
  w.key("listeners");
  write_listeners(w, s);
  w.key("clusters");
  write_clusters(w, s);
  w.key("routes");
  write_routes(w, s);
  w.key("endpoints");
  write_endpoints(w, s, lookup);
  w.key("authorization");
  write_authorization(w, s);
  // Objects of the Kubernetes API mode left out of this configuration (SPEC §7).
  w.key("rejected");
  w.begin_array();
  for (const auto& r : s.rejected) {
    w.begin_object()
        .field("kind", r.kind)
        .field("name", r.name)
        .field("resourceVersion", r.resource_version)
        .field("reason", r.reason)
        .end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

}  // namespace wp::admin
