// Scope and compile: pick the served Gateway, Pods and Services, then precompute every VIP chain
// with its cluster and endpoints, and the pod-IP index. The Snapshot's vectors are filled before
// any pointer into them is taken and never resized afterwards.
#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "config/resources.h"

namespace wp::config {

namespace {

constexpr std::string_view kUseWaypoint = "istio.io/use-waypoint";

bool selects(const std::map<std::string, std::string>& selector, const Pod& pod) {
  return !selector.empty() && std::all_of(selector.begin(), selector.end(), [&](const auto& kv) {
    auto it = pod.labels.find(kv.first);
    return it != pod.labels.end() && it->second == kv.second;
  });
}

// Pods by label, so that a selector visits only the pods carrying its rarest label instead of every
// pod of the namespace (services × pods was the cost of compiling a big namespace).
class LabelIndex {
 public:
  explicit LabelIndex(std::vector<const Pod*> pods) : pods_(std::move(pods)) {
    for (uint32_t i = 0; i < pods_.size(); ++i) {
      for (const auto& [key, value] : pods_[i]->labels) {
        by_label_[entry(key, value)].push_back(i);
      }
    }
  }
  // Calls f(pod) for every pod `selector` selects, in the order the pods were given.
  template <typename F>
  void for_each_selected(const std::map<std::string, std::string>& selector, F f) const {
    if (selector.empty()) {
      return;
    }
    const std::vector<uint32_t>* rarest = nullptr;
    for (const auto& [key, value] : selector) {
      auto it = by_label_.find(entry(key, value));
      if (it == by_label_.end()) {
        return;  // no pod carries this label
      }
      if (rarest == nullptr || it->second.size() < rarest->size()) {
        rarest = &it->second;
      }
    }
    for (uint32_t i : *rarest) {
      if (selects(selector, *pods_[i])) {
        f(*pods_[i]);
      }
    }
  }
  bool selects_any(const std::map<std::string, std::string>& selector) const {
    bool any = false;
    for_each_selected(selector, [&](const Pod&) { any = true; });
    return any;
  }

