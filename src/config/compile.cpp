// Scope and compile: pick the served Gateway, Pods and Services, compute each Service's endpoints,
// bind and build its route tables, its policy set and its VIP chains, and the pod-IP index; every
// result is an immutable piece (pieces.h). Compiler::update rebuilds the pieces of the Services a
// change touches and shares the rest with the previous Snapshot.
#include <algorithm>

#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include "waypoint/config/names.h"

#include "config/authz.h"
#include "config/compiler.h"
#include "config/routing.h"

namespace wp::config {

namespace {

constexpr std::string_view kUseWaypoint = "istio.io/use-waypoint";

bool selects(const std::map<std::string, std::string>& selector, const Pod& pod) {
  return !selector.empty() && std::all_of(selector.begin(), selector.end(), [&](const auto& kv) {
    auto it = pod.labels().find(kv.first);
    return it != pod.labels().end() && it->second == kv.second;
  });
}

std::string label_entry(const std::string& key, const std::string& value) {
  std::string e;
  e.reserve(key.size() + value.size() + 1);
  e.append(key).push_back('\0');
  e.append(value);
  return e;
}

// Pods by label, so that a selector visits only the pods carrying its rarest label instead of every
// pod of the namespace (services × pods was the cost of compiling a big namespace). Each list is in
// the order the pods were added; add_sorted keeps name order (the Kubernetes API mode's order).
class LabelIndex {
 public:
  void add(const Pod* pod) {
    for (const auto& [key, value] : pod->labels()) {
      by_label_[label_entry(key, value)].push_back(pod);
    }
  }
  void add_sorted(const Pod* pod) {
    for (const auto& [key, value] : pod->labels()) {
      auto& list = by_label_[label_entry(key, value)];
      list.insert(std::lower_bound(list.begin(), list.end(), pod, by_name), pod);
    }
  }
  void remove(const Pod* pod) {
    for (const auto& [key, value] : pod->labels()) {
      auto it = by_label_.find(label_entry(key, value));
      if (it == by_label_.end()) {
        continue;
      }
      auto& list = it->second;
      list.erase(std::remove(list.begin(), list.end(), pod), list.end());
      if (list.empty()) {
        by_label_.erase(it);
      }
    }
  }
  // Calls f(pod) for every pod `selector` selects, in the order of the lists.
  template <typename F>
  void for_each_selected(const std::map<std::string, std::string>& selector, F f) const {
    if (selector.empty()) {
      return;
    }
    const std::vector<const Pod*>* rarest = nullptr;
    for (const auto& [key, value] : selector) {
      auto it = by_label_.find(label_entry(key, value));
      if (it == by_label_.end()) {
        return;  // no pod carries this label
      }
      if (rarest == nullptr || it->second.size() < rarest->size()) {
        rarest = &it->second;
      }
    }
    for (const Pod* pod : *rarest) {
      if (selects(selector, *pod)) {
        f(*pod);
      }
    }
  }
  bool selects_any(const std::map<std::string, std::string>& selector) const {
    bool any = false;
    for_each_selected(selector, [&](const Pod&) { any = true; });
    return any;
  }

