#pragma once
// Upstream HTTP over HBONE tunnels: requests to a pod are sent inside a CONNECT tunnel re-originated
// to it (hbone::Pool), as HTTP/1.1 (one request at a time per tunnel; idle tunnels are kept per
// endpoint for keep-alive) or as h2c (many streams multiplexed on one tunnel).
//
// A tunnel's CONNECT carries `forwarded: for=<client>`, so kept-alive tunnels are pooled per
// (endpoint, protocol, client address): a tunnel never carries another client's requests.
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "waypoint/buffer/buffer.h"
#include "waypoint/event/loop.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/http/message.h"
#include "waypoint/stats/stats.h"

namespace wp::http {

// Why an upstream exchange ended without a complete response.
enum class UpstreamError {
  ConnectFailure,  // no tunnel: dial, TLS, CONNECT refused or connectTimeout
  Reset,           // tunnel or stream reset / closed before the response completed
  RefusedStream,   // h2c REFUSED_STREAM: never processed, safe to retry
  Protocol,        // the response could not be parsed (502)
};

class UpstreamStreamCallbacks {
 public:
  virtual ~UpstreamStreamCallbacks() = default;
  virtual void on_upstream_head(ResponseHead&& head) = 0;
  virtual void on_upstream_body(const uint8_t* data, size_t len) = 0;  // consume() once passed on
  virtual void on_upstream_trailers(HeaderMap&& trailers) = 0;
  virtual void on_upstream_end() = 0;  // the response is complete; the stream is released
  // The exchange failed; the stream is gone (do not use it after this call).
  virtual void on_upstream_error(UpstreamError error) = 0;
  // Request bytes were handed to the tunnel's connection (send_pending() fell).
  virtual void on_upstream_drained() = 0;
};

// One request/response exchange with a pod.
class UpstreamStream {
 public:
  virtual ~UpstreamStream() = default;
  virtual void send_head(const RequestHead& head, bool end_stream) = 0;
  virtual void send_body(buffer::Buffer& data, bool end_stream) = 0;  // takes all of data
  virtual void send_trailers(const HeaderMap& trailers) = 0;          // ends the request
  // Abandons the exchange (timeout, client gone, retry): no more callbacks. The HTTP/1.1 tunnel is
  // reset (its framing is lost); an h2c stream gets RST_STREAM(CANCEL).
  virtual void abandon() = 0;
  virtual void consume(size_t bytes) = 0;  // response body bytes passed on downstream
  virtual size_t send_pending() const = 0;
  virtual bool reused() const = 0;  // sent on a tunnel that had carried an earlier request
};

class UpstreamPoolCallbacks {
 public:
  virtual ~UpstreamPoolCallbacks() = default;
  // The stream is ready; set its callbacks with the returned object's owner in mind: the stream
  // calls `callbacks` (given to new_stream) from now on.
  virtual void on_pool_ready(UpstreamStream& stream) = 0;
  virtual void on_pool_failure(hbone::UpstreamFailure failure) = 0;
};

struct UpstreamKey {
  net::SockAddr hbone_address;  // podIP:15008
  std::string identity;         // expected SPIFFE ID of the pod
  net::SockAddr authority;      // podIP:targetPort (the CONNECT :authority)
  bool h2c = false;
  // Per tunnel, computed once (TunnelInfo): both must outlive the request that uses the key.
  const hbone::H2Stream::HeaderList* connect_headers = nullptr;  // forwarded, traceparent, baggage
  std::string_view client;                                       // client address: part of the pooling key
  // DestinationRule connectionPool of the cluster (HTTP/1.1 tunnels, per worker): at most
  // `max_connections` tunnels open to the cluster (0 = unlimited); a request that needs another
  // one waits for a tunnel to free up, at most `max_pending` of them (0 = unlimited).
  std::string cluster;
  uint32_t max_connections = 0;
  uint32_t max_pending = 0;
};

class Http1Upstream;
class H2cUpstream;

class UpstreamHttpPool {
 public:
  // A request for a stream; destroying it cancels (no callback after that).
  class Pending {
   public:
    virtual ~Pending() = default;
  };

  UpstreamHttpPool(event::Loop& loop, hbone::Pool& tunnels, stats::Block& stats,
                   std::chrono::milliseconds idle_timeout);
  ~UpstreamHttpPool();

  // Either calls pool_cb.on_pool_ready synchronously and returns nullptr (an idle HTTP/1.1
  // tunnel, or an h2c tunnel with a free stream), or returns a Pending whose callback comes later.
  std::unique_ptr<Pending> new_stream(const UpstreamKey& key, UpstreamStreamCallbacks& stream_cb,
                                      UpstreamPoolCallbacks& pool_cb);
  // True when a request for `key` would exceed the cluster's connectionPool limits now (answer it
  // 503, flag UO): no idle tunnel, maxConnections reached and http1MaxPendingRequests waiting.
  bool would_overflow(const UpstreamKey& key) const;
  void close_all();
  // After a config change: idle kept-alive tunnels close, busy ones close after their exchange,
  // h2c tunnels take no new streams and close when their streams are done. New requests open
  // tunnels under the new config (to endpoints it still has, over pooled connections).
  void retire_all();

 private:
  friend class Http1Upstream;
  friend class H2cUpstream;
  struct Waiter {
    UpstreamKey key;
    UpstreamStreamCallbacks* scb;
    UpstreamPoolCallbacks* pcb;
    uint64_t id;
  };
  struct Budget {
    uint32_t open = 0;  // HTTP/1.1 tunnels of the cluster, connecting, active or idle
    std::list<Waiter> waiters;
  };
  void serve_waiters(const std::string& cluster);
  Http1Upstream* find_idle(const std::string& key);
  std::unique_ptr<Pending> connect_http1(const UpstreamKey& key, UpstreamStreamCallbacks& scb,
                                         UpstreamPoolCallbacks& pcb);
  struct Entry {
    std::list<Http1Upstream*> idle;  // kept-alive HTTP/1.1 tunnels, most recent at the back
    std::list<H2cUpstream*> h2c;     // h2c tunnels (ready or connecting)
  };
  static std::string key_of(const UpstreamKey& key);
  void release(Http1Upstream& conn);  // response done, keep-alive: park it
  void remove(Http1Upstream& conn);   // closed: forget and delete
  void remove(H2cUpstream& conn);

  event::Loop& loop_;
  hbone::Pool& tunnels_;
  stats::Block& stats_;
  std::chrono::milliseconds idle_timeout_;
  std::unordered_map<std::string, Entry> entries_;
  std::unordered_map<Http1Upstream*, std::unique_ptr<Http1Upstream>> http1_;
  std::unordered_map<H2cUpstream*, std::unique_ptr<H2cUpstream>> h2c_;
  std::unordered_map<std::string, Budget> budgets_;  // by cluster name (limited clusters only)
  uint64_t next_waiter_ = 0;
  // Tunnels dialled for a waiter that was served: its cancel handle, by waiter id.
  std::unordered_map<uint64_t, std::unique_ptr<Pending>> pending_handoff_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace wp::http
