#pragma once
// Upstream HTTP over HBONE tunnels: requests to a pod are sent inside a CONNECT tunnel re-originated
// to it (hbone::Pool), as HTTP/1.1 (one request at a time per tunnel; idle tunnels are kept per
// endpoint for keep-alive) or as h2c (many streams multiplexed on one tunnel).
//
// A tunnel's CONNECT carries `forwarded: for=<client>`, so kept-alive tunnels are pooled per
// (endpoint, protocol, client address): a tunnel never carries another client's requests.
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "waypoint/buffer/buffer.h"
#include "waypoint/event/loop.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/http/message.h"
#include "waypoint/proxy/http_names.h"
#include "waypoint/stats/stats.h"
#include "waypoint/upstream/resource_manager.h"

namespace wp::proxy {

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
  // Response body bytes: take them all (move them out of data); consume() them once passed on.
  virtual void on_upstream_body(buffer::Buffer& data) = 0;
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
  // DestinationRule connectionPool of the cluster: its circuit breakers (null: no cluster, a pod
  // addressed directly) and the limits of the request's config. At most `max_connections` tunnels
  // open to the cluster, HTTP/1.1 and h2c (0 = unlimited); a request that no tunnel takes at once
  // waits for one (HTTP/1.1) or for a stream on one (h2c), at most `max_pending` of them waiting
  // (0 = unlimited); a tunnel carries at most `max_requests_per_connection` requests (0 =
  // unlimited). `resources` is kept alive by the request's ClusterState.
  upstream::ResourceManager* resources = nullptr;
  uint32_t max_connections = 0;
  uint32_t max_pending = 0;
  uint32_t max_requests_per_connection = 0;
};

class Http1Upstream;
class H2cUpstream;

// Where requests get their upstream streams: UpstreamHttpPool on the data path, a fake in the
// router's unit tests.
class StreamPool {
 public:
  class PendingQueue;

  // A request waiting for a stream. The requester owns it: destroying it cancels the request (no
  // callback after that). Whoever will serve it lists it in a PendingQueue: a limited cluster's
  // waiting line, an HTTP/1.1 tunnel being opened for it, or an h2c tunnel being opened.
  class Pending {
   public:
    Pending(const UpstreamKey& key, UpstreamStreamCallbacks& scb, UpstreamPoolCallbacks& pcb)
        : key(key), scb(&scb), pcb(&pcb) {}
    ~Pending();
    Pending(const Pending&) = delete;
    Pending& operator=(const Pending&) = delete;

    UpstreamKey key;  // what it waits for (a cluster's waiting line dials a tunnel with it later)
    UpstreamStreamCallbacks* scb;
    UpstreamPoolCallbacks* pcb;

   private:
    friend class PendingQueue;
    PendingQueue* queue_ = nullptr;
    upstream::ResourceHold counted_;  // while listed: one of its cluster's pending requests
    Pending* prev_ = nullptr;
    Pending* next_ = nullptr;
  };

  // An intrusive FIFO of Pending requests; a request is in at most one. `on_cancel`, when set, is
  // told after a listed request was destroyed by its requester. Destroying the queue unlists the
  // requests left without calling them (their server is gone: fail them first).
  class PendingQueue {
   public:
    PendingQueue() = default;
    explicit PendingQueue(std::function<void()> on_cancel) : on_cancel_(std::move(on_cancel)) {}
    ~PendingQueue();
    PendingQueue(const PendingQueue&) = delete;
    PendingQueue& operator=(const PendingQueue&) = delete;

    void push_back(Pending& p);  // unlists p from the queue it was in, if any
    Pending* front() const { return head_; }
    Pending* pop_front();  // nullptr when empty
    bool empty() const { return head_ == nullptr; }
    size_t size() const { return size_; }

   private:
    friend class Pending;
    void unlink(Pending& p);
    Pending* head_ = nullptr;
    Pending* tail_ = nullptr;
    size_t size_ = 0;
    std::function<void()> on_cancel_;
  };

  virtual ~StreamPool() = default;
  // Either calls pool_cb.on_pool_ready (or on_pool_failure) synchronously and returns nullptr, or
  // returns a Pending whose callback comes later.
  virtual std::unique_ptr<Pending> new_stream(const UpstreamKey& key, UpstreamStreamCallbacks& stream_cb,
                                              UpstreamPoolCallbacks& pool_cb) = 0;
  // True when a request for `key` would exceed the cluster's connectionPool limits now (answer it
  // 503, flag UO): no idle tunnel, maxConnections reached and http1MaxPendingRequests waiting.
  virtual bool would_overflow(const UpstreamKey& key) const = 0;
};

class UpstreamHttpPool final : public StreamPool {
 public:
  UpstreamHttpPool(event::Loop& loop, hbone::TunnelOpener& tunnels, stats::Block& stats,
                   std::chrono::milliseconds idle_timeout);
  ~UpstreamHttpPool() override;

  // An idle HTTP/1.1 tunnel, or an h2c tunnel with a free stream, is ready synchronously.
  std::unique_ptr<Pending> new_stream(const UpstreamKey& key, UpstreamStreamCallbacks& stream_cb,
                                      UpstreamPoolCallbacks& pool_cb) override;
  bool would_overflow(const UpstreamKey& key) const override;
  void close_all();
  // After a config change: idle kept-alive tunnels close, busy ones close after their exchange,
  // h2c tunnels take no new streams and close when their streams are done. New requests open
  // tunnels under the new config (to endpoints it still has, over pooled connections).
  void retire_all();

 private:
  friend class Http1Upstream;
  friend class H2cUpstream;
  // The circuit breakers are the cluster's upstream::ResourceManager (key.resources): every
  // tunnel counts there from its creation to remove() (connecting, busy, idle or draining, as
  // Envoy counts max_connections), every listed Pending as a pending request. HTTP/1.1 requests
  // that find maxConnections reached wait in their cluster's line here; h2c ones on a tunnel.
  void count_connection(const UpstreamKey& key, upstream::ResourceHold& counted);
  void uncount_connection(upstream::ResourceHold& counted);
  bool at_connection_limit(const UpstreamKey& key) const;
  void serve_waiters(const std::string& cluster);
  void serve_soon(const std::string& cluster);  // serve_waiters after the current callbacks
  Http1Upstream* find_idle(const std::string& key);
  void dial_http1(Pending& p);  // a new tunnel for p: p waits on it
  struct Entry {
    std::list<Http1Upstream*> idle;  // kept-alive HTTP/1.1 tunnels, most recent at the back
    std::list<H2cUpstream*> h2c;     // h2c tunnels (ready or connecting)
  };
  static std::string key_of(const UpstreamKey& key);
  void release(Http1Upstream& conn);  // response done, keep-alive: park it
  void remove(Http1Upstream& conn);   // closed: forget and delete
  void remove(H2cUpstream& conn);

  event::Loop& loop_;
  hbone::TunnelOpener& tunnels_;
  stats::Block& stats_;
  std::chrono::milliseconds idle_timeout_;
  std::unordered_map<std::string, Entry> entries_;
  std::unordered_map<Http1Upstream*, std::unique_ptr<Http1Upstream>> http1_;
  std::unordered_map<H2cUpstream*, std::unique_ptr<H2cUpstream>> h2c_;
  std::unordered_map<std::string, PendingQueue> waiting_;  // HTTP/1.1 lines at maxConnections, by cluster
  std::vector<std::string> to_serve_;                      // clusters whose waiters serve_soon_ serves
  event::Deferred serve_soon_;
};

}  // namespace wp::proxy