 private:
  static bool by_name(const Pod* a, const Pod* b) { return a->name < b->name; }
  std::unordered_map<std::string, std::vector<const Pod*>> by_label_;
};

std::string qualified(std::string_view kind, const std::string& namespace_, const std::string& name) {
  return std::string(kind) + " " + namespace_ + "/" + name;
}

void append(Diagnostics& to, const Diagnostics& from) {
  for (const auto& e : from.errors()) {
    to.error(e.at, e.message);
  }
  for (const auto& w : from.warnings()) {
    to.warning(w.at, w.message);
  }
  for (const auto& i : from.ignored()) {
    to.ignore(i);
  }
}

// The Gateway named by spec.gateway; other Gateways in the namespace are ignored.
std::optional<Gateway> select_gateway(const Resources& res, Diagnostics& diag) {
  const BootstrapResource& b = res.bootstrap;
  const GatewayResource* found = nullptr;
  for (const GatewayResource* g : res.gateways) {
    if (g->gateway.name == b.bootstrap.gateway) {
      found = g;
    } else {
      diag.ignore(qualified("Gateway", g->gateway.namespace_, g->gateway.name) + ": not this waypoint's gateway (" +
                  b.bootstrap.gateway + ")");
    }
  }
  if (found == nullptr) {
    if (!b.bootstrap.gateway.empty()) {
      std::string problem = "no Gateway " + b.bootstrap.gateway + " in namespace " + b.bootstrap.namespace_ +
                            " (gateway.networking.k8s.io/v1, gatewayClassName: istio-waypoint)";
      Reader r(diag, "WaypointBootstrap " + b.bootstrap.name);
      if (res.api_mode) {
        r.warn(b.gateway_at, "spec.gateway", problem + "; nothing is served until it exists");
      } else {
        r.error(b.gateway_at, "spec.gateway", problem);
      }
    }
    return std::nullopt;
  }
  check_gateway(*found, diag);
  return found->gateway;
}

// Why a pod is not served, or "" when it is (its IP may still clash with another's).
std::string pod_ignored(const PodResource& p, const Gateway& gateway) {
  const std::string& scope = gateway.for_service_account;
  if (!scope.empty() && p.pod->service_account() != scope) {
    return qualified("Pod", p.pod->namespace_(), p.pod->name) + ": service account " + p.pod->service_account() +
           " is not this waypoint's (" + scope + ")";
  }
  if (!p.has_ip) {
    return qualified("Pod", p.pod->namespace_(), p.pod->name) + ": no status.podIP (not running yet?)";
  }
  return {};
}

// Pods served by the waypoint: in its service account (when scoped) and with an IP.
std::vector<const PodResource*> select_pods(const Resources& res, const Gateway& gateway, Diagnostics& diag,
                                            std::map<std::string, std::string>& ignores) {
  std::vector<const PodResource*> served;
  std::unordered_map<net::IpAddr, const PodResource*> by_ip;
  for (const PodResource* p : res.pods) {
    if (std::string why = pod_ignored(*p, gateway); !why.empty()) {
      diag.ignore(why);
      ignores[p->pod->name] = std::move(why);
      continue;
    }
    auto [it, inserted] = by_ip.emplace(p->pod->ip, p);
    if (!inserted) {
      Reader(diag, "Pod " + p->pod->name)
          .error(p->ip_at, "status.podIP", p->pod->ip.to_string() + " is also the IP of pod " + it->second->pod->name);
      continue;
    }
    served.push_back(p);
  }
  return served;
}

// The waypoint a Service is labelled to use when it is not this one, else null.
const std::string* other_waypoint(const ServiceResource& s, const Gateway& gateway) {
  auto label = s.service.labels.find(std::string(kUseWaypoint));
  return label != s.service.labels.end() && label->second != gateway.name ? &label->second : nullptr;
}

// Services served: not opted out to another waypoint, and (when scoped) selecting a served pod.
std::vector<const ServiceResource*> select_services(const Resources& res, const Gateway& gateway,
                                                    const std::vector<const PodResource*>& pods, Diagnostics& diag) {
  std::vector<const ServiceResource*> served;
  std::optional<LabelIndex> scoped;  // the served pods, when the waypoint is scoped to an account
  if (!gateway.for_service_account.empty()) {
    scoped.emplace();
    for (const PodResource* p : pods) {
      scoped->add(p->pod.get());
    }
  }
  for (const ServiceResource* s : res.services) {
    std::string who = qualified("Service", s->service.namespace_, s->service.name);
    if (const std::string* other = other_waypoint(*s, gateway)) {
      diag.ignore(who + ": labelled " + std::string(kUseWaypoint) + "=" + *other + ", not this waypoint (" +
                  gateway.name + ")");
      continue;
    }
    if (scoped && !scoped->selects_any(s->service.selector)) {
      diag.ignore(who + ": selects no pod of service account " + gateway.for_service_account);
      continue;
    }
    served.push_back(s);
  }
  return served;
}

// Where a Service's endpoints find their pods: the served pods by name, every pod read (served or
// not) by name, and the stand-ins of endpoint addresses whose pod is unknown.
struct PodLookup {
  const std::unordered_map<std::string, const Pod*>& served;
  const std::unordered_map<std::string, const PodResource*>& known;
  const std::unordered_map<net::IpAddr, const Pod*>& stand_ins;
};

using SliceList = std::vector<const EndpointSliceResource*>;

// The endpoints of one Service port from its EndpointSlices: ready, not terminating, and (for a
// known pod) the pod itself ready; a pod the waypoint does not serve (another service account of
// a scoped waypoint) is left out. Returns false when no slice names the Service (then the
// selector decides, as without an endpoints controller: the file mode's hand-written pods).
bool slice_endpoints(const SliceList& slices, const ServicePort& port, const PodLookup& pods,
                     std::vector<Endpoint>& out) {
  for (const EndpointSliceResource* slice : slices) {
    auto p = std::find_if(slice->ports.begin(), slice->ports.end(),
                          [&](const auto& named) { return named.first == port.name; });
    if (p == slice->ports.end()) {
      continue;
    }
    for (const auto& ep : slice->endpoints) {
      if (!ep.ready || ep.terminating) {
        continue;
      }
      const Pod* pod = nullptr;
      if (!ep.pod.empty()) {
        if (auto it = pods.served.find(ep.pod); it != pods.served.end()) {
          pod = it->second;
        } else if (pods.known.count(ep.pod) != 0) {
          continue;  // a pod out of the waypoint's scope
        }
      }
      if (pod != nullptr && !pod->ready) {
        continue;  // e.g. deleted (deletionTimestamp) before the slice said so
      }
      for (const net::IpAddr& ip : ep.addresses) {
        const Pod* target = pod;
        if (target == nullptr) {
          auto it = pods.stand_ins.find(ip);
          if (it == pods.stand_ins.end()) {
            continue;
          }
          target = it->second;
        }
        out.push_back(Endpoint{target, net::SockAddr(ip, p->second)});
      }
    }
  }
  return !slices.empty();
}

// Whether a slice has a ready endpoint whose pod the waypoint does not know (it would need a
// stand-in Pod).
bool needs_stand_in(const EndpointSliceResource& slice, const PodLookup& pods) {
  return std::any_of(slice.endpoints.begin(), slice.endpoints.end(), [&](const auto& ep) {
    return ep.ready && !ep.terminating && !ep.addresses.empty() && pods.known.count(ep.pod) == 0;
  });
}

// A served Service with the endpoints of each port: from its slices, else its selector.
std::shared_ptr<Service> build_service(const ServiceResource& source, const SliceList& slices, const PodLookup& pods,
                                       const LabelIndex& index, Diagnostics& diag) {
  auto service = std::make_shared<Service>(source.service);
  Reader r(diag, "Service " + service->name);
  for (size_t j = 0; j < service->ports.size(); ++j) {
    ServicePort& port = service->ports[j];
    if (slice_endpoints(slices, port, pods, port.endpoints)) {
      continue;
    }
    index.for_each_selected(service->selector, [&](const Pod& pod) {
      uint16_t target = port.target_port_number;
      if (!port.target_port_name.empty()) {
        auto named = pod.named_ports().find(port.target_port_name);
        if (named == pod.named_ports().end()) {
          r.warn(source.port_marks[j].target_port, source.port_paths[j] + ".targetPort",
                 "pod " + pod.name + " has no port named " + port.target_port_name + "; not an endpoint");
          return;
        }
        target = named->second;
      }
      port.endpoints.push_back(Endpoint{&pod, net::SockAddr(pod.ip, target)});
    });
  }
  return service;
}

std::string chain_name(const ServicePort& port, const Service& service) {
  return inbound_vip_name(port.port, port.protocol == ChainProtocol::Http ? "http" : "tcp", service.fqdn);
}

// The chain of one VIP of a Service port, pointing at the port's tables (also put under the VIP)
// and at the Service's policy set.
void add_chain(const net::SockAddr& vip, const Service& service, const ServicePort& port,
               const RoutingCompiler::Tables& t, Snapshot& s) {
  auto chain = std::make_shared<VipChain>();
  chain->name = chain_name(port, service);
  chain->service = &service;
  chain->port = &port;
  chain->protocol = port.protocol;
  chain->cluster = Cluster{chain->name, port.endpoints};
  chain->authz = s.authz_services.find_piece(service.name);
  chain->routes = t.http.get();
  chain->tcp_routes = t.tcp.get();
  if (t.http) {
    s.route_tables.emplace(vip, t.http);
  }
  if (t.tcp) {
    s.tcp_routes.emplace(vip, t.tcp);
  }
  s.vip_chains.emplace(vip, std::move(chain));
}

}  // namespace

// What compile() keeps for update(): the inputs' pointers, the indexes a change is looked up in,
// and each Service's part of the Snapshot (its chains' VIPs, the clusters its tables send to, its
// warnings), so that its pieces can be rebuilt alone.
struct Compiler::State {
  bool incremental = false;  // update() may apply changes on top of the last compile
  Gateway gateway;
  RoutingCompiler routing;

