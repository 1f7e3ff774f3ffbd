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

namespace re2 {
class RE2;
}

#include "waypoint/config/pieces.h"
#include "waypoint/filters/authz.h"
#include "waypoint/net/address.h"

namespace wp::config {

using Millis = std::chrono::milliseconds;

// A position in the config file, for FILE:LINE:COL messages (1-based line and column).
struct Mark {
  int line = 0;
  int column = 0;
};

// An object of the live namespace left out of a snapshot, and why.
struct RejectedObject {
  std::string kind;
  std::string name;
  std::string resource_version;
  std::string reason;  // the errors, "VirtualService reviews: spec.http[0]...: ..." one per line
};

// One object as the Kubernetes API serves it: `json` is the object, on one line.
struct SourceObject {
  std::string kind;
  std::string name;
  std::string resource_version;
  std::string json;
};
// The objects of a load, each immutable and shared: kube::Source hands over the objects it holds
// (a pointer each, not a copy), and an ObjectCache knows an object it has read by its address.
using SourceObjectPtr = std::shared_ptr<const SourceObject>;
using SourceObjects = std::vector<SourceObjectPtr>;

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
  // HTTP/2 abuse guards, for HBONE and for h2c inside tunnels (hbone/h2_guards.h).
  uint32_t max_consecutive_empty_frames = 1;          // Envoy's default; 0 = unlimited
  uint32_t premature_reset_total_stream_count = 500;  // Envoy's premature-reset rule
  Millis premature_reset_min_stream_lifetime{1'000};
};

// Inner HTTP connections (the requests inside tunnels on HTTP chains).
enum class UnderscoreHeaders { Allow, DropHeader, RejectRequest };  // Envoy's headers_with_underscores_action
struct HttpSettings {
  Millis request_headers_timeout{10'000};  // a request's head must be complete within this → 408
  Millis idle_timeout{300'000};            // no request in progress this long → the session closes
  UnderscoreHeaders headers_with_underscores = UnderscoreHeaders::Allow;
};

// The admin (15000), metrics (15020) and health (15021) listeners, each.
struct AdminListenerSettings {
  uint32_t max_connections = 128;  // more are accepted and closed at once (admin_cx_overflow)
  Millis idle_timeout{10'000};     // a connection without a complete request this long is closed
  uint32_t max_request_bytes = 16'384;
};

struct Listeners {
  net::SockAddr hbone;    // default 0.0.0.0:15008
  net::SockAddr admin;    // default 127.0.0.1:15000
  net::SockAddr metrics;  // default 0.0.0.0:15020
  net::SockAddr health;   // default 0.0.0.0:15021
  // The admin API can change the proxy (log level, drain): a non-loopback admin address is refused
  // unless this is set (spec.listeners.allowNonLoopbackAdmin: true).
  bool allow_non_loopback_admin = false;
};

// spec.kubernetes: the namespace's resources come from the Kubernetes API (SPEC §7).
struct KubernetesSource {
  bool enabled = false;
  std::string namespace_;  // as written; empty: the service account's namespace, else metadata.namespace
  std::string kubeconfig;  // as written (~ expanded by the client); empty: in-cluster, $KUBECONFIG, ~/.kube/config
};

struct Bootstrap {
  std::string name;  // metadata.name of the WaypointBootstrap
  // The only namespace this waypoint knows: metadata.namespace, or in the Kubernetes API mode the
  // namespace it watches.
  std::string namespace_;
  std::string gateway;  // spec.gateway
  std::string trust_domain = "cluster.local";
  std::string cluster_domain = "cluster.local";  // FQDN suffix: <svc>.<ns>.svc.<cluster_domain>
  Listeners listeners;
  TlsFiles tls;
  UpstreamSettings upstream;
  DownstreamSettings downstream;
  HttpSettings http;
  AdminListenerSettings admin_listeners;
  int concurrency = 0;  // 0 = one worker per core
  std::string log_level = "info";
  std::string access_log = "stdout";
  KubernetesSource kubernetes;
};

struct Gateway {
  std::string name;
  std::string namespace_;
  std::string for_service_account;  // annotation istio.io/for-service-account; empty = namespace-wide
  Mark mark;
};

// What the pods of one workload have in common: a Deployment's pods differ only in name, IP and
// readiness. Read once per pod and interned (PodTemplate::intern), so that the pods of a workload
// share one: 100,000 pods of 10,000 Deployments hold 10,000 of these, not 100,000 label maps and
// telemetry strings (about 500 bytes a pod).
struct PodTemplate {
  std::string namespace_;
  std::string service_account = "default";  // spec.serviceAccountName
  std::map<std::string, std::string> labels;
  std::map<std::string, uint16_t> named_ports;  // spec.containers[].ports[].name -> containerPort
  std::string spiffe_id;                        // spiffe://<trust_domain>/ns/<ns>/sa/<sa>
  // Istio's telemetry labels, derived once (see workload_labels() in kubernetes.cpp): the workload
  // (the Deployment, from ownerReferences or the generated name), labels app and version, and the
  // canonical service and revision. A pod that is its own workload (no owner, a name not generated)
  // has `workload_is_name` instead of its name here, and `canonical_is_name` when the canonical
  // service is that name too, so that such pods still share their template.
  std::string workload;
  std::string app = "unknown";
  std::string version = "unknown";
  std::string canonical_service;
  std::string canonical_revision = "latest";
  bool workload_is_name = false;
  bool canonical_is_name = false;

  bool operator==(const PodTemplate&) const = default;
  // An equal template already held by some pod, else `t` itself, shared. Thread-safe; a template
  // is forgotten when its last pod goes. At most kMaxAlike templates of one hash are compared (a
  // namespace written to collide costs no more than that; the rest are simply not shared).
  static constexpr size_t kMaxAlike = 8;
  static std::shared_ptr<const PodTemplate> intern(PodTemplate t);
  static std::shared_ptr<const PodTemplate> intern(PodTemplate t, size_t hash);  // tests: a hash forced
  static size_t interned();                                                      // templates held in the table (tests)
  static const std::shared_ptr<const PodTemplate>& none();                       // the empty one (a default Pod's)
};

struct Pod {
  std::string name;
  net::IpAddr ip;     // status.podIP
  bool ready = true;  // false when status.phase is set and not Running, the Ready condition is not "True",
                      // or metadata.deletionTimestamp is set (terminating)
  // An endpoint address of an EndpointSlice whose pod the waypoint does not know (no targetRef, or
  // the Pod not read): served with the trust-domain check only (spiffe_id empty), no pod-IP chain.
  bool from_slice_only = false;
  Mark mark;
  std::shared_ptr<const PodTemplate> shared = PodTemplate::none();  // never null

  const std::string& namespace_() const { return shared->namespace_; }
  const std::string& service_account() const { return shared->service_account; }
  const std::map<std::string, std::string>& labels() const { return shared->labels; }
  const std::map<std::string, uint16_t>& named_ports() const { return shared->named_ports; }
  const std::string& spiffe_id() const { return shared->spiffe_id; }
  const std::string& workload() const { return shared->workload_is_name ? name : shared->workload; }
  const std::string& app() const { return shared->app; }
  const std::string& version() const { return shared->version; }
  const std::string& canonical_service() const { return shared->canonical_is_name ? name : shared->canonical_service; }
  const std::string& canonical_revision() const { return shared->canonical_revision; }
};

// One upstream endpoint: a pod and the port its tunnels CONNECT to.
struct Endpoint {
  const Pod* pod = nullptr;
  net::SockAddr address;  // pod IP : resolved target port (the CONNECT :authority upstream)
};

// How the internal listener treats a service port (SPEC §4).
enum class ChainProtocol { Http, Tcp, Sniff };
std::string_view to_string(ChainProtocol p);  // "http", "tcp", "sniff"

struct ServicePort {
  std::string name;
  uint16_t port = 0;
  uint16_t target_port_number = 0;  // numeric targetPort (defaults to port); 0 when target_port_name is set
  std::string target_port_name;     // named targetPort, resolved per pod via Pod::named_ports
  std::string app_protocol;         // as written (may be empty)
  ChainProtocol protocol = ChainProtocol::Sniff;
  bool http2 = false;  // http2, h2c, grpc, kubernetes.io/h2c: requests go to the pods as h2c
  // Ready endpoints of this port: from the Service's EndpointSlices when it has any, else the ready
  // pods its selector picks (compile()); every cluster of the port is a subset of these.
  std::vector<Endpoint> endpoints;
};

struct Service {
  std::string name;
  std::string namespace_;
  std::string fqdn;                      // <name>.<ns>.svc.<cluster_domain>
  net::IpAddr cluster_ip;                // spec.clusterIP; unset for a headless Service
  std::vector<net::IpAddr> cluster_ips;  // every VIP served (spec.clusterIPs: dual stack); empty when headless
  std::vector<ServicePort> ports;
  std::map<std::string, std::string> selector;
  std::map<std::string, std::string> labels;
  Mark mark;
};

struct Cluster {
  std::string name;                 // e.g. inbound-vip|9080|tcp|reviews.default.svc.cluster.local
  std::vector<Endpoint> endpoints;  // ready pods only, in file order
};

struct RouteTable;
struct TcpRouteTable;

// A service VIP:port chain (SPEC §4 "service VIP:port"). Its route tables and policy set are
// pointed at once, at config time, so that neither a tunnel nor a request looks them up.
struct VipChain {
  std::string name;  // inbound-vip|<port>|<http|tcp>|<fqdn>; the Sniff case uses "tcp" until L7 lands
  const Service* service = nullptr;
  const ServicePort* port = nullptr;
  ChainProtocol protocol = ChainProtocol::Sniff;
  Cluster cluster;
  const filters::PolicySet* authz = nullptr;  // its Service's entry of Snapshot::authz_services
  const RouteTable* routes = nullptr;         // its Snapshot::route_tables entry (http and sniffed ports)
  const TcpRouteTable* tcp_routes = nullptr;  // its Snapshot::tcp_routes entry (a VirtualService tcp[] route)
};

// ---- L7 routing (VirtualService, DestinationRule, HTTPRoute), compiled per service port --------
// Plain immutable data; the per-request logic that reads it lives in router/ (match, pick,
// should_retry, apply, decide_fault).

// A string matcher as Istio's StringMatch: exact, prefix or a precompiled (full-match) regex.
struct StringMatch {
  // PathPrefix is Gateway API's: whole path segments ("/a" matches "/a" and "/a/b", not "/ab").
  enum class Kind { Exact, Prefix, Regex, PathPrefix };
  Kind kind = Kind::Exact;
  std::string value;  // the literal (Exact/Prefix) or the pattern as written (Regex)
  // Kind::Regex only: RE2 (Envoy's safe_regex dialect), full match, case-folded when ignore_case.
  // Compiled once at config time; immutable and shared by the snapshots that hold the match.
  std::shared_ptr<const re2::RE2> regex;
  bool ignore_case = false;
};

// A header or query parameter condition. Without `value` it only asks for presence.
struct KeyMatch {
  std::string name;  // headers: lower-cased
  std::optional<StringMatch> value;
  bool invert = false;  // VirtualService withoutHeaders: the condition must NOT hold
};

// One match block: every present condition must hold (a Route matches when any block does).
struct RouteMatch {
  std::string name;  // Istio match[].name (may be empty)
  std::optional<StringMatch> uri;
  std::optional<StringMatch> method;
  std::optional<StringMatch> authority;
  std::vector<KeyMatch> headers;
  std::vector<KeyMatch> query_params;
};

enum class LoadBalancer { RoundRobin, LeastRequest, Random, ConsistentHash };
std::string_view to_string(LoadBalancer lb);  // Envoy's names: ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH

// DestinationRule trafficPolicy after subset overrides; unset limits are 0 (= Envoy's defaults).
struct ClusterPolicy {
  LoadBalancer load_balancer = LoadBalancer::RoundRobin;
  std::string hash_header;                   // consistentHash.httpHeaderName, lower-cased
  uint32_t max_connections = 0;              // connectionPool.tcp.maxConnections
  uint32_t http1_max_pending_requests = 0;   // connectionPool.http.http1MaxPendingRequests
  uint32_t http2_max_requests = 0;           // connectionPool.http.http2MaxRequests
  uint32_t max_requests_per_connection = 0;  // connectionPool.http.maxRequestsPerConnection
  uint32_t max_retries = 0;                  // connectionPool.http.maxRetries
  bool outlier_detection = false;            // outlierDetection given
  uint32_t consecutive_5xx_errors = 5;
  Millis outlier_interval{10'000};
  Millis base_ejection_time{30'000};
  uint32_t max_ejection_percent = 10;
};

// A cluster a route can send to: a service port, optionally narrowed to a DestinationRule subset.
struct RoutedCluster {
  std::string name;  // inbound-vip|<port>|<http|tcp>[/<subset>]|<fqdn>
  const Service* service = nullptr;
  const ServicePort* port = nullptr;
  std::string subset;                         // empty: the whole service
  std::map<std::string, std::string> labels;  // the subset's labels (empty without subset)
  std::vector<Endpoint> endpoints;            // ready pods of the service matching the labels
  ClusterPolicy policy;
  std::string destination_rule;  // name of the DestinationRule applied; empty if none
};

struct WeightedCluster {
  const RoutedCluster* cluster = nullptr;
  uint32_t weight = 0;
};

// Envoy's retry_on conditions, as bits of RetryPolicy::retry_on.
enum RetryOn : uint32_t {
  kRetry5xx = 1u << 0,
  kRetryGatewayError = 1u << 1,
  kRetryReset = 1u << 2,
  kRetryResetBeforeRequest = 1u << 3,
  kRetryConnectFailure = 1u << 4,
  kRetryRefusedStream = 1u << 5,
  kRetryRetriableStatusCodes = 1u << 6,
  kRetryRetriable4xx = 1u << 7,
  kRetryEnvoyRateLimited = 1u << 8,
  kRetryGrpcCancelled = 1u << 9,
  kRetryGrpcDeadlineExceeded = 1u << 10,
  kRetryGrpcInternal = 1u << 11,
  kRetryGrpcResourceExhausted = 1u << 12,
  kRetryGrpcUnavailable = 1u << 13,
};

// Envoy's names of the set bits ("connect-failure,refused-stream,..."), in Envoy's order; "" for none.
std::string retry_on_names(uint32_t bits);

// Defaults are Istio's for a route without `retries`.
struct RetryPolicy {
  uint32_t num_retries = 2;  // retries after the first try; 0 disables retrying
  uint32_t retry_on = kRetryConnectFailure | kRetryRefusedStream | kRetryGrpcUnavailable | kRetryGrpcCancelled |
                      kRetryRetriableStatusCodes;
  std::vector<uint16_t> retriable_status_codes{503};
  std::optional<Millis> per_try_timeout;  // HTTPRoute: timeouts.backendRequest
  bool previous_hosts = true;             // each retry prefers a host not tried before
  uint32_t host_selection_attempts = 5;
};

// Fault injection; percentages are stored per million (100 % = 1'000'000).
struct FaultPolicy {
  bool has_delay = false;
  Millis delay{0};
  uint32_t delay_per_million = 0;
  bool has_abort = false;
  uint16_t abort_status = 0;
  uint32_t abort_per_million = 0;
};

struct HeaderMutation {
  std::vector<std::pair<std::string, std::string>> set;  // replace or add (names lower-cased)
  std::vector<std::pair<std::string, std::string>> add;  // append
  std::vector<std::string> remove;                       // applied first
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
};

// How a path is replaced: the part matched by a prefix match (whole path when the route matched
// otherwise), or always the whole path. Query strings are kept.
enum class PathRewrite { None, Prefix, Full };

struct Rewrite {
  PathRewrite path_kind = PathRewrite::None;
  std::string path;
  std::string authority;  // empty: unchanged
};

struct Redirect {
  PathRewrite path_kind = PathRewrite::None;
  std::string path;
  std::string authority;  // empty: unchanged
  std::string scheme;     // empty: unchanged
  uint16_t port = 0;      // 0: unchanged
  uint16_t status = 301;
};

struct Mirror {
  const RoutedCluster* cluster = nullptr;
  uint32_t per_million = 1'000'000;
};

struct Route {
  std::string name;                 // http[].name / "<HTTPRoute>.<rule index>" / "default"
  std::string source;               // "VirtualService reviews", "HTTPRoute reviews", "default"
  std::vector<RouteMatch> matches;  // empty: matches every request
  // Forward (clusters non-empty) unless `redirect` or `direct_status` says otherwise.
  std::vector<WeightedCluster> clusters;
  std::vector<uint32_t> cumulative_weights;  // prefix sums of clusters[].weight
  uint32_t total_weight = 0;
  // Non-zero: answer locally with this status and body (VirtualService directResponse; an HTTPRoute
  // rule whose backends all weigh 0 answers 500).
  uint16_t direct_status = 0;
  std::string direct_body;
  std::optional<Redirect> redirect;
  RetryPolicy retry;
  std::optional<Millis> timeout;  // route timeout; none unless configured (HTTPRoute: timeouts.request)
  FaultPolicy fault;
  HeaderMutation request_headers;
  HeaderMutation response_headers;
  Rewrite rewrite;
  std::vector<Mirror> mirrors;
};

// The route of a pod-IP (direct-http) chain: forward to the addressed pod with the default retry
// policy and no timeout.
const Route& direct_route();

// The routes of one service port, tried in order; the first matching route wins.
struct RouteTable {
  std::string name;  // the chain name, inbound-vip|<port>|http|<fqdn>
  const Service* service = nullptr;
  const ServicePort* port = nullptr;
  std::vector<Route> routes;
  std::vector<std::string> sources;  // the VirtualService/HTTPRoute names applied (empty: default route)
};

// VirtualService tcp[] routes for one service port: the first entry whose port matches applies.
struct TcpRoute {
  std::vector<WeightedCluster> clusters;
  std::vector<uint32_t> cumulative_weights;
  uint32_t total_weight = 0;
};

struct TcpRouteTable {
  std::string name;
  std::string source;  // "VirtualService echo"
  TcpRoute route;
};

struct Snapshot {
  Bootstrap bootstrap;
  std::string source_file;  // path as given on the command line
  std::string version;      // hex SHA-256 of the file's bytes (first 16 hex digits)
  std::chrono::system_clock::time_point loaded_at;
  Gateway gateway;

  // Resources in file order (the Kubernetes API mode: each kind's objects by name), each an
  // immutable piece shared with the snapshots that did not change it (pieces.h); every pointer
  // below points into pieces this snapshot holds.
  PieceList<Pod> pods;          // served pods only
  PieceList<Service> services;  // served services only

  PieceMap<net::SockAddr, VipChain> vip_chains;    // key: clusterIP:port
  ShardedMap<net::IpAddr, const Pod*> pods_by_ip;  // direct (pod IP) chains

  // L7 routing: the clusters some route sends to, and the route tables of each VIP:port.
  PieceMap<std::string, RoutedCluster> clusters;      // by name
  PieceMap<net::SockAddr, RouteTable> route_tables;   // VIP:port of http and sniffed ports
  PieceMap<net::SockAddr, TcpRouteTable> tcp_routes;  // VIP:port with a VirtualService tcp[] route

  // Authorization (AuthorizationPolicy): the Gateway's policies, which apply to every chain, and
  // per served Service (by name) the Gateway's plus the Service's own.
  filters::PolicySet authz_gateway;
  PieceMap<std::string, filters::PolicySet> authz_services;
  size_t authz_policy_count = 0;

  // Objects from the Kubernetes API that could not be applied (each skipped alone, SPEC §7).
  std::vector<RejectedObject> rejected;
  std::vector<std::string> ignored;   // "Service other/foo: namespace other is not this waypoint's"
  std::vector<std::string> warnings;  // "FILE:LINE:COL: VirtualService reviews: not applied by this version"

  // The policies of a chain: its Service's set, or the Gateway's for a pod IP (vip == nullptr).
  const filters::PolicySet& authz_for(const VipChain* vip) const {
    return vip != nullptr && vip->authz != nullptr ? *vip->authz : authz_gateway;
  }
  const VipChain* find_vip(const net::SockAddr& dst) const { return vip_chains.find_piece(dst); }
  const RouteTable* find_routes(const net::SockAddr& vip) const { return route_tables.find_piece(vip); }
  const TcpRouteTable* find_tcp_routes(const net::SockAddr& vip) const { return tcp_routes.find_piece(vip); }
  const RoutedCluster* find_cluster(const std::string& name) const { return clusters.find_piece(name); }
  const Pod* find_pod(const net::IpAddr& ip) const {
    const Pod* const* pod = pods_by_ip.find(ip);
    return pod == nullptr ? nullptr : *pod;
  }
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

// The version of a config file's bytes: the first 16 hex digits of their SHA-256.
std::string version_of(const std::string& bytes);

// Reads, validates and compiles the file. Throws ConfigError listing every error found
// ("FILE:LINE:COL: message" per line). Certificate files are read and checked (PEM parses, key
// matches the certificate) but no SSL_CTX is built here.
SnapshotPtr load_snapshot(const std::string& path);
// The largest config file load_snapshot reads (default 64 MiB, `--max-config-bytes`): a bigger
// one is a ConfigError, not an allocation of its size times yaml-cpp's overhead. Set once at start.
size_t max_config_bytes();
void set_max_config_bytes(size_t bytes);

// Same, unless the file's version (its bytes) is `version`: then nullptr, and nothing is parsed.
SnapshotPtr load_snapshot_if_changed(const std::string& path, const std::string& version);

// Same, from text already in memory (tests); `path` is used in messages and to resolve relative
// certificate paths.
SnapshotPtr load_snapshot_from_string(const std::string& text, const std::string& path);

// The Kubernetes API mode (SPEC §7): the bootstrap document (the file's text) plus the namespace's
// objects, through the very decoding and compile path of the file mode. Objects stand alone: one
// whose errors (its own or its references') would fail the load is left out and listed in
// `rejected`, and the rest is compiled again without it. Throws ConfigError only for the bootstrap.
// Warnings about an object name it instead of a line of the file.
// The file's bytes (bounded by max_config_bytes()); throws ConfigError.
std::string read_config_text(const std::string& path);
// Only the bootstrap of a config text (to learn the mode before loading); throws ConfigError.
Bootstrap load_bootstrap(const std::string& text, const std::string& path);

// `namespace_` (when not empty) is the namespace watched; it replaces the bootstrap's.
// `check_certificates` false: the bootstrap's tls files are not read (validate --kubernetes without
// a config file).
// `cache` (optional) keeps what was read of each object between loads: an object whose
// resourceVersion (without one: its JSON) and bootstrap are those of the previous load is not
// decoded or read again, and (when the last load left no object out) a change of Pods, slices or
// same-binding routing objects recompiles only the Services it touches (Compiler::update). The
// result is the same with or without it, except that an incremental load does not read the
// certificate files again (their changes are the rotation path's). With a cache, a load costs a
// pass over the object pointers plus the work of what changed: an object passed at the address it
// had in the previous load is taken as it was, without looking at its bytes.
// The version is a SHA-256 over the bootstrap text and each object's own SHA-256 (of its JSON).
class ObjectCache;
SnapshotPtr load_snapshot_from_objects(const std::string& bootstrap_text, const std::string& path,
                                       const std::string& namespace_, const SourceObjects& objects,
                                       bool check_certificates = true, ObjectCache* cache = nullptr);
// The same for objects held by value (tests, `validate --kubernetes`): each is copied once.
SnapshotPtr load_snapshot_from_objects(const std::string& bootstrap_text, const std::string& path,
                                       const std::string& namespace_, const std::vector<SourceObject>& objects,
                                       bool check_certificates = true, ObjectCache* cache = nullptr);

// Decodes and reads into `cache` the objects it does not hold yet, and compiles nothing: the
// Kubernetes API mode does this while the first LISTs are still arriving, so that the first load
// finds every object read but compiles (and serves) only a complete namespace. The next load with
// that cache compiles from scratch. An object that cannot be read is left to that load to report.
void read_into_cache(const std::string& bootstrap_text, const std::string& path, const std::string& namespace_,
                     const SourceObjects& objects, ObjectCache& cache);

// What the previous load read of each object (the Kubernetes API mode keeps one for the process's
// life). One load at a time may use it; it holds the objects of the last load only.
class ObjectCache {
 public:
  ObjectCache();
  ~ObjectCache();
  ObjectCache(const ObjectCache&) = delete;
  ObjectCache& operator=(const ObjectCache&) = delete;
  size_t size() const;
  uint64_t hits() const;    // objects reused, over all loads
  uint64_t misses() const;  // objects decoded, over all loads
  // Loads that applied their changes on top of the previous one (the pieces they did not touch
  // shared with its Snapshot) instead of compiling from scratch.
  uint64_t incremental() const;

  struct Impl;

 private:
  friend SnapshotPtr load_snapshot_from_objects(const std::string&, const std::string&, const std::string&,
                                                const SourceObjects&, bool, ObjectCache*);
  friend void read_into_cache(const std::string&, const std::string&, const std::string&, const SourceObjects&,
                              ObjectCache&);
  std::unique_ptr<Impl> impl_;
};

// A human-readable summary of what would be served (for `waypoint validate`).
std::string describe(const Snapshot& snapshot);

// Go-style duration ("10s", "1.5s", "250ms", "1m30s", "1h", "100us", "0"); nullopt when malformed.
std::optional<Millis> parse_duration(std::string_view text);

}  // namespace wp::config
