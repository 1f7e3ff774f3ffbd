#pragma once
// The HTTP chain (SPEC §4): requests parsed from a tunnel (HTTP/1.1 or h2c) run through the
// per-request pipeline — route match → fault → header rules → weighted cluster → endpoint (load
// balancer, outlier ejection, circuit breakers) → upstream exchange with retries and timeouts — and
// the response streams back. Every request ends with one access-log line.
//
// Sessions (Http1Session, H2cSession) own the downstream tunnel and turn its bytes into requests;
// each request is an ActiveRequest talking to its session through DownstreamStream.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "waypoint/accesslog/telemetry.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/event/loop.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/http/upstream.h"
#include "waypoint/http/upstream_error.h"
#include "waypoint/stats/stats.h"
#include "waypoint/upstream/cluster_state.h"

namespace wp::http {

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
  UpstreamHttpPool& upstream;
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

// The downstream half of one request, implemented by the session.
class DownstreamStream {
 public:
  virtual ~DownstreamStream() = default;
  virtual void send_head(ResponseHead& head, bool end_stream) = 0;
  virtual void send_body(buffer::Buffer& data, bool end_stream) = 0;  // takes all of data
  virtual void send_trailers(const HeaderMap& trailers) = 0;          // ends the response
  virtual void send_continue() = 0;                                   // 100 Continue (HTTP/1.1)
  // The response cannot complete (upstream reset after headers, timeout mid-body): HTTP/1.1
  // closes the tunnel, h2c resets the stream.
  virtual void abort() = 0;
  virtual void consume(size_t request_body_bytes) = 0;  // passed on: reopen the client's window
  virtual size_t send_pending() const = 0;              // response bytes queued, not yet sent
};

class ActiveRequest final : public UpstreamStreamCallbacks,
                            public UpstreamPoolCallbacks,
                            public event::DeferredDeletable {
 public:
  using Done = std::function<void(ActiveRequest&)>;
  // Request bodies kept for a retry up to this size; a longer body is streamed and not retried.
  static constexpr size_t kRetryBufferLimit = 64 * 1024;
  // Response bytes queued downstream beyond which upstream bytes are no longer acknowledged.
  static constexpr size_t kHighWatermark = 64 * 1024;

  ActiveRequest(WorkerContext& worker, const TunnelInfo& tunnel, DownstreamStream& downstream, const char* protocol,
                Done done);
  ~ActiveRequest() override;

  // From the session, in order: head, body*, trailers?, end. reset at any time. `end_stream`: the
  // head is the whole request (no body follows; on_request_end may still be called, and is then
  // ignored).
  void on_request_head(RequestHead&& head, bool end_stream);
  void on_request_body(const uint8_t* data, size_t len);
  void on_request_trailers(HeaderMap&& trailers);
  void on_request_end();
  void on_downstream_reset();
  // The request turned out malformed after its head (a bad chunk...): answered with the codec's
  // status when no response has started (the upstream attempt is abandoned), else aborted.
  void on_request_error(int status, std::string_view reason);
  void on_downstream_drained();

  bool request_complete() const { return request_complete_; }
  bool response_complete() const { return response_complete_; }
  // True when the session must close its connection after this response (HTTP/1.1: the request
  // was not read to its end, or the response said so).
  bool close_connection() const { return !request_complete_ && expects_body_; }

  // UpstreamStreamCallbacks
  void on_upstream_head(ResponseHead&& head) override;
  void on_upstream_body(const uint8_t* data, size_t len) override;
  void on_upstream_trailers(HeaderMap&& trailers) override;
  void on_upstream_end() override;
  void on_upstream_error(UpstreamError error) override;
  void on_upstream_drained() override;
  // UpstreamPoolCallbacks
  void on_pool_ready(UpstreamStream& stream) override;
  void on_pool_failure(hbone::UpstreamFailure failure) override;

 private:
  void run_pipeline();  // http/pipeline.h's stages: a local answer, or the fault's delay, or the upstream
  enum class State { Head, Delaying, Upstream, Responding, Done };
  // One upstream try's place in upstream_rq_active, from start_attempt until the try ends. Its
  // destructor is the only place the gauge comes down, and the request's end (finish, or its own
  // destruction) ends any try still in flight, so no exit can leave the gauge up.
  class Attempt {
   public:
    explicit Attempt(stats::Block& stats) : stats_(stats) {
      stats_.add(stats::Id::upstream_rq_total);
      stats_.add(stats::Id::upstream_rq_active);
    }
    ~Attempt() { stats_.sub(stats::Id::upstream_rq_active); }
    Attempt(const Attempt&) = delete;
    Attempt& operator=(const Attempt&) = delete;

   private:
    stats::Block& stats_;
  };
  // What outlier detection hears of an attempt's end.
  enum class Report { Success, Failure, None };

  void after_fault_delay();
  void prepare_upstream_head();
  void send_mirrors();
  void start_attempt();
  void end_attempt(Report report);
  void abandon_attempt(Report report);
  bool detach_upstream();
  void attempt_failed(AttemptFailure failure);
  // A failed attempt (`failure`) or a retriable response (`status`): retry, else answer or pass on.
  void retry_or_reply(router::Outcome::Kind kind, uint16_t status, const AttemptFailureInfo* failure);
  void schedule_retry();
  void local_reply(int status, std::string_view body, const char* flags, const HeaderMap* extra = nullptr);
  void on_route_timeout();
  void on_per_try_timeout();
  void consume_downstream();
  void consume_upstream();
  void finish();
  upstream::ClusterState* cluster_state();

  WorkerContext& w_;
  const TunnelInfo& tunnel_;
  void bind_config();
  config::SnapshotPtr snapshot_;                // pinned: the worker's current one, or the tunnel's (bind_config)
  const config::RouteTable* routes_ = nullptr;  // in snapshot_: the tunnel's VIP:port, else nullptr
  const config::Pod* direct_pod_ = nullptr;     // in snapshot_: a pod-IP tunnel's pod
  const filters::PolicySet* authz_ = nullptr;   // in snapshot_
  DownstreamStream& down_;
  Done done_;
  State state_ = State::Head;
  std::chrono::steady_clock::time_point started_;
  accesslog::TunnelRecord record_;

  RequestHead head_;  // as received, then rewritten for the upstream
  std::string path_, query_;
  const config::Route* route_ = nullptr;
  const config::RoutedCluster* cluster_ = nullptr;
  upstream::ClusterState* cluster_state_ = nullptr;  // cluster_'s, in snapshot_'s generation
  std::vector<size_t> tried_;
  size_t host_ = 0;
  bool host_counted_ = false;  // try_begin_request succeeded for host_
  bool in_retry_ = false;      // try_begin_retry succeeded
  uint32_t attempts_ = 0;
  bool stale_retry_used_ = false;
  bool retries_exhausted_ = false;
  bool mirrored_ = false;

  // Request body.
  bool expect_continue_ = false;
  bool expects_body_ = false;  // the head announced a body (chunked, or a non-zero Content-Length)
  bool request_complete_ = false;
  bool replayable_ = true;
  std::optional<HeaderMap> request_trailers_;
  buffer::Buffer replay_;   // every body byte so far, while replayable
  buffer::Buffer pending_;  // body bytes not yet sent (not replayable and no stream yet)
  size_t down_unconsumed_ = 0;

  // Upstream.
  std::unique_ptr<UpstreamHttpPool::Pending> pending_stream_;
  UpstreamStream* up_ = nullptr;
  std::optional<Attempt> attempt_;  // the try in flight, waiting for its stream or on it
  bool awaiting_pool_ = false;
  event::Timer per_try_timer_;
  event::Timer route_timer_;
  event::Timer retry_timer_;
  event::Timer delay_timer_;

  // Response.
  bool response_started_ = false;
  bool response_complete_ = false;
  size_t up_unconsumed_ = 0;
  const char* flags_ = "-";
};

}  // namespace wp::http
