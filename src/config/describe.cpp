// `waypoint validate` output: what the snapshot would serve, one fact per line, sorted so that the
// same file always prints the same text.
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "waypoint/config/snapshot.h"
#include "waypoint/net/order.h"

namespace wp::config {

std::string_view to_string(ChainProtocol p) {
  switch (p) {
    case ChainProtocol::Http:
      return "http";
    case ChainProtocol::Tcp:
      return "tcp";
    case ChainProtocol::Sniff:
      return "sniff";
  }
  return "?";
}

std::string_view to_string(LoadBalancer lb) {
  switch (lb) {
    case LoadBalancer::RoundRobin:
      return "ROUND_ROBIN";
    case LoadBalancer::LeastRequest:
      return "LEAST_REQUEST";
    case LoadBalancer::Random:
      return "RANDOM";
    case LoadBalancer::ConsistentHash:
      return "RING_HASH";
  }
  return "?";
}

namespace {

void section(std::ostream& out, std::string_view title, const std::vector<std::string>& lines) {
  out << "\n" << title << " (" << lines.size() << "):\n";
  for (const auto& line : lines) {
    out << "  " << line << "\n";
  }
}

// One route: where it came from, what it matches, what it does.
void describe_route(std::ostream& out, size_t index, const Route& r) {
  out << "    [" << index << "] " << (r.name.empty() ? "-" : r.name) << " (" << r.source << "): ";
  out << (r.matches.empty() ? std::string("all requests") : std::to_string(r.matches.size()) + " match block(s)")
      << " -> ";
  if (r.redirect) {
    out << "redirect";
  } else if (r.direct_status != 0) {
    out << "direct response " << r.direct_status;
  } else {
    for (size_t i = 0; i < r.clusters.size(); ++i) {
      const WeightedCluster& w = r.clusters[i];
      double pct = r.total_weight == 0 ? 0.0 : 100.0 * w.weight / r.total_weight;
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%g%% ", pct);
      out << (i == 0 ? "" : ", ") << buf << w.cluster->name;
    }
  }
  out << "; retries " << r.retry.num_retries;
  if (r.retry.per_try_timeout) {
    out << " (per try " << r.retry.per_try_timeout->count() << "ms)";
  }
  out << "; timeout " << (r.timeout ? std::to_string(r.timeout->count()) + "ms" : std::string("none")) << "\n";
}

}  // namespace

std::string describe(const Snapshot& s) {
  const Bootstrap& b = s.bootstrap;
  std::ostringstream out;
  out << "config " << s.source_file << " (version " << s.version << ")\n";
  out << "namespace " << b.namespace_ << "\n";
  out << "gateway " << s.gateway.name << " ("
      << (s.gateway.for_service_account.empty() ? std::string("serves the whole namespace")
                                                : "serves service account " + s.gateway.for_service_account)
      << ")\n";
  out << "listeners hbone " << b.listeners.hbone.to_string() << ", admin " << b.listeners.admin.to_string()
      << ", metrics " << b.listeners.metrics.to_string() << ", health " << b.listeners.health.to_string() << "\n";
  out << "trust domain " << b.trust_domain << ", cluster domain " << b.cluster_domain << "\n";

  std::vector<const std::pair<const net::SockAddr, std::shared_ptr<const VipChain>>*> chains;
  for (const auto& entry : s.vip_chains) {
    chains.push_back(&entry);
  }
  std::sort(chains.begin(), chains.end(), [](auto* a, auto* b) { return net::addr_less(a->first, b->first); });
  out << "\nservice chains (" << chains.size() << "):\n";
  for (const auto* entry : chains) {
    const VipChain& chain = *entry->second;
    out << "  " << entry->first.to_string() << "  " << chain.name << "  " << to_string(chain.protocol)
        << "  endpoints: ";
    if (chain.cluster.endpoints.empty()) {
      out << "none";
    }
    for (size_t i = 0; i < chain.cluster.endpoints.size(); ++i) {
      out << (i == 0 ? "" : ", ") << chain.cluster.endpoints[i].address.to_string();
    }
    out << "\n";
  }

  // Route tables that a VirtualService or HTTPRoute shapes (the others send everything to the
  // service's own cluster, as listed above).
  std::vector<const std::pair<const net::SockAddr, std::shared_ptr<const RouteTable>>*> tables;
  for (const auto& entry : s.route_tables) {
    if (!entry.second->sources.empty()) {
      tables.push_back(&entry);
    }
  }
  std::sort(tables.begin(), tables.end(), [](auto* a, auto* b) { return net::addr_less(a->first, b->first); });
  out << "\nroutes (" << tables.size() << " service ports with VirtualService/HTTPRoute):\n";
  for (const auto* entry : tables) {
    out << "  " << entry->first.to_string() << "  " << entry->second->name << "\n";
    for (size_t i = 0; i < entry->second->routes.size(); ++i) {
      describe_route(out, i, entry->second->routes[i]);
    }
  }

  std::vector<const Pod*> pods;
  for (const Pod& pod : s.pods) {
    pods.push_back(&pod);
  }
  std::sort(pods.begin(), pods.end(), [](const Pod* a, const Pod* b) { return net::ip_less(a->ip, b->ip); });
  out << "\npods (" << pods.size() << "):\n";
  for (const Pod* pod : pods) {
    out << "  " << pod->ip.to_string() << "  " << pod->name << "  sa " << pod->service_account() << "  "
        << (pod->ready ? "ready" : "not ready") << "\n";
  }

  if (!s.rejected.empty()) {
    std::vector<std::string> rejected;
    for (const auto& r : s.rejected) {
      rejected.push_back(r.kind + "/" + r.name + " (resourceVersion " + r.resource_version + "): " + r.reason);
    }
    section(out, "rejected", rejected);
  }
  section(out, "ignored", s.ignored);
  section(out, "warnings", s.warnings);
  return out.str();
}

}  // namespace wp::config
