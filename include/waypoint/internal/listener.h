#pragma once
// The internal listener (`main_internal`): every accepted HBONE tunnel arrives here, in process,
// and a filter chain is picked from its destination — a served Service's VIP:port, or a served
// pod's IP — then the chain runs. In this version every chain is a TCP chain.
#include <memory>
#include <string>
#include <unordered_map>

#include "waypoint/config/snapshot.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/hbone/server.h"
#include "waypoint/internal/tcp_proxy.h"

namespace wp::internal {

// The chain a destination selects (pure; unit-tested).
struct ChainMatch {
  enum class Kind { None, Vip, Pod };
  Kind kind = Kind::None;
  const config::VipChain* vip = nullptr;
  const config::Pod* pod = nullptr;
  std::string name() const;  // inbound-vip|...|fqdn, direct-tcp, or "" for None
};
ChainMatch select_chain(const config::Snapshot& snapshot, const net::SockAddr& destination);

class InternalListener final : public hbone::ConnectHandler {
 public:
  InternalListener(event::Loop& loop, hbone::Pool& pool, stats::Block& stats, AccessLog& log);
  ~InternalListener() override;

  void set_snapshot(config::SnapshotPtr snapshot);
  const config::SnapshotPtr& snapshot() const { return snapshot_; }
  void on_connect_request(const hbone::InboundConnect& request) override;
  void abort_all();
  size_t active_tunnels() const { return proxies_.size(); }

 private:
  const config::Endpoint* pick_round_robin(const config::Cluster& cluster);
  void reject(const hbone::InboundConnect& request, TunnelRecord& record, int status, const char* flags);

  event::Loop& loop_;
  hbone::Pool& pool_;
  stats::Block& stats_;
  AccessLog& log_;
  config::SnapshotPtr snapshot_;
  std::unordered_map<const config::Cluster*, uint32_t> rr_;  // per-worker round-robin cursors
  std::unordered_map<TcpProxy*, std::unique_ptr<TcpProxy>> proxies_;
};

}  // namespace wp::internal
