#pragma once
// What the HTTP chain's pieces share on a worker (WorkerContext: loop, stats, telemetry, the
// upstream stream pool, cluster states, mirrors) and per tunnel (TunnelInfo), and where an attempt
// to an endpoint goes (upstream_key).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "waypoint/accesslog/telemetry.h"
#include "waypoint/buffer/buffer.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/event/loop.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/http/message.h"
#include "waypoint/proxy/http_names.h"
#include "waypoint/proxy/upstream.h"
#include "waypoint/stats/stats.h"
#include "waypoint/upstream/cluster_state.h"

namespace wp::proxy {

// Per-worker services the chain uses.
class MirrorRequest;
struct WorkerContext;

// The mirrored copies of requests in flight on a worker (VirtualService mirror, HTTPRoute
// RequestMirror). Each ends on its response, a failure or MirrorRequest::kMaxLife; the owner's
// abort_all() (shutdown) and destructor end the rest.
class Mirrors {
 public:
  explicit Mirrors(event::Loop& loop);
  ~Mirrors();
  Mirrors(const Mirrors&) = delete;
  Mirrors& operator=(const Mirrors&) = delete;

  void start(WorkerContext& w, const UpstreamKey& key, RequestHead head, buffer::Buffer body);
  void abort_all();
  size_t size() const { return live_.size(); }

 private:
  friend class MirrorRequest;
  void finished(MirrorRequest& m);  // m is freed after the current callbacks
  event::Loop& loop_;
  std::unordered_map<MirrorRequest*, std::unique_ptr<MirrorRequest>> live_;
};

struct WorkerContext {
  event::Loop& loop;
  stats::Block& stats;
  accesslog::Telemetry& log;  // access log and Istio metrics
  StreamPool& upstream;
  upstream::ClusterManager& clusters;
  Mirrors& mirrors;
  // The snapshot in force on this worker (new requests run on it); null: the tunnel's.
  const config::SnapshotPtr* snapshot = nullptr;
  uint64_t rng_state = 0x9e3779b97f4a7c15ull;
  uint32_t random();  // xorshift64*: fast, per worker, good enough for weights and percentages
};

// What the chain knows about the tunnel its requests arrive in (fixed at CONNECT time).
struct TunnelInfo {
  config::SnapshotPtr snapshot;                // pinned for the tunnel's life
  std::string chain;                           // inbound-vip|9080|http|fqdn, or direct-http
  const config::RouteTable* routes = nullptr;  // service chains
  const config::Pod* direct_pod = nullptr;     // direct-http: the pod the tunnel was addressed to
  net::SockAddr destination;                   // the CONNECT authority
  std::string source_principal;                // the client's SPIFFE ID
  net::IpAddr source_ip;                       // forwarded for=, else the TCP peer
  const config::Pod* source_pod = nullptr;     // the client, when it is a pod of this namespace (telemetry)
  std::string traceparent;                     // from the CONNECT, passed on to the requests
  std::chrono::steady_clock::time_point opened = std::chrono::steady_clock::now();  // the tunnel's start
  std::string client;                           // source_ip as text (x-forwarded-for, pooling key)
  hbone::H2Stream::HeaderList connect_headers;  // forwarded, traceparent, baggage for upstream CONNECTs
  bool upstream_h2c = false;  // talk h2c to the pods (port http2/h2c/grpc, or h2c sniffed on a pod chain)
  const filters::PolicySet* authz = nullptr;  // the chain's AuthorizationPolicies (in `snapshot`)
};

// Where an attempt to `ep` goes: the pod's HBONE port, its identity, and the CONNECT headers that
// carry the client's address and trace context (the key points into `tunnel`).
UpstreamKey upstream_key(const TunnelInfo& tunnel, const config::Endpoint& ep, uint16_t hbone_port);

}  // namespace wp::proxy
