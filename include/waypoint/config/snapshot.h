#pragma once
// The compiled, immutable configuration. config/ turns one YAML file into a Snapshot; the data path
// only ever reads a Snapshot (shared_ptr<const Snapshot>, pinned by each tunnel/stream) and never
// sees YAML. Everything a request needs is precomputed here: lookup maps, endpoint lists, names.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "waypoint/net/address.h"

namespace wp::config {

using Millis = std::chrono::milliseconds;

// A position in the config file, for FILE:LINE:COL messages (1-based line and column).
struct Mark {
  int line = 0;
  int column = 0;
};

// Thrown by load_snapshot(); what() is one or more lines "FILE:LINE:COL: message".
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& what) : std::runtime_error(what) {}
};

struct TlsFiles {
  std::string cert_chain;   // absolute or relative to the process cwd, already resolved
  std::string private_key;  //   against the config file's directory
  std::string root_cert;
};

struct UpstreamSettings {
  uint16_t hbone_port = 15008;
  Millis connect_timeout{10'000};
  uint32_t max_streams_per_connection = 100;
  Millis idle_timeout{300'000};
};

struct DownstreamSettings {
  uint32_t max_concurrent_streams = 100;    // SETTINGS_MAX_CONCURRENT_STREAMS on 15008
  Millis keepalive_interval{10'000};        // PING period
  Millis keepalive_timeout{20'000};         // drop the connection when a PING is unanswered this long
  Millis handshake_timeout{10'000};         // TLS handshake must finish within this
  uint32_t max_connections = 100'000;       // per worker; over it new connections are closed
  uint32_t max_header_list_bytes = 16'384;  // CONNECT request header block limit
};

struct Listeners {
  net::SockAddr hbone;    // default 0.0.0.0:15008
  net::SockAddr admin;    // default 127.0.0.1:15000
  net::SockAddr metrics;  // default 0.0.0.0:15020
  net::SockAddr health;   // default 0.0.0.0:15021
};

struct Bootstrap {
  std::string name;        // metadata.name of the WaypointBootstrap
  std::string namespace_;  // metadata.namespace: the only namespace this waypoint knows
  std::string gateway;     // spec.gateway
  std::string trust_domain = "cluster.local";
  std::string cluster_domain = "cluster.local";  // FQDN suffix: <svc>.<ns>.svc.<cluster_domain>
  Listeners listeners;
  TlsFiles tls;
  UpstreamSettings upstream;
  DownstreamSettings downstream;
  int concurrency = 0;  // 0 = one worker per core
  std::string log_level = "info";
  std::string access_log = "stdout";
};

struct Gateway {
  std::string name;
  std::string namespace_;
  std::string for_service_account;  // annotation istio.io/for-service-account; empty = namespace-wide
  Mark mark;
};

struct Pod {
  std::string name;
  std::string namespace_;
  std::string service_account = "default";  // spec.serviceAccountName
  std::map<std::string, std::string> labels;
  net::IpAddr ip;     // status.podIP
  bool ready = true;  // false when status.phase is set and not Running, or the Ready condition is not "True"
  std::map<std::string, uint16_t> named_ports;  // spec.containers[].ports[].name -> containerPort
  std::string spiffe_id;                        // spiffe://<trust_domain>/ns/<ns>/sa/<sa>
  Mark mark;
};

// How the internal listener treats a service port (SPEC §4).
enum class ChainProtocol { Http, Tcp, Sniff };

struct ServicePort {
  std::string name;
  uint16_t port = 0;
  uint16_t target_port_number = 0;  // numeric targetPort (defaults to port); 0 when target_port_name is set
  std::string target_port_name;     // named targetPort, resolved per pod via Pod::named_ports
  std::string app_protocol;         // as written (may be empty)
  ChainProtocol protocol = ChainProtocol::Sniff;
};

struct Service {
  std::string name;
  std::string namespace_;
  std::string fqdn;  // <name>.<ns>.svc.<cluster_domain>
  net::IpAddr cluster_ip;
  std::vector<ServicePort> ports;
  std::map<std::string, std::string> selector;
  std::map<std::string, std::string> labels;
  Mark mark;
};

// One upstream endpoint: a pod and the port its tunnels CONNECT to.
struct Endpoint {
  const Pod* pod = nullptr;
  net::SockAddr address;  // pod IP : resolved target port (the CONNECT :authority upstream)
};

struct Cluster {
  std::string name;                 // e.g. inbound-vip|9080|tcp|reviews.default.svc.cluster.local
  std::vector<Endpoint> endpoints;  // ready pods only, in file order
};

// A service VIP:port chain (SPEC §4 "service VIP:port").
struct VipChain {
  std::string name;  // inbound-vip|<port>|<http|tcp>|<fqdn>; the Sniff case uses "tcp" until L7 lands
  const Service* service = nullptr;
  const ServicePort* port = nullptr;
  ChainProtocol protocol = ChainProtocol::Sniff;
  Cluster cluster;
};

struct Snapshot {
  Bootstrap bootstrap;
  std::string source_file;  // path as given on the command line
  std::string version;      // hex SHA-256 of the file's bytes (first 16 hex digits)
  std::chrono::system_clock::time_point loaded_at;
  Gateway gateway;

  // Owned resources in file order. Stored in vectors that are never resized after compilation,
  // so the raw pointers below stay valid for the Snapshot's lifetime.
  std::vector<Pod> pods;          // served pods only
  std::vector<Service> services;  // served services only

  std::unordered_map<net::SockAddr, VipChain> vip_chains;  // key: clusterIP:port
  std::unordered_map<net::IpAddr, const Pod*> pods_by_ip;  // direct (pod IP) chains

  std::vector<std::string> ignored;   // "Service other/foo: namespace other is not this waypoint's"
  std::vector<std::string> warnings;  // "FILE:LINE:COL: VirtualService reviews: not applied by this version"

  const VipChain* find_vip(const net::SockAddr& dst) const {
    auto it = vip_chains.find(dst);
    return it == vip_chains.end() ? nullptr : &it->second;
  }
  const Pod* find_pod(const net::IpAddr& ip) const {
    auto it = pods_by_ip.find(ip);
    return it == pods_by_ip.end() ? nullptr : it->second;
  }
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

// Reads, validates and compiles the file. Throws ConfigError listing every error found
// ("FILE:LINE:COL: message" per line). Certificate files are read and checked (PEM parses, key
// matches the certificate) but no SSL_CTX is built here.
SnapshotPtr load_snapshot(const std::string& path);

// Same, from text already in memory (tests); `path` is used in messages and to resolve relative
// certificate paths.
SnapshotPtr load_snapshot_from_string(const std::string& text, const std::string& path);

// A human-readable summary of what would be served (for `waypoint validate`).
std::string describe(const Snapshot& snapshot);

// Go-style duration ("10s", "1.5s", "250ms", "1m30s", "1h", "100us", "0"); nullopt when malformed.
std::optional<Millis> parse_duration(std::string_view text);

}  // namespace wp::config
