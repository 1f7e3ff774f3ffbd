#pragma once
// The admin API's view of a compiled Snapshot as JSON: GET /config_dump, /listeners, /clusters,
// /routes and /endpoints (SPEC §6), read by `waypoint proxy-config`. Everything printed comes from
// the Snapshot (or, for endpoints, from the workers' runtime state through a HostLookup); nothing is
// invented to look like Envoy. Listings are sorted (addresses numerically, names bytewise), so the
// same config always prints the same text.
//
// Shapes (each array element is one object):
//   /listeners  [{listener, name, kind: socket|service|pod, address, ip, port, protocol, service | pod,
//                 chains: [{name, application_protocols: [...], route | cluster}]}]
//   /clusters   [{name, type, service_fqdn, port, subset, direction, protocol, labels, destination_rule,
//                 load_balancer, connection_pool, outlier_detection, endpoint_count, ...}]
//   /routes     [{name, type: http|tcp, vip, port, service, domains, sources,
//                 routes: [{index, name, source, virtual_service, matches, action, weighted_clusters,
//                           retry_policy, timeout, fault, request_headers, response_headers, ...}]}]
//   /endpoints  [{cluster, service_fqdn, outlier_detection,
//                 endpoints: [{address, pod, service_account, spiffe_id, health, outlier, ...}]}]
//   /config_dump {version, loaded_at, source_file, namespace, gateway, listeners, clusters, routes,
//                 endpoints, authorization: {policy_count, gateway: [...], services: [...]}}
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "waypoint/config/snapshot.h"

namespace wp::admin {

// Runtime state of one endpoint, merged over the workers by whoever supplies it.
struct HostRuntime {
  bool ejected = false;             // ejected by at least one worker's outlier detection
  uint32_t ejected_on_workers = 0;  // how many workers have it ejected (detection is per worker)
  uint32_t consecutive_5xx = 0;
  uint32_t active_requests = 0;
};

// Runtime state of endpoint `index` of RoutedCluster `cluster` (merged over workers by the
// caller); may be empty (then: healthy, not ejected).
using HostLookup = std::function<HostRuntime(const config::RoutedCluster& cluster, size_t index)>;

std::string listeners_json(const config::Snapshot& snapshot);
std::string clusters_json(const config::Snapshot& snapshot);
std::string routes_json(const config::Snapshot& snapshot);
std::string endpoints_json(const config::Snapshot& snapshot, const HostLookup& lookup);
std::string authorization_json(const config::Snapshot& snapshot);
std::string config_dump_json(const config::Snapshot& snapshot, const HostLookup& lookup);

}  // namespace wp::admin
