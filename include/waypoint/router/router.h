#pragma once
// The router: one request's upstream half once the pipeline has let it through (proxy/pipeline.h)
// — the weighted cluster, the endpoint (load balancer, outlier ejection, circuit breakers), the
// tries with retries and Envoy's back-off, the per-try and route timeouts, the mirrors — as
// Envoy's router filter with its UpstreamRequests.
//
// Each try is an UpstreamAttempt. It owns everything the try holds — the host's place in the
// cluster's circuit breaker and least-request count (upstream::RequestHold), the retry budget when
// it is a retry (upstream::RetryHold), its place in upstream_rq_active, its per-try timer, its wait
// for a stream or the stream — and gives all of it back in settle(), which its destructor calls.
// The router owns its one attempt in flight (no hedging), so no exit of a request can leak one.
// The request it serves (proxy::ActiveRequest) drives it through this API and hears of the
// response through RouterCallbacks.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "waypoint/accesslog/telemetry.h"
#include "waypoint/buffer/buffer.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/event/loop.h"
#include "waypoint/http/message.h"
#include "waypoint/proxy/context.h"
#include "waypoint/proxy/upstream.h"
#include "waypoint/proxy/upstream_error.h"
#include "waypoint/router/retry.h"
#include "waypoint/upstream/cluster_state.h"

namespace wp::router {

// What the router tells the request it serves. Any of these may end the request, which then
// cancels the router (Router::cancel) before returning.
class RouterCallbacks {
 public:
  virtual ~RouterCallbacks() = default;
  // The upstream response begins, headers as the pod sent them. `flags` is "URX" when the
  // response is a retriable status that used up the retries, else nullptr.
  virtual void on_response_head(http::ResponseHead&& head, const char* flags) = 0;
  virtual void on_response_body(buffer::Buffer& data) = 0;  // takes all of data
  virtual void on_response_trailers(http::HeaderMap&& trailers) = 0;
  virtual void on_response_end() = 0;  // after the body or the trailers
  // No response will come and none has started: answer locally (flag, status and body as Envoy).
  virtual void on_local_reply(int status, std::string_view body, const char* flags) = 0;
  // The response started and cannot complete (a reset mid-body, the route timeout): cut it short.
  virtual void on_response_abort(const char* flags) = 0;
  virtual void consume_request(size_t bytes) = 0;  // request body bytes passed on: reopen the window
  virtual size_t response_pending() const = 0;     // response bytes queued downstream, not yet sent
};

// What outlier detection hears of an attempt's end.
enum class Report { Success, Failure, None };

class Router;

// One upstream try, from its host pick to settle(). Its callbacks come from the pool and the
// stream, and go to the router; none comes after settle().
class UpstreamAttempt final : public proxy::UpstreamStreamCallbacks,
                              public proxy::UpstreamPoolCallbacks,
                              public event::DeferredDeletable {
 public:
  // `host` is empty on a pod chain (no cluster state).
  UpstreamAttempt(Router& router, upstream::RequestHold host, upstream::RetryHold retry);
  ~UpstreamAttempt() override;
  UpstreamAttempt(const UpstreamAttempt&) = delete;
  UpstreamAttempt& operator=(const UpstreamAttempt&) = delete;

  // Starts the per-try timer (when set) and asks the pool for a stream: on_pool_ready or
  // on_pool_failure may come before this returns.
  void start(const proxy::UpstreamKey& key, std::optional<config::Millis> per_try_timeout);
  // Outlier detection: the try's result on its host (nothing on a pod chain).
  void report(bool failure);
  // Gives back all the try holds: abandons its stream or its wait for one, stops its timer, leaves
  // upstream_rq_active, the host's active requests and the retry budget; `report` (unless None)
  // goes to outlier detection first. Idempotent: the destructor calls it with Report::None.
  void settle(Report report);

  proxy::UpstreamStream* stream() const { return stream_; }
  // Response bytes passed on downstream and not yet acknowledged upstream.
  size_t unconsumed = 0;

  // UpstreamPoolCallbacks
  void on_pool_ready(proxy::UpstreamStream& stream) override;
  void on_pool_failure(hbone::UpstreamFailure failure) override;
  // UpstreamStreamCallbacks
  void on_upstream_head(http::ResponseHead&& head) override;
  void on_upstream_body(buffer::Buffer& data) override;
  void on_upstream_trailers(http::HeaderMap&& trailers) override;
  void on_upstream_end() override;
  void on_upstream_error(proxy::UpstreamError error) override;
  void on_upstream_drained() override;

 private:
  Router& router_;
  upstream::RequestHold host_;
  upstream::RetryHold retry_;
  event::Timer per_try_timer_;
  std::unique_ptr<proxy::StreamPool::Pending> pending_;
  proxy::UpstreamStream* stream_ = nullptr;
  bool waiting_ = false;  // asked the pool, no answer yet
  bool settled_ = false;
};

class Router {
 public:
  // Request bodies kept for a retry up to this size; a longer body is streamed and not retried.
  static constexpr size_t kRetryBufferLimit = 64 * 1024;
  // Bytes queued on one side beyond which the other side's bytes are no longer acknowledged.
  static constexpr size_t kHighWatermark = 64 * 1024;

