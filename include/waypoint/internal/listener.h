#pragma once
// The internal listener (`main_internal`): every accepted HBONE tunnel arrives here, in process,
// and a filter chain is picked from its destination — a served Service's VIP:port, or a served
// pod's IP — and, where the port does not say, from the protocol the client speaks (sniffed from
// its first bytes). TCP chains copy bytes (TcpProxy); HTTP chains parse requests (proxy::Session).
#include <memory>
#include <string>
#include <unordered_map>

#include "waypoint/config/snapshot.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/hbone/server.h"
#include "waypoint/internal/sniff.h"
#include "waypoint/internal/tcp_proxy.h"
#include "waypoint/proxy/chain.h"
#include "waypoint/proxy/session.h"
#include "waypoint/proxy/upstream.h"
#include "waypoint/upstream/cluster_state.h"

namespace wp::internal {

using accesslog::Telemetry;
using accesslog::TunnelRecord;

// The chain a destination selects (pure; unit-tested).
struct ChainMatch {
  enum class Kind { None, Vip, Pod };
  Kind kind = Kind::None;
  const config::VipChain* vip = nullptr;
  const config::Pod* pod = nullptr;
  // inbound-vip|...|fqdn, direct-tcp / direct-http (by `sniffed`), or "" for None.
  std::string name(Sniffed sniffed = Sniffed::Tcp) const;
};
ChainMatch select_chain(const config::Snapshot& snapshot, const net::SockAddr& destination);

class InternalListener final : public hbone::ConnectHandler {
 public:
  // How long a tunnel on a sniffed chain may stay silent before it is treated as TCP (a
  // server-first protocol: the client waits for the server to speak).
  static constexpr std::chrono::milliseconds kSniffTimeout{300};

  InternalListener(event::Loop& loop, hbone::Pool& pool, stats::Block& stats, Telemetry& log);
  const upstream::ClusterManager& clusters() const { return clusters_; }
  ~InternalListener() override;

  void set_snapshot(config::SnapshotPtr snapshot);
  const config::SnapshotPtr& snapshot() const { return snapshot_; }
  void on_connect_request(const hbone::InboundConnect& request) override;
  void abort_all();
  size_t active_tunnels() const { return proxies_.size() + sessions_.size() + sniffers_.size(); }

 private:
  struct Accepted;  // what a tunnel's CONNECT said, kept while sniffing
  class Sniffer;
  // A TCP service chain's endpoint: a weighted pick over its VirtualService tcp[] route when it
  // has one, else the Service's own endpoints; round robin within the cluster. Null: none ready.
  const config::Endpoint* pick_tcp_endpoint(Accepted& a);
  const config::Endpoint* pick_round_robin(const std::vector<config::Endpoint>& endpoints, const void* cluster);
  void reject(const Accepted& a, const std::string& chain, int status, const char* flags);
  bool authorize_l4(const Accepted& a);  // AuthorizationPolicy on a TCP chain; counts and logs a deny
  void start_tcp(Accepted& a, const config::Pod* pod, net::SockAddr authority, bool answered, buffer::Buffer initial,
                 bool eof);
  void sniffed(Sniffer& s, Sniffed protocol, buffer::Buffer initial, bool eof);
  void start_http(Accepted& a, Sniffed protocol, buffer::Buffer initial, bool eof);

  event::Loop& loop_;
  hbone::Pool& pool_;
  stats::Block& stats_;
  Telemetry& log_;
  config::SnapshotPtr snapshot_;
  proxy::UpstreamHttpPool http_pool_;
  upstream::ClusterManager clusters_;
  proxy::Mirrors mirrors_;
  proxy::WorkerContext ctx_;
  std::unordered_map<const void*, uint32_t> rr_;  // per-worker round-robin cursors, by cluster
  std::unordered_map<TcpProxy*, std::unique_ptr<TcpProxy>> proxies_;
  std::unordered_map<proxy::Session*, std::unique_ptr<proxy::Session>> sessions_;
  std::unordered_map<Sniffer*, std::unique_ptr<Sniffer>> sniffers_;
};

}  // namespace wp::internal
