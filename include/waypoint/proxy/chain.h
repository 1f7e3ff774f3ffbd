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
#include "waypoint/proxy/context.h"
#include "waypoint/proxy/upstream.h"
#include "waypoint/router/router.h"
#include "waypoint/stats/stats.h"
#include "waypoint/upstream/cluster_state.h"

namespace wp::proxy {

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

class ActiveRequest final : public router::RouterCallbacks, public event::DeferredDeletable {
 public:
  using Done = std::function<void(ActiveRequest&)>;

  ActiveRequest(WorkerContext& worker, const TunnelInfo& tunnel, DownstreamStream& downstream, const char* protocol,
                Done done);
  ~ActiveRequest() override;

  // From the session, in order: head, body*, trailers?, end. reset at any time. `end_stream`: the
  // head is the whole request (no body follows; on_request_end may still be called, and is then
  // ignored).
  void on_request_head(RequestHead&& head, bool end_stream);
  void on_request_body(buffer::Buffer& data);  // takes all of data
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

  // router::RouterCallbacks
  void on_response_head(ResponseHead&& head, const char* flags) override;
  void on_response_body(buffer::Buffer& data) override;
  void on_response_trailers(HeaderMap&& trailers) override;
  void on_response_end() override;
  void on_local_reply(int status, std::string_view body, const char* flags) override;
  void on_response_abort(const char* flags) override;
  void consume_request(size_t bytes) override;
  size_t response_pending() const override;

 private:
  enum class State { Head, Delaying, Upstream, Responding, Done };

  void bind_config();
  void run_pipeline();  // proxy/pipeline.h's stages: a local answer, or the fault's delay, or the router
  void after_fault_delay();
  void prepare_upstream_head();
  void local_reply(int status, std::string_view body, const char* flags, const HeaderMap* extra = nullptr);
  void finish();

  WorkerContext& w_;
  const TunnelInfo& tunnel_;
  config::SnapshotPtr snapshot_;                // pinned: the worker's current one, or the tunnel's (bind_config)
  const config::RouteTable* routes_ = nullptr;  // in snapshot_: the tunnel's VIP:port, else nullptr
  const config::Pod* direct_pod_ = nullptr;     // in snapshot_: a pod-IP tunnel's pod
  const filters::PolicySet* authz_ = nullptr;   // in snapshot_
  DownstreamStream& down_;
  Done done_;
  State state_ = State::Head;
  std::chrono::steady_clock::time_point started_;
  accesslog::TunnelRecord record_;

  RequestHead head_;  // as received, then rewritten for the upstream and handed to the router
  std::string path_, query_;
  const config::Route* route_ = nullptr;
  bool expect_continue_ = false;
  bool expects_body_ = false;  // the head announced a body (chunked, or a non-zero Content-Length)
  bool request_complete_ = false;
  event::Timer delay_timer_;
  router::Router router_;  // the upstream half; holds the body until it starts

  bool response_started_ = false;
  bool response_complete_ = false;
  const char* flags_ = "-";
};

}  // namespace wp::proxy