  // `record` is the request's access-log record: the router fills in the cluster, the attempts,
  // the upstream host and the destination pod.
  Router(proxy::WorkerContext& w, const proxy::TunnelInfo& tunnel, accesslog::TunnelRecord& record,
         RouterCallbacks& cb);
  ~Router();  // cancels: no callback
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // The request body, from the head on: kept while the router has not started (the pipeline's
  // fault delay) or has no stream yet, and for a retry while it fits kRetryBufferLimit.
  void on_request_body(buffer::Buffer& data);  // takes all of data
  void on_request_trailers(http::HeaderMap&& trailers);
  void on_request_end();  // also when the head was the whole request

  // Sends the request upstream. `head` is the request as the pod gets it (routing rewrites and
  // header rules applied, framing left to the codecs). On a service chain the cluster is picked
  // from `route`'s weighted clusters (the caller answered a route with none); on a pod chain
  // (`direct_pod`) the try goes to the tunnel's destination. `snapshot` holds route and pod.
  void start(const config::SnapshotPtr& snapshot, const config::Route& route, http::RequestHead&& head,
             const config::Pod* direct_pod);
  void on_downstream_drained();  // response bytes left the downstream queue
  // The request ended on its side (a local answer, the client gone, a malformed body, the
  // response passed on): ends the attempt (`report` for a try that has its stream), the timers
  // and the retry budget held. No callback after this.
  void cancel(Report report);
  // Request body bytes received and not yet acknowledged downstream (the caller acknowledges them
  // once the router is cancelled).
  size_t take_unconsumed() {
    size_t n = down_unconsumed_;
    down_unconsumed_ = 0;
    return n;
  }
  uint32_t attempts() const { return attempts_; }

 private:
  friend class UpstreamAttempt;
  enum class State { Idle, Upstream, Responding, Done };

  proxy::StreamPool& pool() { return w_.upstream; }
  stats::Block& stats() { return w_.stats; }
  event::Loop& loop() { return w_.loop; }

  void start_attempt();
  void end_attempt(Report report);
  void abandon_attempt(Report report);
  void attempt_failed(proxy::AttemptFailure failure);
  // A failed attempt (`failure`) or a retriable response (`status`): retry, else answer or pass on.
  void retry_or_reply(Outcome::Kind kind, uint16_t status, const proxy::AttemptFailureInfo* failure);
  void schedule_retry();
  void send_mirrors();
  void consume_downstream();
  void consume_upstream();
  void on_route_timeout();
  void done();
  bool replay_ok() const { return replayable_ || (body_bytes_ == 0 && request_complete_); }

  // From the attempt in flight (`a` is attempt_).
  void on_attempt_ready(UpstreamAttempt& a);
  void on_attempt_head(UpstreamAttempt& a, http::ResponseHead&& head);
  void on_attempt_body(UpstreamAttempt& a, buffer::Buffer& data);
  void on_attempt_trailers(UpstreamAttempt& a, http::HeaderMap&& trailers);
  void on_attempt_end(UpstreamAttempt& a);
  void on_attempt_error(UpstreamAttempt& a, proxy::UpstreamError error, bool reused);
  void on_attempt_timeout(UpstreamAttempt& a);

  proxy::WorkerContext& w_;
  const proxy::TunnelInfo& tunnel_;
  accesslog::TunnelRecord& record_;
  RouterCallbacks& cb_;
  State state_ = State::Idle;

  config::SnapshotPtr snapshot_;
  const config::Route* route_ = nullptr;
  const config::RoutedCluster* cluster_ = nullptr;   // null on a pod chain
  upstream::ClusterState* cluster_state_ = nullptr;  // cluster_'s, in snapshot_'s generation
  const config::Pod* direct_pod_ = nullptr;
  http::RequestHead head_;
  std::vector<size_t> tried_;
  uint32_t attempts_ = 0;
  bool stale_retry_used_ = false;
  bool retries_exhausted_ = false;
  bool mirrored_ = false;

  // Request body.
  bool request_complete_ = false;
  bool replayable_ = true;
  uint64_t body_bytes_ = 0;
  std::optional<http::HeaderMap> request_trailers_;
  buffer::Buffer replay_;   // every body byte so far, while replayable
  buffer::Buffer pending_;  // body bytes not yet sent (not replayable and no stream yet)
  size_t down_unconsumed_ = 0;

  std::unique_ptr<UpstreamAttempt> attempt_;  // the try in flight, waiting for its stream or on it
  upstream::RetryHold next_retry_;            // the budget of the retry waiting for its back-off
  event::Timer route_timer_;
  event::Timer retry_timer_;

  // Response.
  bool response_started_ = false;
  bool response_complete_ = false;
};

}  // namespace wp::router