  // The compile's reports, in the parts compile() makes them in, so update() can say them again in
  // the same order: the Gateway's; each pod's "not served" line; the Services'; each Service's
  // (endpoints); routing and authorization.
  std::vector<Diagnostics::Entry> gateway_warnings;
  std::vector<std::string> gateway_ignores;
  std::map<std::string, std::string> pod_ignores;  // by pod name (the API mode's pod order)
  std::vector<std::string> service_ignores;
  std::vector<Diagnostics::Entry> tail_warnings;   // routing's
  std::vector<Diagnostics::Entry> authz_warnings;  // authorization's, after routing's

  // The policies and routing resources, in the load's order (by name: one per API object).
  std::vector<const AuthzPolicySpec*> policies;
  std::vector<const DestinationRuleSpec*> destination_rules;
  std::vector<const VirtualServiceSpec*> virtual_services;
  std::vector<const HttpRouteResource*> http_routes;

  struct Unit {
    const ServiceResource* source = nullptr;
    std::vector<std::pair<net::SockAddr, size_t>> vips;  // the chains it owns: VIP, port index
    std::vector<std::string> used;                       // clusters its tables send to (with repeats)
    std::vector<Diagnostics::Entry> warnings;
  };
  std::vector<Unit> units;  // per served Service, in order
  std::unordered_map<std::string, size_t> service_index;
  std::map<std::string, size_t> uses;                // cluster name -> entries in the units' `used`
  std::vector<std::set<size_t>> referrers;           // per Service: the units sending to its clusters
  std::vector<std::set<std::string>> clusters_over;  // per Service: the clusters over it

