// Scope and compile: pick the served Gateway, Pods and Services, then precompute every VIP chain
// with its cluster and endpoints, and the pod-IP index. The Snapshot's vectors are filled before
// any pointer into them is taken and never resized afterwards.
#include <algorithm>

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
      Reader(diag, "WaypointBootstrap " + b.bootstrap.name)
          .error(b.gateway_node, "spec.gateway",
                 "no Gateway " + b.bootstrap.gateway + " in namespace " + b.bootstrap.namespace_ +
                     " (gateway.networking.k8s.io/v1, gatewayClassName: istio-waypoint)");
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
          .error(p.ip_node, "status.podIP", p.pod.ip.to_string() + " is also the IP of pod " + it->second->pod.name);
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
  for (const auto& s : res.services) {
    std::string who = qualified("Service", s.service.namespace_, s.service.name);
    auto label = s.service.labels.find(std::string(kUseWaypoint));
    if (label != s.service.labels.end() && label->second != gateway.name) {
      diag.ignore(who + ": labelled " + std::string(kUseWaypoint) + "=" + label->second + ", not this waypoint (" +
                  gateway.name + ")");
      continue;
    }
    bool selects_served = std::any_of(pods.begin(), pods.end(),
                                      [&](const PodResource* p) { return selects(s.service.selector, p->pod); });
    if (!gateway.for_service_account.empty() && !selects_served) {
      diag.ignore(who + ": selects no pod of service account " + gateway.for_service_account);
      continue;
    }
    served.push_back(&s);
  }
  return served;
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

  for (const PodResource* p : pods) {
    snapshot.pods.push_back(p->pod);
  }
  for (const ServiceResource* s : services) {
    snapshot.services.push_back(s->service);
  }
  for (const Pod& pod : snapshot.pods) {
    snapshot.pods_by_ip.emplace(pod.ip, &pod);
  }

  for (size_t i = 0; i < services.size(); ++i) {
    const ServiceResource& source = *services[i];
    const Service& service = snapshot.services[i];
    Reader r(diag, "Service " + service.name);
    for (size_t j = 0; j < service.ports.size(); ++j) {
      const ServicePort& port = service.ports[j];
      const std::string& path = source.port_paths[j];
      net::SockAddr vip(service.cluster_ip, port.port);
      if (const VipChain* taken = snapshot.find_vip(vip)) {
        r.error(child(source.port_nodes[j], "port"), path + ".port",
                vip.to_string() + " is already served by Service " + taken->service->name);
        continue;
      }
      std::string name = "inbound-vip|" + std::to_string(port.port) + "|" +
                         (port.protocol == ChainProtocol::Http ? "http" : "tcp") + "|" + service.fqdn;
      VipChain chain{name, &service, &port, port.protocol, Cluster{name, {}}};
      for (const Pod& pod : snapshot.pods) {
        if (!pod.ready || !selects(service.selector, pod)) {
          continue;
        }
        uint16_t target = port.target_port_number;
        if (!port.target_port_name.empty()) {
          auto named = pod.named_ports.find(port.target_port_name);
          if (named == pod.named_ports.end()) {
            r.warn(child(source.port_nodes[j], "targetPort"), path + ".targetPort",
                   "pod " + pod.name + " has no port named " + port.target_port_name + "; not an endpoint");
            continue;
          }
          target = named->second;
        }
        chain.cluster.endpoints.push_back(Endpoint{&pod, net::SockAddr(pod.ip, target)});
      }
      snapshot.vip_chains.emplace(vip, std::move(chain));
    }
  }
}

}  // namespace wp::config