 private:
  static std::string entry(const std::string& key, const std::string& value) {
    std::string e;
    e.reserve(key.size() + value.size() + 1);
    e.append(key).push_back('\0');
    e.append(value);
    return e;
  }
  std::vector<const Pod*> pods_;
  std::unordered_map<std::string, std::vector<uint32_t>> by_label_;
};

std::string qualified(std::string_view kind, const std::string& namespace_, const std::string& name) {
  return std::string(kind) + " " + namespace_ + "/" + name;
}

// The Gateway named by spec.gateway; other Gateways in the namespace are ignored.
std::optional<Gateway> select_gateway(const Resources& res, Diagnostics& diag) {
  const BootstrapResource& b = res.bootstrap;
  const GatewayResource* found = nullptr;
  for (const auto& g : res.gateways) {
    if (g.gateway.name == b.bootstrap.gateway) {
      found = &g;
    } else {
      diag.ignore(qualified("Gateway", g.gateway.namespace_, g.gateway.name) + ": not this waypoint's gateway (" +
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

// Pods served by the waypoint: in its service account (when scoped) and with an IP.
std::vector<const PodResource*> select_pods(const Resources& res, const Gateway& gateway, Diagnostics& diag) {
  std::vector<const PodResource*> served;
  std::unordered_map<net::IpAddr, const PodResource*> by_ip;
  for (const auto& p : res.pods) {
    std::string who = qualified("Pod", p.pod.namespace_, p.pod.name);
    const std::string& scope = gateway.for_service_account;
    if (!scope.empty() && p.pod.service_account != scope) {
      diag.ignore(who + ": service account " + p.pod.service_account + " is not this waypoint's (" + scope + ")");
      continue;
    }
    if (!p.has_ip) {
      diag.ignore(who + ": no status.podIP (not running yet?)");
      continue;
    }
    auto [it, inserted] = by_ip.emplace(p.pod.ip, &p);
    if (!inserted) {
      Reader(diag, "Pod " + p.pod.name)
          .error(p.ip_at, "status.podIP", p.pod.ip.to_string() + " is also the IP of pod " + it->second->pod.name);
      continue;
    }
    served.push_back(&p);
  }
  return served;
}

// Services served: not opted out to another waypoint, and (when scoped) selecting a served pod.
std::vector<const ServiceResource*> select_services(const Resources& res, const Gateway& gateway,
                                                    const std::vector<const PodResource*>& pods, Diagnostics& diag) {
  std::vector<const ServiceResource*> served;
  std::optional<LabelIndex> scoped;  // the served pods, when the waypoint is scoped to an account
  if (!gateway.for_service_account.empty()) {
    std::vector<const Pod*> served_pods;
    for (const PodResource* p : pods) {
      served_pods.push_back(&p->pod);
    }
    scoped.emplace(std::move(served_pods));
  }
  for (const auto& s : res.services) {
    std::string who = qualified("Service", s.service.namespace_, s.service.name);
    auto label = s.service.labels.find(std::string(kUseWaypoint));
    if (label != s.service.labels.end() && label->second != gateway.name) {
      diag.ignore(who + ": labelled " + std::string(kUseWaypoint) + "=" + label->second + ", not this waypoint (" +
                  gateway.name + ")");
      continue;
    }
    if (scoped && !scoped->selects_any(s.service.selector)) {
      diag.ignore(who + ": selects no pod of service account " + gateway.for_service_account);
      continue;
    }
    served.push_back(&s);
  }
  return served;
}

// The endpoints of one Service port from its EndpointSlices: ready, not terminating, and (for a
// known pod) the pod itself ready; a pod the waypoint does not serve (another service account of
// a scoped waypoint) is left out. Returns false when no slice names the Service (then the
// selector decides, as without an endpoints controller: the file mode's hand-written pods).
bool slice_endpoints(const std::vector<const EndpointSliceResource*>& slices, const ServicePort& port,
                     const std::unordered_map<std::string, const Pod*>& pods_by_name,
                     const std::unordered_set<std::string>& known_pods,
                     const std::unordered_map<net::IpAddr, const Pod*>& unknown_by_ip, std::vector<Endpoint>& out) {
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
        if (auto it = pods_by_name.find(ep.pod); it != pods_by_name.end()) {
          pod = it->second;
        } else if (known_pods.count(ep.pod) != 0) {
          continue;  // a pod out of the waypoint's scope
        }
      }
      if (pod != nullptr && !pod->ready) {
        continue;  // e.g. deleted (deletionTimestamp) before the slice said so
      }
      for (const net::IpAddr& ip : ep.addresses) {
        const Pod* target = pod;
        if (target == nullptr) {
          auto it = unknown_by_ip.find(ip);
          if (it == unknown_by_ip.end()) {
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

}  // namespace

void compile(const Resources& res, Diagnostics& diag, Snapshot& snapshot) {
  snapshot.bootstrap = res.bootstrap.bootstrap;
  auto gateway = select_gateway(res, diag);
  if (!gateway) {
    return;
  }
  snapshot.gateway = *gateway;
  auto pods = select_pods(res, *gateway, diag);
  auto services = select_services(res, *gateway, pods, diag);

  std::unordered_map<std::string, std::vector<const EndpointSliceResource*>> slices_of;
  for (const auto& slice : res.endpoint_slices) {
    slices_of[slice.service].push_back(&slice);
  }
  std::unordered_set<std::string> known_pods;
  for (const auto& p : res.pods) {
    known_pods.insert(p.pod.name);
  }
  for (const PodResource* p : pods) {
    snapshot.pods.push_back(p->pod);
  }
  // Endpoint addresses of served Services' slices whose pod is unknown: a stand-in Pod each (the
  // vector must be complete before any pointer into it is taken).
  std::unordered_set<net::IpAddr> stand_ins;
  for (const ServiceResource* s : services) {
    auto slices = slices_of.find(s->service.name);
    if (slices == slices_of.end()) {
      continue;
    }
    for (const EndpointSliceResource* slice : slices->second) {
      for (const auto& ep : slice->endpoints) {
        if (!ep.ready || ep.terminating || known_pods.count(ep.pod) != 0) {
          continue;
        }
        for (const net::IpAddr& ip : ep.addresses) {
          if (!stand_ins.insert(ip).second) {
            continue;
          }
          Pod pod;
          pod.name = ep.pod.empty() ? ip.to_string() : ep.pod;
          pod.namespace_ = res.bootstrap.bootstrap.namespace_;
          pod.service_account.clear();
          pod.ip = ip;
          pod.workload = pod.name;
          pod.canonical_service = s->service.name;
          pod.from_slice_only = true;
          snapshot.pods.push_back(std::move(pod));
        }
      }
    }
  }
  for (const ServiceResource* s : services) {
    snapshot.services.push_back(s->service);
  }
  std::unordered_map<std::string, const Pod*> pods_by_name;
  std::unordered_map<net::IpAddr, const Pod*> unknown_by_ip;
  for (const Pod& pod : snapshot.pods) {
    if (pod.from_slice_only) {
      unknown_by_ip.emplace(pod.ip, &pod);
      continue;
    }
    snapshot.pods_by_ip.emplace(pod.ip, &pod);
    pods_by_name.emplace(pod.name, &pod);
  }

  std::vector<const Pod*> selectable;
  for (const Pod& pod : snapshot.pods) {
    if (!pod.from_slice_only && pod.ready) {
      selectable.push_back(&pod);
    }
  }
  const LabelIndex index(std::move(selectable));

  for (size_t i = 0; i < services.size(); ++i) {
    const ServiceResource& source = *services[i];
    Service& service = snapshot.services[i];
    Reader r(diag, "Service " + service.name);
    std::vector<const EndpointSliceResource*> no_slices;
    auto slices = slices_of.find(service.name);
    const auto& service_slices = slices == slices_of.end() ? no_slices : slices->second;
    for (size_t j = 0; j < service.ports.size(); ++j) {
      ServicePort& port = service.ports[j];
      const std::string& path = source.port_paths[j];
      std::string name = "inbound-vip|" + std::to_string(port.port) + "|" +
                         (port.protocol == ChainProtocol::Http ? "http" : "tcp") + "|" + service.fqdn;
      Cluster cluster{name, {}};
      if (!slice_endpoints(service_slices, port, pods_by_name, known_pods, unknown_by_ip, cluster.endpoints)) {
        index.for_each_selected(service.selector, [&](const Pod& pod) {
          uint16_t target = port.target_port_number;
          if (!port.target_port_name.empty()) {
            auto named = pod.named_ports.find(port.target_port_name);
            if (named == pod.named_ports.end()) {
              r.warn(source.port_marks[j].target_port, path + ".targetPort",
                     "pod " + pod.name + " has no port named " + port.target_port_name + "; not an endpoint");
              return;
            }
            target = named->second;
          }
          cluster.endpoints.push_back(Endpoint{&pod, net::SockAddr(pod.ip, target)});
        });
      }
      port.endpoints = cluster.endpoints;
      for (const net::IpAddr& ip : service.cluster_ips) {
        net::SockAddr vip(ip, port.port);
        if (const VipChain* taken = snapshot.find_vip(vip)) {
          r.error(source.port_marks[j].port, path + ".port",
                  vip.to_string() + " is already served by Service " + taken->service->name);
          continue;
        }
        snapshot.vip_chains.emplace(vip, VipChain{name, &service, &port, port.protocol, cluster});
      }
    }
  }
}

}  // namespace wp::config