  std::unordered_map<std::string, const PodResource*> known;       // every pod read, by name
  std::unordered_map<std::string, const Pod*> served;              // served pods, by name
  std::unordered_map<net::IpAddr, const Pod*> stand_ins;           // always empty while incremental
  LabelIndex selectable;                                           // served, ready pods
  std::unordered_map<std::string, std::vector<size_t>> selecting;  // label entry -> Services selecting with it
  std::unordered_map<std::string, SliceList> slices_of;            // Service name -> its slices, by name
  std::unordered_map<std::string, std::set<size_t>> named_by;      // pod name -> Services whose slices name it

  PodLookup lookup() const { return PodLookup{served, known, stand_ins}; }

  // Counts the clusters unit `unit` sends to (cluster -> uses) and indexes who sends where.
  void add_uses(size_t unit, const Snapshot& s) {
    for (const std::string& name : units[unit].used) {
      ++uses[name];
      if (const RoutedCluster* c = s.clusters.find_piece(name)) {
        size_t over = service_index.at(c->service->name);
        referrers[over].insert(unit);
        clusters_over[over].insert(name);
      }
    }
  }
};

Compiler::Compiler() = default;
Compiler::~Compiler() = default;

void Compiler::reset() {
  st_.reset();
}

void Compiler::compile(const Resources& res, Diagnostics& diag, Snapshot& snapshot, bool keep) {
  st_ = std::make_unique<State>();
  State& st = *st_;
  snapshot.bootstrap = res.bootstrap.bootstrap;
  Diagnostics gateway_diag("");
  auto gateway = select_gateway(res, gateway_diag);
  append(diag, gateway_diag);
  if (!gateway) {
    return;  // the API mode without its Gateway yet: nothing is served, no route or policy is checked
  }
  st.gateway = *gateway;
  st.gateway_warnings = gateway_diag.warnings();
  st.gateway_ignores = gateway_diag.ignored();
  snapshot.gateway = *gateway;
  auto pods = select_pods(res, *gateway, diag, st.pod_ignores);
  Diagnostics service_diag("");
  auto services = select_services(res, *gateway, pods, service_diag);
  append(diag, service_diag);
  st.service_ignores = service_diag.ignored();

  for (const EndpointSliceResource* slice : res.endpoint_slices) {
    st.slices_of[slice->service].push_back(slice);
  }
  for (const PodResource* p : res.pods) {
    st.known.emplace(p->pod->name, p);
  }
  for (const PodResource* p : pods) {
    // Kept (the API mode), the outcomes live on and the snapshot shares their Pods. In the file
    // mode they are freed after the load: a copy made now lies with the rest of the snapshot,
    // where the Pod read lies among the freed parse (measured: 1,911 -> 2,537 bytes of steady
    // RSS per endpoint when shared).
    snapshot.pods.push_back(keep ? p->pod : std::make_shared<const Pod>(*p->pod));
  }
  // Endpoint addresses of served Services' slices whose pod is unknown: a stand-in Pod each.
  std::unordered_set<net::IpAddr> stand_ins;
  for (const ServiceResource* s : services) {
    auto slices = st.slices_of.find(s->service.name);
    if (slices == st.slices_of.end()) {
      continue;
    }
    for (const EndpointSliceResource* slice : slices->second) {
      for (const auto& ep : slice->endpoints) {
        if (!ep.ready || ep.terminating || st.known.count(ep.pod) != 0) {
          continue;
        }
        for (const net::IpAddr& ip : ep.addresses) {
          if (!stand_ins.insert(ip).second) {
            continue;
          }
          auto pod = std::make_shared<Pod>();
          pod->name = ep.pod.empty() ? ip.to_string() : ep.pod;
          PodTemplate shape;
          shape.namespace_ = res.bootstrap.bootstrap.namespace_;
          shape.service_account.clear();
          shape.workload_is_name = true;
          shape.canonical_service = s->service.name;
          pod->shared = PodTemplate::intern(std::move(shape));
          pod->ip = ip;
          pod->from_slice_only = true;
          snapshot.pods.push_back(std::move(pod));
        }
      }
    }
  }
  for (const Pod& pod : snapshot.pods) {
    if (pod.from_slice_only) {
      st.stand_ins.emplace(pod.ip, &pod);
      continue;
    }
    snapshot.pods_by_ip.emplace(pod.ip, &pod);
    st.served.emplace(pod.name, &pod);
    if (pod.ready) {
      st.selectable.add(&pod);
    }
  }

  std::unordered_map<net::SockAddr, size_t> vip_owner;
  const SliceList no_slices;
  for (size_t i = 0; i < services.size(); ++i) {
    const ServiceResource& source = *services[i];
    State::Unit unit;
    unit.source = &source;
    auto slices = st.slices_of.find(source.service.name);
    Diagnostics unit_diag("");
    auto service = build_service(source, slices == st.slices_of.end() ? no_slices : slices->second, st.lookup(),
                                 st.selectable, unit_diag);
    Reader r(unit_diag, "Service " + service->name);
    for (size_t j = 0; j < service->ports.size(); ++j) {
      for (const net::IpAddr& ip : service->cluster_ips) {
        net::SockAddr vip(ip, service->ports[j].port);
        auto [it, inserted] = vip_owner.emplace(vip, i);
        if (!inserted) {
          r.error(source.port_marks[j].port, source.port_paths[j] + ".port",
                  vip.to_string() + " is already served by Service " +
                      (it->second == i ? service->name : snapshot.services[it->second].name));
          continue;
        }
        unit.vips.emplace_back(vip, j);
      }
    }
    append(diag, unit_diag);
    unit.warnings = unit_diag.warnings();
    st.service_index.emplace(service->name, i);
    snapshot.services.push_back(std::move(service));
    st.units.push_back(std::move(unit));
  }
  // References (services, subsets) are checked once everything else is sound, so that a broken
  // Service is reported once rather than again by every route naming it.
  if (diag.failed()) {
    return;
  }
  Diagnostics tail("");
  st.routing.bind(res, snapshot, tail);
  append(diag, tail);
  if (diag.failed()) {
    return;
  }
  std::map<std::pair<size_t, size_t>, RoutingCompiler::Tables> tables;
  for (size_t i = 0; i < st.units.size(); ++i) {
    for (const auto& [vip, j] : st.units[i].vips) {
      auto [it, inserted] = tables.try_emplace({i, j});
      if (inserted) {
        it->second = st.routing.build(i, snapshot.services[i].ports[j], snapshot, st.units[i].used);
      }
    }
  }
  Diagnostics authz("");
  compile_authz(res.policies, authz, snapshot);
  append(diag, authz);
  if (diag.failed()) {
    return;
  }
  for (const auto& w : tail.warnings()) {
    st.tail_warnings.push_back(w);
  }
  st.authz_warnings = authz.warnings();
  for (size_t i = 0; i < st.units.size(); ++i) {
    const Service& service = snapshot.services[i];
    for (const auto& [vip, j] : st.units[i].vips) {
      add_chain(vip, service, service.ports[j], tables.at({i, j}), snapshot);
    }
  }
  if (!keep || !st.stand_ins.empty() || !gateway->for_service_account.empty()) {
    return;
  }
  st.policies = res.policies;
  st.destination_rules = res.destination_rules;
  st.virtual_services = res.virtual_services;
  st.http_routes = res.http_routes;
  st.referrers.resize(st.units.size());
  st.clusters_over.resize(st.units.size());
  for (size_t i = 0; i < st.units.size(); ++i) {
    st.add_uses(i, snapshot);
    for (const auto& [key, value] : snapshot.services[i].selector) {
      st.selecting[label_entry(key, value)].push_back(i);
    }
    if (auto slices = st.slices_of.find(snapshot.services[i].name); slices != st.slices_of.end()) {
      for (const EndpointSliceResource* slice : slices->second) {
        for (const auto& ep : slice->endpoints) {
          if (!ep.pod.empty()) {
            st.named_by[ep.pod].insert(i);
          }
        }
      }
    }
  }
  st.incremental = true;
}

namespace {

// `pod` in the name-ordered list of pieces, or its place.
std::vector<PieceList<Pod>::Ptr>::iterator pod_place(std::vector<PieceList<Pod>::Ptr>& pods, const std::string& name) {
  return std::lower_bound(pods.begin(), pods.end(), name,
                          [](const PieceList<Pod>::Ptr& p, const std::string& n) { return p->name < n; });
}

// A routing object changed in place (neither added nor removed).
template <typename T>
bool both(const T* a, const T* b) {
  return a != nullptr && b != nullptr;
}

}  // namespace

bool Compiler::update(const std::vector<ResourceChange>& changes, const Snapshot& previous, Diagnostics& diag,
                      Snapshot& next) {
  if (!st_ || !st_->incremental) {
    return false;
  }
  State& st = *st_;
  // 1. What the changes touch, and whether they can be applied here at all (nothing is changed
  //    yet; after a false below, compile() starts over).
  std::set<size_t> dirty;
  auto selecting = [&](const Pod& pod) {
    for (const auto& [key, value] : pod.labels()) {
      auto it = st.selecting.find(label_entry(key, value));
      if (it == st.selecting.end()) {
        continue;
      }
      for (size_t i : it->second) {
        if (selects(previous.services[i].selector, pod)) {
          dirty.insert(i);
        }
      }
    }
  };
  std::unordered_map<net::IpAddr, std::string> new_ips;
  bool policies_changed = false;
  // A routing resource rewritten so that it binds as before dirties the Services it is bound to;
  // one added, removed or bound elsewhere has every resource bound again (a pass over the
  // routing resources, not a compile), and dirties the Services whose bindings moved. The kept
  // lists take the change either way (after a false return, compile() starts over).
  bool rebind = false;
  struct ServiceChange {
    size_t unit;
    const ServiceResource* now;
    std::vector<std::pair<net::SockAddr, size_t>> vips;
  };
  std::vector<ServiceChange> services_changed;
  auto routing_change = [&](const auto* old, const auto* now, auto& kept) {
    using Spec = std::remove_cv_t<std::remove_pointer_t<decltype(now)>>;
    if (both(old, now) && RoutingCompiler::binds_alike(*old, *now)) {
      for (size_t i : st.routing.bound(old)) {
        dirty.insert(i);
      }
    } else {
      rebind = true;
    }
    if (old != nullptr) {
      std::erase(kept, old);
    }
    if (now != nullptr) {
      kept.insert(std::lower_bound(kept.begin(), kept.end(), now,
                                   [](const Spec* a, const Spec* b) { return a->name < b->name; }),
                  now);
    }
  };
  for (const ResourceChange& c : changes) {
    if (c.old_pod != nullptr || c.new_pod != nullptr) {
      const std::string& name = (c.new_pod != nullptr ? c.new_pod : c.old_pod)->pod->name;
      if (c.old_pod != nullptr && c.new_pod != nullptr && c.old_pod->pod->name != c.new_pod->pod->name) {
        return false;
      }
      if (c.new_pod != nullptr && pod_ignored(*c.new_pod, st.gateway).empty()) {
        const net::IpAddr& ip = c.new_pod->pod->ip;
        const Pod* const* held = previous.pods_by_ip.find(ip);
        if (held != nullptr && (*held)->name != name) {
          return false;  // an IP two pods claim: the compile from scratch says which one loses
        }
        if (!new_ips.emplace(ip, name).second) {
          return false;
        }
        selecting(*c.new_pod->pod);
      }
      if (auto served = st.served.find(name); served != st.served.end()) {
        selecting(*served->second);
      }
      if (auto named = st.named_by.find(name); named != st.named_by.end()) {
        dirty.insert(named->second.begin(), named->second.end());
      }
    } else if (c.old_slice != nullptr || c.new_slice != nullptr) {
      for (const EndpointSliceResource* slice : {c.old_slice, c.new_slice}) {
        if (slice != nullptr) {
          if (auto i = st.service_index.find(slice->service); i != st.service_index.end()) {
            dirty.insert(i->second);
          }
        }
      }
    } else if (c.old_vs != nullptr || c.new_vs != nullptr) {
      routing_change(c.old_vs, c.new_vs, st.virtual_services);
    } else if (c.old_dr != nullptr || c.new_dr != nullptr) {
      routing_change(c.old_dr, c.new_dr, st.destination_rules);
    } else if (c.old_route != nullptr || c.new_route != nullptr) {
      routing_change(c.old_route, c.new_route, st.http_routes);
    } else if (c.old_service != nullptr || c.new_service != nullptr) {
      // A Service rewritten (its ports, selector, clusterIPs): its unit takes the new one. One
      // added or removed renumbers the Services: compiled anew, as is one now opted out.
      if (!both(c.old_service, c.new_service) || other_waypoint(*c.new_service, st.gateway) != nullptr) {
        return false;
      }
      auto index = st.service_index.find(c.new_service->service.name);
      if (index == st.service_index.end()) {
        return false;  // not served before
      }
      const size_t i = index->second;
      std::vector<std::pair<net::SockAddr, size_t>> vips;
      const Service& svc = c.new_service->service;
      for (size_t j = 0; j < svc.ports.size(); ++j) {
        for (const net::IpAddr& ip : svc.cluster_ips) {
          net::SockAddr vip(ip, svc.ports[j].port);
          const bool own = std::any_of(st.units[i].vips.begin(), st.units[i].vips.end(),
                                       [&](const auto& v) { return v.first == vip; });
          if ((!own && previous.vip_chains.find_piece(vip) != nullptr) ||
              std::any_of(vips.begin(), vips.end(), [&](const auto& v) { return v.first == vip; })) {
            return false;  // a VIP another Service serves: the compile from scratch reports it
          }
          vips.emplace_back(vip, j);
        }
      }
      services_changed.push_back({i, c.new_service, std::move(vips)});
      dirty.insert(i);
      rebind = true;  // its ports decide what binds to it
    } else if (c.old_policy != nullptr || c.new_policy != nullptr) {
      // A policy on the Gateway is in every Service's set: compiled anew. One on Services rebuilds
      // the sets (and chains) of those it targeted and targets.
      for (const AuthzPolicySpec* policy : {c.old_policy, c.new_policy}) {
        if (policy == nullptr) {
          continue;
        }
        if (policy->gateway) {
          return false;
        }
        for (const std::string& name : policy->services) {
          if (auto i = st.service_index.find(name); i != st.service_index.end()) {
            dirty.insert(i->second);
          }
        }
      }
      policies_changed = true;
    } else {
      return false;  // anything else (added or removed routing, a Service, ...) binds anew
    }
  }
  for (const ServiceChange& change : services_changed) {
    // Bound against the new ports (the unit's Service is rebuilt below, with its endpoints).
    st.routing.set_service(change.unit, &change.now->service);
    State::Unit& unit = st.units[change.unit];
    for (const auto& [key, value] : unit.source->service.selector) {
      std::erase(st.selecting[label_entry(key, value)], change.unit);
    }
    for (const auto& [key, value] : change.now->service.selector) {
      st.selecting[label_entry(key, value)].push_back(change.unit);
    }
  }
  if (rebind) {
    Diagnostics tail("");
    for (size_t i : st.routing.rebind(st.destination_rules, st.virtual_services, st.http_routes, tail)) {
      dirty.insert(i);
    }
    if (tail.failed()) {
      return false;  // e.g. a route to an unknown subset: the compile from scratch rejects its object
    }
    st.tail_warnings = tail.warnings();
  }
  // A Service's tables send to clusters over other Services: those Services' tables are rebuilt too.
  std::vector<size_t> work(dirty.begin(), dirty.end());
  while (!work.empty()) {
    size_t i = work.back();
    work.pop_back();
    for (size_t r : st.referrers[i]) {
      if (dirty.insert(r).second) {
        work.push_back(r);
      }
    }
  }

  // 2. The indexes take the changes.
  next = previous;
  auto& pods = next.pods.pieces();
  for (const ResourceChange& c : changes) {
    if (c.old_pod != nullptr || c.new_pod != nullptr) {
      const std::string name = (c.new_pod != nullptr ? c.new_pod : c.old_pod)->pod->name;
      if (auto served = st.served.find(name); served != st.served.end()) {
        const Pod* old = served->second;
        st.selectable.remove(old);
        if (const Pod* const* ip = next.pods_by_ip.find(old->ip); ip != nullptr && *ip == old) {
          next.pods_by_ip.erase(old->ip);
        }
        if (auto at = pod_place(pods, name); at != pods.end() && (*at)->name == name) {
          pods.erase(at);
        }
        st.served.erase(served);
      }
      st.known.erase(name);
      st.pod_ignores.erase(name);
      if (c.new_pod == nullptr) {
        continue;
      }
      st.known.emplace(name, c.new_pod);
      if (std::string why = pod_ignored(*c.new_pod, st.gateway); !why.empty()) {
        st.pod_ignores.emplace(name, std::move(why));
        continue;
      }
      PieceList<Pod>::Ptr pod = c.new_pod->pod;
      pods.insert(pod_place(pods, name), pod);
      st.served.emplace(name, pod.get());
      next.pods_by_ip.insert_or_assign(pod->ip, pod.get());
      if (pod->ready) {
        st.selectable.add_sorted(pod.get());
      }
    } else if (c.old_slice != nullptr || c.new_slice != nullptr) {
      if (c.old_slice != nullptr) {
        auto& list = st.slices_of[c.old_slice->service];
        list.erase(std::remove(list.begin(), list.end(), c.old_slice), list.end());
        if (list.empty()) {
          st.slices_of.erase(c.old_slice->service);
        }
      }
      if (const EndpointSliceResource* slice = c.new_slice) {
        auto& list = st.slices_of[slice->service];
        list.insert(std::lower_bound(list.begin(), list.end(), slice,
                                     [](const EndpointSliceResource* a, const EndpointSliceResource* b) {
                                       return a->name < b->name;
                                     }),
                    slice);
        // Pods a slice no longer names stay listed: at worst a Service is rebuilt for nothing.
        if (auto i = st.service_index.find(slice->service); i != st.service_index.end()) {
          for (const auto& ep : slice->endpoints) {
            if (!ep.pod.empty()) {
              st.named_by[ep.pod].insert(i->second);
            }
          }
        }
      }
    } else if (c.old_policy != nullptr || c.new_policy != nullptr) {
      if (c.old_policy != nullptr) {
        std::erase(st.policies, c.old_policy);
      }
      if (const AuthzPolicySpec* policy = c.new_policy) {
        st.policies.insert(std::lower_bound(st.policies.begin(), st.policies.end(), policy,
                                            [](const AuthzPolicySpec* a, const AuthzPolicySpec* b) {
                                              return a->policy.name < b->policy.name;
                                            }),
                           policy);
      }
    } else if (!rebind && c.new_vs != nullptr) {
      st.routing.replace(c.old_vs, c.new_vs);
    } else if (!rebind && c.new_dr != nullptr) {
      st.routing.replace(c.old_dr, c.new_dr);
    } else if (!rebind && c.new_route != nullptr) {
      st.routing.replace(c.old_route, c.new_route);
    }
  }
  const SliceList no_slices;
  auto slices_of = [&](size_t i) -> const SliceList& {
    auto it = st.slices_of.find(previous.services[i].name);
    return it == st.slices_of.end() ? no_slices : it->second;
  };
  for (size_t i : dirty) {
    for (const EndpointSliceResource* slice : slices_of(i)) {
      if (needs_stand_in(*slice, st.lookup())) {
        return false;
      }
    }
    if (!st.routing.check(i)) {
      return false;  // e.g. a route to a subset its DestinationRule no longer has
    }
  }

  // The policy sets of the Services a policy change touched, and the authorization's reports.
  if (policies_changed) {
    for (size_t i : dirty) {
      const std::string& name = previous.services[i].name;
      next.authz_services.insert_or_assign(name, policy_set_for(name, st.policies, next.authz_gateway));
    }
    next.authz_policy_count = st.policies.size();
    Diagnostics authz("");
    warn_authz(st.policies, next, authz);
    st.authz_warnings = authz.warnings();
  }

  // 3. The dirty Services' pieces, anew: the Service (endpoints), its clusters, tables and chains.
  std::set<std::string> unused;
  for (size_t i : dirty) {
    for (const std::string& name : st.units[i].used) {
      if (--st.uses[name] == 0) {
        unused.insert(name);
      }
      if (const RoutedCluster* c = previous.clusters.find_piece(name)) {
        st.referrers[st.service_index.at(c->service->name)].erase(i);
      }
    }
    st.units[i].used.clear();
  }
  // A rewritten Service's unit: its old chains go, its new ones are built below.
  for (ServiceChange& change : services_changed) {
    State::Unit& unit = st.units[change.unit];
    for (const auto& [vip, j] : unit.vips) {
      next.vip_chains.erase(vip);
      next.route_tables.erase(vip);
      next.tcp_routes.erase(vip);
    }
    unit.source = change.now;
    unit.vips = std::move(change.vips);
  }
  for (size_t i : dirty) {
    for (const std::string& name : st.clusters_over[i]) {
      next.clusters.erase(name);
    }
    st.clusters_over[i].clear();
    State::Unit& unit = st.units[i];
    Diagnostics unit_diag("");
    auto service = build_service(*unit.source, slices_of(i), st.lookup(), st.selectable, unit_diag);
    unit.warnings = unit_diag.warnings();
    st.routing.set_service(i, service.get());
    next.services.pieces()[i] = std::move(service);
    for (const auto& [vip, j] : unit.vips) {
      next.vip_chains.erase(vip);
      next.route_tables.erase(vip);
      next.tcp_routes.erase(vip);
    }
  }
  for (size_t i : dirty) {
    State::Unit& unit = st.units[i];
    const Service& service = next.services[i];
    std::map<size_t, RoutingCompiler::Tables> tables;
    for (const auto& [vip, j] : unit.vips) {
      auto [it, inserted] = tables.try_emplace(j);
      if (inserted) {
        it->second = st.routing.build(i, service.ports[j], next, unit.used);
      }
      add_chain(vip, service, service.ports[j], it->second, next);
    }
    st.add_uses(i, next);
  }
  for (const std::string& name : unused) {
    if (st.uses[name] != 0) {
      continue;
    }
    st.uses.erase(name);
    if (const RoutedCluster* c = next.clusters.find_piece(name)) {
      st.clusters_over[st.service_index.at(c->service->name)].erase(name);
      next.clusters.erase(name);
    }
  }

  // A Service's ports decide some authorization warnings (HTTP rules on TCP ports).
  if (!services_changed.empty()) {
    Diagnostics authz("");
    warn_authz(st.policies, next, authz);
    st.authz_warnings = authz.warnings();
  }

  // 4. The compile's reports, as compile() makes them.
  for (const auto& w : st.gateway_warnings) {
    diag.warning(w.at, w.message);
  }
  for (const auto& i : st.gateway_ignores) {
    diag.ignore(i);
  }
  for (const auto& [name, why] : st.pod_ignores) {
    diag.ignore(why);
  }
  for (const auto& i : st.service_ignores) {
    diag.ignore(i);
  }
  for (const State::Unit& unit : st.units) {
    for (const auto& w : unit.warnings) {
      diag.warning(w.at, w.message);
    }
  }
  for (const auto& w : st.tail_warnings) {
    diag.warning(w.at, w.message);
  }
  for (const auto& w : st.authz_warnings) {
    diag.warning(w.at, w.message);
  }
  return true;
}

}  // namespace wp::config
