#include "waypoint/admin/explain.h"

#include <cstdint>
#include <cstdio>
#include <sstream>

#include "waypoint/filters/authz.h"
#include "waypoint/http/headers.h"
#include "waypoint/internal/listener.h"
#include "waypoint/proxy/pipeline.h"
#include "waypoint/router/policy.h"
#include "waypoint/router/route_match.h"

namespace wp::admin {

namespace {

using internal::ChainMatch;
using internal::Sniffed;

// ---- wording -------------------------------------------------------------------------------------

std::string percent(double part, double total) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g%%", total == 0 ? 0.0 : 100.0 * part / total);
  return buf;
}

// Durations as they are written in the config ("2s", "250ms").
std::string duration(config::Millis d) {
  auto ms = d.count();
  return ms != 0 && ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

std::string load_balancer(const config::ClusterPolicy& p) {
  if (p.load_balancer == config::LoadBalancer::ConsistentHash) {
    return "consistentHash on header " + p.hash_header;
  }
  return std::string(config::to_string(p.load_balancer));
}

std::string retry_on_names(uint32_t bits) {
  std::string names = config::retry_on_names(bits);
  return names.empty() ? "nothing" : names;
}

std::string string_match(const config::StringMatch& m) {
  static constexpr const char* kKinds[] = {"exact", "prefix", "regex", "pathPrefix"};
  return std::string(kKinds[static_cast<int>(m.kind)]) + " \"" + m.value + "\"" +
         (m.ignore_case ? " (ignoring case)" : "");
}

std::string key_match(const char* what, const config::KeyMatch& k) {
  return std::string(k.invert ? "without " : "") + what + " " + k.name + " " +
         (k.value ? string_match(*k.value) : std::string("present"));
}

std::string describe_block(const config::RouteMatch& m) {
  std::vector<std::string> parts;
  if (m.uri) {
    parts.push_back("uri " + string_match(*m.uri));
  }
  if (m.method) {
    parts.push_back("method " + string_match(*m.method));
  }
  if (m.authority) {
    parts.push_back("authority " + string_match(*m.authority));
  }
  for (const auto& h : m.headers) {
    parts.push_back(key_match("header", h));
  }
  for (const auto& q : m.query_params) {
    parts.push_back(key_match("query parameter", q));
  }
  std::string out;
  for (const auto& p : parts) {
    out += (out.empty() ? "" : ", ") + p;
  }
  return out.empty() ? "every request" : out;
}

std::string join_pairs(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string out;
  for (const auto& [k, v] : pairs) {
    out += (out.empty() ? "" : ", ") + k + ": " + v;
  }
  return out;
}

std::string describe_mutation(const config::HeaderMutation& m) {
  if (m.empty()) {
    return "none";
  }
  std::string out;
  auto part = [&](const std::string& text) { out += (out.empty() ? "" : "; ") + text; };
  if (!m.remove.empty()) {
    std::string names;
    for (const auto& n : m.remove) {
      names += (names.empty() ? "" : ", ") + n;
    }
    part("remove " + names);
  }
  if (!m.set.empty()) {
    part("set " + join_pairs(m.set));
  }
  if (!m.add.empty()) {
    part("add " + join_pairs(m.add));
  }
  return out;
}

// ---- the request as the data path would see it --------------------------------------------------

// What one explanation works on: the chain, the client, and the HTTP request when there is one.
struct Context {
  const config::Snapshot& snapshot;
  const ExplainRequest& request;
  ChainMatch chain;
  net::IpAddr source_ip;
  http::HeaderMap headers;
  std::string authority;
  std::string_view path, query;  // views into request.path
  std::ostringstream out;
};

std::string default_authority(const ChainMatch& chain, const net::SockAddr& to) {
  if (chain.kind == ChainMatch::Kind::Vip) {
    return chain.vip->service->fqdn + ":" + std::to_string(to.port());
  }
  return to.to_string();
}

// The Host header is the authority the HTTP/1.1 codec hands on, so it wins over the default.
std::string effective_authority(const ExplainRequest& r, const http::HeaderMap& headers, const ChainMatch& chain) {
  if (!r.authority.empty()) {
    return r.authority;
  }
  if (auto host = headers.get("host")) {
    return std::string(*host);
  }
  return default_authority(chain, r.to);
}

const config::Pod* pod_with_identity(const config::Snapshot& s, const std::string& principal) {
  for (const config::Pod& pod : s.pods) {
    if (pod.spiffe_id() == principal) {
      return &pod;
    }
  }
  return nullptr;
}

void print_source(Context& c) {
  if (c.request.source_ip) {
    c.source_ip = *c.request.source_ip;
    c.out << "  source " << c.source_ip.to_string() << " (--source-ip)\n";
  } else if (const config::Pod* pod = pod_with_identity(c.snapshot, c.request.principal)) {
    c.source_ip = pod->ip;
    c.out << "  source " << c.source_ip.to_string() << " (pod " << pod->name
          << ", the first served pod with this identity)\n";
  } else {
    c.out << "  source 0.0.0.0 (unknown: no served pod has this identity; pass --source-ip when policies use "
             "ipBlocks or source.ip)\n";
  }
}

// ---- authorization -------------------------------------------------------------------------------

// The policies of a VIP chain are its Service's plus the Gateway's; a pod IP gets the Gateway's.
std::string target_of(const Context& c) {
  std::string gateway = "Gateway " + c.snapshot.gateway.name;
  if (c.chain.kind == ChainMatch::Kind::Vip) {
    return "Service " + c.chain.vip->service->name + " or the " + gateway;
  }
  return "the " + gateway + " (a pod IP gets the Gateway's policies)";
}

void print_policies(std::ostream& out, const filters::PolicySet& set) {
  std::string names;
  for (const auto* list : {&set.deny(), &set.audit(), &set.allow()}) {
    for (const filters::Policy& p : *list) {
      names += (names.empty() ? "" : ", ") + std::string(filters::to_string(p.action)) + " " + p.name;
    }
  }
  out << "  policies in force: " << names << "\n";
}

// Which AUDIT policies matched: the verdict only says that one did, so each is asked alone.
void print_audits(std::ostream& out, const filters::PolicySet& set, const filters::Attributes& a) {
  for (const filters::Policy& p : set.audit()) {
    filters::PolicySet one;
    one.add(p);
    filters::Verdict v = one.evaluate(a);
    if (v.audited) {
      out << "  audited by AUDIT " << p.name << "\n";
    }
  }
}

// On a TCP chain a rule that needs HTTP attributes fails closed: say so, or a deny looks arbitrary.
void print_l4_notes(std::ostream& out, const filters::PolicySet& set) {
  for (const auto* list : {&set.deny(), &set.allow()}) {
    for (const filters::Policy& p : *list) {
      for (size_t i = 0; i < p.rules.size(); ++i) {
        if (!p.rules[i].needs_l7) {
          continue;
        }
        out << "  note: " << filters::to_string(p.action) << " " << p.name << " rule " << i
            << " uses HTTP fields (hosts, methods, paths, request.headers): on a TCP chain "
            << (p.action == filters::Action::Allow ? "it never matches (fail closed)"
                                                   : "they are ignored and the rest of the rule decides")
            << "\n";
      }
    }
  }
}

void print_verdict(std::ostream& out, const filters::PolicySet& set, const filters::Verdict& v) {
  out << "authorization: ";
  if (v.decided_by != nullptr) {
    out << (v.allowed ? "allowed" : "denied") << " by " << filters::to_string(v.decided_by->action) << " policy "
        << v.decided_by->name << ", rule " << v.rule << "\n";
  } else if (v.allowed) {
    out << "allowed: no ALLOW policy applies and no DENY policy matched\n";
  } else {
    out << "denied: no ALLOW policy matched (ALLOW:";
    for (const filters::Policy& p : set.allow()) {
      out << " " << p.name;
    }
    out << ")\n";
  }
}

const filters::PolicySet& policies_of(const Context& c) {
  return c.snapshot.authz_for(c.chain.kind == ChainMatch::Kind::Vip ? c.chain.vip : nullptr);
}

// Prints an authorization verdict: the HTTP pipeline's (the Authz stage), or the TCP chain's.
void print_authorization(Context& c, const filters::Verdict& v, bool http) {
  const filters::PolicySet& set = policies_of(c);
  if (set.empty()) {
    c.out << "authorization: allowed: no AuthorizationPolicy targets " << target_of(c) << "\n";
    return;
  }
  auto a = filters::Attributes::l4(c.request.principal, c.source_ip, c.request.to);
  if (http) {
    a.http = true;
    a.host = c.authority;
    a.method = c.request.method;
    a.path = c.path;
    a.header = [](const void* ctx, std::string_view name) {
      return static_cast<const http::HeaderMap*>(ctx)->get(name);
    };
    a.header_ctx = &c.headers;
  }
  print_verdict(c.out, set, v);
  c.out << "  policies targeting " << target_of(c) << ", evaluated with "
        << (http ? "the request's L7 attributes" : "L4 attributes only (TCP)") << "\n";
  print_policies(c.out, set);
  if (v.audited) {
    print_audits(c.out, set, a);
  }
  if (!http) {
    print_l4_notes(c.out, set);
  }
}

// Evaluates as InternalListener::authorize_l4 does on a TCP chain.
bool authorize_l4(Context& c) {
  const filters::PolicySet& set = policies_of(c);
  filters::Verdict v;
  if (!set.empty()) {
    v = set.evaluate(filters::Attributes::l4(c.request.principal, c.source_ip, c.request.to));
  }
  print_authorization(c, v, false);
  return v.allowed;
}

// ---- endpoints and clusters ----------------------------------------------------------------------

void print_endpoint(std::ostream& out, const config::Endpoint& ep, const char* indent) {
  out << indent << ep.pod->name << "  " << ep.address.to_string() << "  " << ep.pod->spiffe_id() << "\n";
}

void print_endpoints(std::ostream& out, const std::vector<config::Endpoint>& endpoints, const char* indent) {
  if (endpoints.empty()) {
    out << indent << "no ready endpoint: 503 \"no healthy upstream\" (UH)\n";
  }
  for (const config::Endpoint& ep : endpoints) {
    print_endpoint(out, ep, indent);
  }
}

void print_routed_cluster(std::ostream& out, const config::RoutedCluster& rc) {
  out << "      ";
  if (!rc.subset.empty()) {
    out << "subset " << rc.subset << " of ";
  }
  out << (rc.destination_rule.empty() ? std::string("no DestinationRule") : "DestinationRule " + rc.destination_rule)
      << "; load balancer " << load_balancer(rc.policy);
  if (rc.policy.outlier_detection) {
    out << "; outlier detection after " << rc.policy.consecutive_5xx_errors << " consecutive 5xx";
  }
  out << "\n";
  print_endpoints(out, rc.endpoints, "      ");
}

void print_weighted(std::ostream& out, const std::vector<config::WeightedCluster>& clusters, uint32_t total,
                    bool with_endpoints) {
  for (const config::WeightedCluster& w : clusters) {
    out << "  " << percent(w.weight, total) << "  " << w.cluster->name << " (weight " << w.weight << "/" << total
        << ")\n";
    if (with_endpoints) {
      print_routed_cluster(out, *w.cluster);
    }
  }
}

// ---- HTTP ----------------------------------------------------------------------------------------

void print_chain(Context& c, Sniffed as) {
  c.out << "chain: " << c.chain.name(as) << "\n";
  if (c.chain.kind == ChainMatch::Kind::Pod) {
    const config::Pod& pod = *c.chain.pod;
    c.out << "  pod IP of " << pod.name << " (" << pod.spiffe_id() << "): forwarded to that pod, cluster encap\n";
    return;
  }
  const config::ServicePort& port = *c.chain.vip->port;
  c.out << "  Service " << c.chain.vip->service->name << " port " << (port.name.empty() ? "-" : port.name) << "/"
        << port.port;
  if (!port.app_protocol.empty()) {
    c.out << " appProtocol " << port.app_protocol;
  }
  switch (c.chain.vip->protocol) {
    case config::ChainProtocol::Http:
      c.out << ": HTTP\n";
      break;
    case config::ChainProtocol::Tcp:
      c.out << ": TCP\n";
      break;
    case config::ChainProtocol::Sniff:
      c.out << ": sniffed (the client's first bytes decide)\n";
      break;
  }
}

void print_match(Context& c, const config::RouteTable* table, const config::Route& route,
                 const router::RequestView& view) {
  if (table == nullptr) {
    c.out << "route: default (direct): every request to the pod\n";
    return;
  }
  // A table without sources is the Service's default route: say so rather than "default (default)".
  std::string source =
      table->sources.empty() ? "no VirtualService or HTTPRoute: the Service's own cluster" : route.source;
  c.out << "route: " << (route.name.empty() ? "-" : route.name) << " (" << source << "), route ["
        << (&route - table->routes.data()) << "] of " << table->routes.size() << " in RouteTable " << table->name
        << "\n";
  const config::RouteMatch* block = router::matched_block(route, view);
  if (block == nullptr) {
    c.out << "  match: every request (the route has no match block)\n";
    return;
  }
  c.out << "  match block [" << (block - route.matches.data()) << "]" << (block->name.empty() ? "" : " " + block->name)
        << ": " << describe_block(*block) << "\n";
}

void print_fault(std::ostream& out, const config::FaultPolicy& f) {
  if (!f.has_delay && !f.has_abort) {
    return;
  }
  out << "fault:";
  if (f.has_delay) {
    out << " delay " << duration(f.delay) << " for " << percent(f.delay_per_million, 1'000'000) << " of requests (DI);";
  }
  if (f.has_abort) {
    out << " abort " << f.abort_status << " \"fault filter abort\" for " << percent(f.abort_per_million, 1'000'000)
        << " of requests (FI);";
  }
  out << "\n";
}

void print_rewrite(std::ostream& out, const config::Route& route, const router::RequestView& view) {
  if (route.rewrite.path_kind != config::PathRewrite::None) {
    out << "rewrite: path " << router::rewritten_path(route, view) << "\n";
  }
  if (!route.rewrite.authority.empty()) {
    out << "rewrite: authority " << route.rewrite.authority << "\n";
  }
}

void print_retry(std::ostream& out, const config::Route& route) {
  const config::RetryPolicy& r = route.retry;
  out << "retries: ";
  if (r.num_retries == 0) {
    out << "none (disabled)\n";
  } else {
    out << r.num_retries << " (up to " << r.num_retries + 1 << " tries) on " << retry_on_names(r.retry_on);
    if ((r.retry_on & config::kRetryRetriableStatusCodes) != 0) {
      out << "; retriable status codes";
      for (uint16_t code : r.retriable_status_codes) {
        out << " " << code;
      }
    }
    out << "; per-try timeout " << (r.per_try_timeout ? duration(*r.per_try_timeout) : std::string("none"));
    out << (r.previous_hosts ? "; each retry prefers a host not tried before" : "") << "\n";
  }
  out << "timeout: " << (route.timeout ? duration(*route.timeout) : std::string("none")) << "\n";
}

// Whether the upstream request goes as h2c, as InternalListener::start_http decides it.
void print_upstream_protocol(Context& c) {
  if (c.chain.kind == ChainMatch::Kind::Vip && c.chain.vip->port->http2) {
    c.out << "upstream protocol: h2c (the Service port says http2/h2c/grpc)\n";
  } else if (c.chain.kind == ChainMatch::Kind::Vip && c.chain.vip->protocol == config::ChainProtocol::Http) {
    c.out << "upstream protocol: HTTP/1.1\n";
  } else {
    c.out << "upstream protocol: as the client speaks (HTTP/1.1, or h2c when the client sends h2c)\n";
  }
}

void print_forwarding(Context& c, const config::Route& route, bool direct) {
  c.out << "clusters:\n";
  if (direct) {
    c.out << "  100%  encap (the addressed pod)\n";
    config::Endpoint ep{c.chain.pod, c.request.to};
    print_endpoint(c.out, ep, "      ");
  } else {
    print_weighted(c.out, route.clusters, route.total_weight, true);
  }
  for (const config::Mirror& m : route.mirrors) {
    if (m.cluster != nullptr) {
      c.out << "mirror: " << percent(m.per_million, 1'000'000) << " of requests to " << m.cluster->name
            << " (authority suffixed -shadow, response dropped)\n";
    }
  }
  print_retry(c.out, route);
  c.out << "request headers: " << describe_mutation(route.request_headers) << "\n";
  c.out << "response headers: " << describe_mutation(route.response_headers) << "\n";
  print_upstream_protocol(c);
}

// Prints each decision of the pipeline's stages (proxy/pipeline.h) as the dry run goes; the
// request's end, when a stage answers it, with its exit code.
class ExplainSink final : public proxy::StageSink {
 public:
  explicit ExplainSink(Context& c) : c_(c) {}
  int code = kExplainAllowed;

  void on_stage(proxy::Stage stage, const proxy::StageInput& in, const proxy::StageResult& r) override {
    using proxy::Stage;
    std::ostream& out = c_.out;
    switch (stage) {
      case Stage::Headers:
        if (r.stop) {
          out << "result: " << r.status << " \"" << r.body << "\" (" << r.flags << ")\n";
          code = kExplainRefused;
        }
        return;
      case Stage::Authz:
        print_authorization(c_, r.verdict, true);
        if (r.stop) {
          out << "result: 403 \"RBAC: access denied\"\n";
          code = kExplainDenied;
        }
        return;
      case Stage::Route: {
        if (r.stop) {
          if (in.routes == nullptr) {
            out << "route: none: no RouteTable for " << c_.request.to.to_string() << "\nresult: 404 (NR)\n";
          } else {
            out << "route: none of the " << in.routes->routes.size() << " routes of RouteTable " << in.routes->name
                << " matches\nresult: 404 (NR)\n";
          }
          code = kExplainNoRoute;
          return;
        }
        proxy::MapSource source(*in.headers);
        router::RequestView view{in.method, in.path, in.query, in.authority, in.port, &source};
        print_match(c_, in.direct ? nullptr : in.routes, *r.route, view);
        return;
      }
      case Stage::Redirect:
        out << "result: redirect " << r.status << " to " << r.extra.get("location").value_or("") << "\n";
        return;
      case Stage::DirectResponse:
        out << "result: direct response " << r.status;
        if (!r.body.empty()) {
          out << " \"" << r.body << "\"";
        }
        out << "\n";
        return;
      case Stage::Fault:
        print_fault(out, r.route->fault);
        if (r.stop) {
          out << "result: every request is aborted " << r.status << " (" << r.flags << ")\n";
        }
        return;
    }
  }

 private:
  Context& c_;
};

int explain_http(Context& c) {
  router::split_target(c.request.path, c.path, c.query);
  c.authority = effective_authority(c.request, c.headers, c.chain);
  c.out << "request: " << c.request.method << " " << c.request.path << ", authority " << c.authority << "\n";
  print_chain(c, Sniffed::Http1);
  c.out << "  the CONNECT is answered 200 at once; each request inside the tunnel is decided as below\n";
  const bool direct = c.chain.kind == ChainMatch::Kind::Pod;
  proxy::StageInput in;
  in.snapshot = &c.snapshot;
  in.authz = &policies_of(c);
  in.direct = direct;
  in.routes = direct ? nullptr : c.chain.vip->routes;  // as the data path reads it
  in.method = c.request.method;
  in.path = c.path;
  in.query = c.query;
  in.authority = c.authority;
  in.port = c.request.to.port();
  in.headers = &c.headers;
  in.principal = c.request.principal;
  in.source_ip = c.source_ip;
  in.destination = c.request.to;
  // A fault decided only when it is certain: explain describes the odds, the data path draws.
  in.random_delay = in.random_abort = UINT32_MAX;
  ExplainSink sink(c);
  proxy::StageResult r = proxy::run_stages(in, &sink);
  if (r.stop) {
    return sink.code;
  }
  const config::Route& route = *r.route;
  proxy::MapSource source(c.headers);
  router::RequestView view{c.request.method, c.path, c.query, c.authority, c.request.to.port(), &source};
  print_rewrite(c.out, route, view);
  if (!direct && route.clusters.empty()) {
    c.out << "result: 503 \"no healthy upstream\" (UH): the route has no cluster\n";
    return kExplainAllowed;
  }
  print_forwarding(c, route, direct);
  c.out << "result: forwarded\n";
  return kExplainAllowed;
}

// ---- TCP -----------------------------------------------------------------------------------------

int explain_tcp(Context& c) {
  print_chain(c, Sniffed::Tcp);
  const bool tcp_port = c.chain.kind == ChainMatch::Kind::Vip && c.chain.vip->protocol == config::ChainProtocol::Tcp;
  c.out << (tcp_port ? "  the CONNECT is answered once the upstream tunnel is up\n"
                     : "  the CONNECT was answered 200 before sniffing; the bytes turned out not to be HTTP\n");
  if (!authorize_l4(c)) {
    c.out << (tcp_port ? "result: the CONNECT is answered 401; the pod is never dialled\n"
                       : "result: the tunnel is reset; the pod is never dialled\n");
    return kExplainDenied;
  }
  if (c.chain.kind == ChainMatch::Kind::Pod) {
    c.out << "cluster: encap (the addressed pod, same port)\n";
    print_endpoint(c.out, config::Endpoint{c.chain.pod, c.request.to}, "      ");
    c.out << "result: forwarded\n";
    return kExplainAllowed;
  }
  if (const config::TcpRouteTable* t = c.chain.vip->tcp_routes; t != nullptr && !t->route.clusters.empty()) {
    // As InternalListener::pick_tcp_endpoint: a weighted pick of the route's clusters, then round
    // robin within the picked one.
    c.out << "tcp route: " << t->source
          << " (a weighted pick per tunnel, round robin within the cluster; a cluster without ready endpoints: "
          << (tcp_port ? "503" : "reset") << ")\n";
    print_weighted(c.out, t->route.clusters, t->route.total_weight, true);
    c.out << "result: forwarded\n";
    return kExplainAllowed;
  }
  const config::Cluster& cluster = c.chain.vip->cluster;
  c.out << "cluster: " << cluster.name << " (round robin over its ready endpoints, per worker)\n";
  print_endpoints(c.out, cluster.endpoints, "      ");
  if (cluster.endpoints.empty()) {
    c.out << (tcp_port ? "result: the CONNECT is answered 503 (UH)\n" : "result: the tunnel is reset\n");
    return kExplainAllowed;
  }
  c.out << "result: forwarded\n";
  return kExplainAllowed;
}

// ---- putting it together -------------------------------------------------------------------------

enum class Plan { Http, Tcp, Both };

// The data path decides by the port first; only a sniffed chain lets the client's bytes choose.
Plan plan_for(const ChainMatch& chain, ExplainRequest::Protocol asked, std::ostream& out) {
  using P = ExplainRequest::Protocol;
  if (chain.kind == ChainMatch::Kind::Vip && chain.vip->protocol == config::ChainProtocol::Tcp) {
    if (asked == P::Http) {
      out << "note: the port is TCP: bytes are copied, HTTP is never parsed; explained as TCP\n";
    }
    return Plan::Tcp;
  }
  if (chain.kind == ChainMatch::Kind::Vip && chain.vip->protocol == config::ChainProtocol::Http) {
    if (asked == P::Tcp) {
      out << "note: the port is HTTP: bytes that are not HTTP get 400 from the codec; explained as HTTP\n";
    }
    return Plan::Http;
  }
  return asked == P::Http ? Plan::Http : asked == P::Tcp ? Plan::Tcp : Plan::Both;
}

void print_client(Context& c) {
  c.out << "client: " << c.request.principal << "\n";
  print_source(c);
  c.out << "destination: " << c.request.to.to_string() << "\n";
}

}  // namespace

Explanation explain(const config::Snapshot& snapshot, const ExplainRequest& request) {
  Context c{snapshot, request, internal::select_chain(snapshot, request.to), net::IpAddr(), {}, {}, {}, {}, {}};
  for (const auto& [name, value] : request.headers) {
    c.headers.add(name, value);
  }
  print_client(c);
  if (c.chain.kind == ChainMatch::Kind::None) {
    c.out << "chain: none: " << request.to.to_string()
          << " is neither a served Service VIP:port nor a served pod IP\nresult: the CONNECT is answered 503 (NR)\n";
    return {kExplainNoRoute, c.out.str()};
  }
  int code = kExplainAllowed;
  switch (plan_for(c.chain, request.protocol, c.out)) {
    case Plan::Http:
      code = explain_http(c);
      break;
    case Plan::Tcp:
      code = explain_tcp(c);
      break;
    case Plan::Both: {
      c.out << "\n== if the client speaks HTTP (HTTP/1.1 or h2c) ==\n";
      int http = explain_http(c);
      c.out << "\n== if it speaks anything else (or is silent for 300 ms) ==\n";
      int tcp = explain_tcp(c);
      code = http != kExplainAllowed ? http : tcp;
      break;
    }
  }
  return {code, c.out.str()};
}

}  // namespace wp::admin
