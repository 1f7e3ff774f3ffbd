#pragma once
// A TCP chain: the downstream tunnel's bytes copied to an upstream tunnel re-originated to the
// chosen pod, and back. Data moves as slices; each side's window reopens only when the other side
// has handed the bytes to its connection, so memory per tunnel is bounded by the stream windows.
#include <functional>
#include <memory>
#include <string>

#include "waypoint/accesslog/telemetry.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/event/loop.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/stats/stats.h"

namespace wp::internal {

using accesslog::Telemetry;
using accesslog::TunnelRecord;

class TcpProxy final : public event::DeferredDeletable, public hbone::TunnelCallbacks {
 public:
  using Done = std::function<void(TcpProxy&)>;
  // `record` is pre-filled with what is known at CONNECT time; the proxy completes and logs it.
  TcpProxy(hbone::DownstreamTunnel& downstream, TunnelRecord record, config::SnapshotPtr snapshot, stats::Block& stats,
           Telemetry& log, Done done);
  ~TcpProxy() override;

  void start(hbone::TunnelOpener& opener, hbone::UpstreamTarget target);
  // A sniffed tunnel: the CONNECT was already answered 200 and `initial` bytes (not yet consumed)
  // were read while sniffing. An upstream failure then resets the tunnel (no status to send).
  void start_answered(hbone::TunnelOpener& opener, hbone::UpstreamTarget target, buffer::Buffer initial, bool eof);
  // Shutdown: reset both sides now.
  void abort();

 private:
  struct Side final : hbone::TunnelHandler {
    TcpProxy& proxy;
    bool downstream;
    hbone::Tunnel* tunnel = nullptr;
    bool eof = false;      // this side's peer half-closed
    size_t in_flight = 0;  // bytes taken from this side, not yet handed to the other side's connection
    Side(TcpProxy& p, bool d) : proxy(p), downstream(d) {}
    void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override;
    void on_tunnel_eof(hbone::Tunnel& t) override;
    void on_tunnel_drained(hbone::Tunnel& t, size_t bytes) override;
    void on_tunnel_closed(hbone::Tunnel& t, bool clean) override;
  };
  Side& other(Side& s) { return &s == &down_ ? up_ : down_; }

  void on_upstream_ready(hbone::Tunnel& tunnel) override;
  void on_upstream_failed(hbone::UpstreamFailure failure, int status) override;
  void maybe_finish();

  enum class State { Connecting, Open, Finished };
  State state_ = State::Connecting;
  bool answered_ = false;
  hbone::DownstreamTunnel* downstream_stream_;
  TunnelRecord record_;
  std::chrono::steady_clock::time_point started_;
  config::SnapshotPtr snapshot_;  // pinned for the tunnel's life
  stats::Block& stats_;
  Telemetry& log_;
  Done done_;
  Side down_{*this, true};
  Side up_{*this, false};
  buffer::Buffer early_;  // downstream bytes that arrived before the upstream tunnel was ready
  std::unique_ptr<hbone::TunnelRequest> request_;
};

}  // namespace wp::internal
