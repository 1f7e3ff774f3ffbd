#pragma once
// HBONE originate: client connections to pods' :15008 and the per-worker pool that multiplexes
// CONNECT tunnels over them. One pool key = (pod address, expected SPIFFE identity). A key has at
// most one dial in flight; a new connection is dialled only when every open one is at its stream
// limit; idle connections close after `idle_timeout`.
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "waypoint/hbone/h2_connection.h"
#include "waypoint/net/conn_pool.h"
#include "waypoint/tls/context.h"

namespace wp::hbone {

class Pool;

// A client HTTP/2 connection to one pod. Its place in the pool is a net::ConnState: Connecting
// (dialled, TLS, waiting for the pod's SETTINGS), Ready (a stream is free), Busy (at its stream
// limit), Draining (GOAWAY either way: no new tunnel), Closed.
class HboneClientConnection final : public H2Connection {
 public:
  HboneClientConnection(event::Loop& loop, std::unique_ptr<net::Transport> transport, const net::SockAddr& addr,
                        const H2Settings& settings, Pool& pool, stats::Block& stats);

  // Sends CONNECT `authority` with `extra` headers; the outcome goes to `cb`.
  H2Stream* open_tunnel(const std::string& authority, const H2Stream::HeaderList& extra, ConnectCallbacks* cb);
  uint32_t available_streams(uint32_t max_per_connection) const;
  void set_pool_key(const std::string* key) { key_ = key; }
  const std::string* pool_key() const { return key_; }
  bool opened() const { return opened_; }
  net::ConnState pool_state() const { return st_.state(); }

 private:
  friend class Pool;
  void on_open() override;
  void on_remote_settings() override;
  void on_headers_complete(H2Stream& stream) override;
  void on_stream_removed(H2Stream& stream) override;
  void on_closing() override;
  void update_state();  // Ready or Busy by the streams free, once the pod's SETTINGS are in

  Pool& pool_;
  const std::string* key_ = nullptr;
  bool opened_ = false;
  net::PoolConnState st_;
  event::Timer idle_timer_;
};

enum class UpstreamFailure { ConnectFailed, Timeout, Refused, Reset };
const char* to_string(UpstreamFailure f);

struct UpstreamTarget {
  net::SockAddr hbone_address;   // podIP:15008
  std::string identity;          // the exact SPIFFE ID the pod must present
  std::string authority;         // podIP:targetPort
  H2Stream::HeaderList headers;  // forwarded, traceparent, baggage
};

// What asked for an upstream tunnel hears back through this, once.
class TunnelCallbacks {
 public:
  virtual ~TunnelCallbacks() = default;
  virtual void on_upstream_ready(Tunnel& tunnel) = 0;
  virtual void on_upstream_failed(UpstreamFailure failure, int status) = 0;
};

// A tunnel being opened. Owned by the requester; destroying it cancels the request (no callback
// after that).
class TunnelRequest : public event::DeferredDeletable {};

// Where upstream tunnels come from: the Pool, or a fake in the upstream pools' unit tests.
class TunnelOpener {
 public:
  virtual ~TunnelOpener() = default;
  virtual std::unique_ptr<TunnelRequest> open(UpstreamTarget target, TunnelCallbacks& cb) = 0;
};

// One request for an upstream tunnel from the Pool: destroying it resets a tunnel still being set
// up. It fails with Timeout when no answer came within upstream.connectTimeout of the request,
// whatever stage it was in.
class UpstreamRequest final : public ConnectCallbacks, public TunnelRequest {
 public:
  using Callbacks = TunnelCallbacks;
  ~UpstreamRequest() override;

 private:
  friend class Pool;
  UpstreamRequest(Pool& pool, UpstreamTarget target, Callbacks& cb);
  void on_connect_established(H2Stream& stream) override;
  void on_connect_failed(int status) override;
  void fail(UpstreamFailure f, int status);
  void on_deadline();

  enum class State { Waiting, Submitted, Done };
  Pool& pool_;
  UpstreamTarget target_;
  Callbacks& cb_;
  State state_ = State::Waiting;
  std::string key_;
  H2Stream* stream_ = nullptr;
  event::Timer deadline_;  // upstream.connectTimeout covers dial, TLS and the CONNECT's answer
};

// Where the pool's connections come from: TCP and TLS to the pod (the default), or in-memory
// transports in the pool's unit tests.
class Dialer {
 public:
  virtual ~Dialer() = default;
  // A transport to `address` whose peer must be `identity`; nullptr when the connect failed at
  // once (errno says why).
  virtual std::unique_ptr<net::Transport> dial(const net::SockAddr& address, const std::string& identity) = 0;
};

struct PoolSettings {
  H2Settings h2;
  uint32_t max_streams_per_connection = 100;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds idle_timeout{300'000};
};

class Pool final : public H2Connection::Owner, public TunnelOpener {
 public:
  // `dialer`: null for TCP + TLS with `tls` (the data path); else it makes every connection.
  Pool(event::Loop& loop, tls::ContextPtr tls, const PoolSettings& settings, stats::Block& stats,
       Dialer* dialer = nullptr);
  ~Pool() override;

  std::unique_ptr<TunnelRequest> open(UpstreamTarget target, TunnelCallbacks& cb) override;
  // GOAWAY on every connection (used at shutdown).
  void drain_all();
  // GOAWAY on the connections to endpoints `keep` rejects (a config change removed them): their
  // open tunnels finish, nothing new goes there.
  void drain_unless(const std::function<bool(const net::SockAddr& address, const std::string& identity)>& keep);
  // The client context for connections dialled from now on (certificate rotation).
  void set_tls(tls::ContextPtr tls) { tls_ = std::move(tls); }
  void close_all();
  size_t connection_count() const;
  // The connections in `state` (tests).
  size_t connection_count(net::ConnState state) const;
  const PoolSettings& settings() const { return settings_; }

 private:
  friend class UpstreamRequest;
  friend class HboneClientConnection;
  struct Entry {
    explicit Entry(Pool& pool);
    std::string key;
    net::SockAddr address;
    std::string identity;
    std::list<std::unique_ptr<HboneClientConnection>> conns;
    HboneClientConnection* dialing = nullptr;
    std::deque<UpstreamRequest*> waiters;
    // pump() (then maybe_erase()) after this iteration: never from inside open() (the caller has
    // not stored its request yet) nor from nghttp2's stream-close callback. Goes with the entry.
    event::Deferred pump_soon;
  };
  void pump(Entry& e);
  void dial(Entry& e);
  void cancel(UpstreamRequest& r);
  void on_connection_ready(HboneClientConnection& c);
  void on_connection_capacity(HboneClientConnection& c);
  void on_connection_closed(H2Connection& conn) override;
  Entry* find(const std::string& key);
  void maybe_erase(Entry& e);

  std::unique_ptr<net::Transport> connect(const Entry& e);

  event::Loop& loop_;
  tls::ContextPtr tls_;
  PoolSettings settings_;
  stats::Block& stats_;
  Dialer* dialer_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
};

}  // namespace wp::hbone
