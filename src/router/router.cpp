// The router and its attempts (router/router.h).
//
// Rules the code below keeps:
//  - The attempt in flight is attempt_. It is settled (everything it holds given back) and handed
//    to defer_delete in one place, end_attempt(); its callbacks may be on the stack then.
//  - A callback to the request (cb_) may end the request, which cancels the router: after one, a
//    method returns at once, or checks state_ first.
#include "waypoint/router/router.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>

#include "waypoint/router/policy.h"

namespace wp::router {

using Kind = Outcome::Kind;

// ---- UpstreamAttempt ------------------------------------------------------------------------------

UpstreamAttempt::UpstreamAttempt(Router& router, upstream::RequestHold host, upstream::RetryHold retry)
    : router_(router),
      host_(std::move(host)),
      retry_(std::move(retry)),
      per_try_timer_(router.loop(), [this] { router_.on_attempt_timeout(*this); }) {
  router_.stats().add(stats::Id::upstream_rq_total);
  router_.stats().add(stats::Id::upstream_rq_active);
}

UpstreamAttempt::~UpstreamAttempt() {
  settle(Report::None);
}

void UpstreamAttempt::start(const proxy::UpstreamKey& key, std::optional<config::Millis> per_try_timeout) {
  if (per_try_timeout && per_try_timeout->count() > 0) {
    per_try_timer_.start(*per_try_timeout);
  }
  waiting_ = true;
  auto pending = router_.pool().new_stream(key, *this, *this);
  if (waiting_) {
    pending_ = std::move(pending);
  }
}

void UpstreamAttempt::report(bool failure) {
  if (host_) {
    host_.state()->report(host_.host(), failure, router_.loop().now());
  }
}

void UpstreamAttempt::settle(Report report) {
  if (settled_) {
    return;
  }
  settled_ = true;
  per_try_timer_.stop();
  waiting_ = false;
  pending_.reset();
  if (proxy::UpstreamStream* s = std::exchange(stream_, nullptr)) {
    s->abandon();
  }
  unconsumed = 0;
  if (report != Report::None) {
    this->report(report == Report::Failure);
  }
  host_.reset();
  retry_.reset();
  router_.stats().sub(stats::Id::upstream_rq_active);
}

void UpstreamAttempt::on_pool_ready(proxy::UpstreamStream& stream) {
  waiting_ = false;
  pending_.reset();
  stream_ = &stream;
  router_.on_attempt_ready(*this);
}

void UpstreamAttempt::on_pool_failure(hbone::UpstreamFailure) {
  waiting_ = false;
  pending_.reset();
  router_.attempt_failed(proxy::AttemptFailure::ConnectFailure);
}

void UpstreamAttempt::on_upstream_head(http::ResponseHead&& head) {
  router_.on_attempt_head(*this, std::move(head));
}

void UpstreamAttempt::on_upstream_body(buffer::Buffer& data) {
  router_.on_attempt_body(*this, data);
}

void UpstreamAttempt::on_upstream_trailers(http::HeaderMap&& trailers) {
  router_.on_attempt_trailers(*this, std::move(trailers));
}

void UpstreamAttempt::on_upstream_end() {
  stream_ = nullptr;  // released by the pool: not abandoned
  unconsumed = 0;     // it gave its window back as it was released
  router_.on_attempt_end(*this);
}

void UpstreamAttempt::on_upstream_error(proxy::UpstreamError error) {
  proxy::UpstreamStream* s = std::exchange(stream_, nullptr);
  unconsumed = 0;
  router_.on_attempt_error(*this, error, s != nullptr && s->reused());
}

void UpstreamAttempt::on_upstream_drained() {
  router_.consume_downstream();
}

// ---- Router -------------------------------------------------------------------------------------

Router::Router(proxy::WorkerContext& w, const proxy::TunnelInfo& tunnel, accesslog::TunnelRecord& record,
               RouterCallbacks& cb)
    : w_(w),
      tunnel_(tunnel),
      record_(record),
      cb_(cb),
      route_timer_(w.loop, [this] { on_route_timeout(); }),
      retry_timer_(w.loop, [this] { start_attempt(); }) {}

Router::~Router() {
  state_ = State::Done;
  attempt_.reset();  // settles it
}

void Router::on_request_body(buffer::Buffer& data) {
  const size_t len = data.length();
  body_bytes_ += len;
  down_unconsumed_ += len;
  if (state_ == State::Done || response_complete_) {
    data.clear();
    consume_downstream();
    return;
  }
  proxy::UpstreamStream* up = attempt_ != nullptr ? attempt_->stream() : nullptr;
  if (replayable_) {
    if (replay_.length() + len > kRetryBufferLimit) {
      replayable_ = false;
      if (up == nullptr) {
        pending_.move_from(replay_);  // nothing was sent yet: these still have to go
      }
      replay_.clear();
    } else {
      replay_.append_copy(data);  // the one copy a retry needs
    }
  }
  if (up != nullptr) {
    up->send_body(data, false);
    consume_downstream();
  } else if (!replayable_) {
    pending_.move_from(data);
  } else {
    data.clear();  // kept in replay_ until a stream is ready
  }
}

void Router::on_request_trailers(http::HeaderMap&& trailers) {
  request_trailers_ = std::move(trailers);
}

void Router::on_request_end() {
  if (request_complete_) {
    return;
  }
  request_complete_ = true;
  if (state_ == State::Idle || state_ == State::Done || response_complete_) {
    return;  // Idle: start() sees request_complete_
  }
  if (state_ == State::Upstream && route_->timeout && route_->timeout->count() > 0 && !route_timer_.armed()) {
    route_timer_.start(*route_->timeout);
  }
  if (proxy::UpstreamStream* up = attempt_ != nullptr ? attempt_->stream() : nullptr) {
    if (request_trailers_) {
      up->send_trailers(*request_trailers_);
    } else {
      buffer::Buffer empty;
      up->send_body(empty, true);
    }
  }
  send_mirrors();
}

void Router::start(const config::SnapshotPtr& snapshot, const config::Route& route, http::RequestHead&& head,
                   const config::Pod* direct_pod) {
  snapshot_ = snapshot;
  route_ = &route;
  head_ = std::move(head);
  direct_pod_ = direct_pod;
  state_ = State::Upstream;
  if (direct_pod_ == nullptr) {
    cluster_ = router::pick(route, w_.random()).cluster;
    // The state of the pinned snapshot's cluster: a config change meanwhile gives new requests
    // new states, while this one keeps counting against the hosts (indices) it picked from.
    cluster_state_ = &w_.clusters.get(snapshot_, *cluster_);
    record_.cluster = cluster_->name;
    record_.destination_service = cluster_->service;
  } else {
    record_.cluster = "encap";
  }
  if (route.timeout && route.timeout->count() > 0 && request_complete_) {
    route_timer_.start(*route.timeout);
  }
  start_attempt();
  if (request_complete_) {
    send_mirrors();
  }
}

void Router::on_downstream_drained() {
  consume_upstream();
}

void Router::cancel(Report report) {
  abandon_attempt(report);
  done();
}

// No more tries: the response is complete or cut short, or the request ended.
void Router::done() {
  state_ = State::Done;
  retry_timer_.stop();
  route_timer_.stop();
  next_retry_.reset();
}

// ---- flow control --------------------------------------------------------------------------------

void Router::consume_downstream() {
  if (down_unconsumed_ == 0 || state_ == State::Done) {
    return;  // Done: the request takes the rest (take_unconsumed)
  }
  proxy::UpstreamStream* up = attempt_ != nullptr ? attempt_->stream() : nullptr;
  if (up != nullptr && up->send_pending() > kHighWatermark && !response_complete_) {
    return;  // on_upstream_drained will come
  }
  size_t n = std::exchange(down_unconsumed_, 0);
  cb_.consume_request(n);
}

void Router::consume_upstream() {
  if (attempt_ == nullptr || attempt_->unconsumed == 0 || attempt_->stream() == nullptr) {
    return;
  }
  if (cb_.response_pending() > kHighWatermark) {
    return;
  }
  attempt_->stream()->consume(std::exchange(attempt_->unconsumed, 0));
}

// ---- attempts -------------------------------------------------------------------------------------

void Router::start_attempt() {
  if (state_ == State::Done) {
    return;
  }
  state_ = State::Upstream;
  config::Endpoint ep;
  upstream::RequestHold hold;
  if (cluster_ != nullptr) {
    std::optional<std::string_view> hash_key;
    if (!cluster_->policy.hash_header.empty()) {
      hash_key = head_.headers.get(cluster_->policy.hash_header);
    }
    auto picked = cluster_state_->pick(loop().now(), tried_, hash_key);
    if (!picked) {
      stats().add(stats::Id::rq_no_healthy_upstream);
      cb_.on_local_reply(503, "no healthy upstream", "UH");
      return;
    }
    hold = cluster_state_->hold_request(*picked);
    if (!hold) {
      cb_.on_local_reply(503, "upstream connect error or disconnect/reset before headers", "UO");
      return;
    }
    tried_.push_back(*picked);
    ep = cluster_->endpoints[*picked];
  } else {
    ep.pod = direct_pod_;
    ep.address = tunnel_.destination;
  }
  proxy::UpstreamKey key = proxy::upstream_key(tunnel_, ep, snapshot_->bootstrap.upstream.hbone_port);
  if (cluster_ != nullptr) {
    key.resources = &cluster_state_->resources();
    key.max_connections = cluster_->policy.max_connections;
    key.max_pending = cluster_->policy.http1_max_pending_requests;
    key.max_requests_per_connection = cluster_->policy.max_requests_per_connection;
    if (pool().would_overflow(key)) {
      stats().add(stats::Id::upstream_rq_pending_overflow);
      hold.reset();
      cb_.on_local_reply(503, "upstream connect error or disconnect/reset before headers", "UO");
      return;
    }
  }
  ++attempts_;
  record_.attempts = attempts_;
  record_.upstream_host = ep.address.to_string();
  record_.destination_pod = ep.pod;
  attempt_ = std::make_unique<UpstreamAttempt>(*this, std::move(hold), std::move(next_retry_));
  attempt_->start(key, route_->retry.per_try_timeout);
}

// The one place an attempt ends: settled now, freed after the current callbacks (its own may be
// on the stack).
void Router::end_attempt(Report report) {
  if (attempt_ == nullptr) {
    return;
  }
  attempt_->settle(report);
  loop().defer_delete(std::move(attempt_));
}

// The request ends the attempt on its own side: only a try that has its stream reached the host,
// so only it reports `report`.
void Router::abandon_attempt(Report report) {
  if (attempt_ != nullptr && attempt_->stream() == nullptr) {
    report = Report::None;
  }
  end_attempt(report);
}

void Router::on_attempt_ready(UpstreamAttempt& a) {
  proxy::UpstreamStream* up = a.stream();
  bool body_now = !replay_.empty() || !pending_.empty();
  bool end = request_complete_ && !body_now && !request_trailers_;
  // This attempt's framing is set on head_ for the send and put back after (a retry starts from
  // the same head), instead of copying the whole head per attempt.
  const std::optional<uint64_t> content_length = head_.content_length;
  const bool chunked = head_.chunked;
  if (request_complete_ && !head_.content_length) {
    // The whole body is known now: send it with a length instead of chunks when we can.
    if (replayable_ && !request_trailers_) {
      head_.content_length = replay_.length();
      head_.chunked = false;
      if (replay_.empty()) {
        head_.content_length.reset();
      }
    }
  }
  up->send_head(head_, end);
  head_.content_length = content_length;
  head_.chunked = chunked;
  if (a.stream() == nullptr) {
    return;  // failed synchronously (and handled)
  }
  if (replayable_ && !replay_.empty()) {
    buffer::Buffer copy;
    copy.append_copy(replay_);
    a.stream()->send_body(copy, request_complete_ && !request_trailers_);
  } else if (!pending_.empty()) {
    a.stream()->send_body(pending_, request_complete_ && !request_trailers_);
  }
  if (a.stream() != nullptr && request_complete_ && request_trailers_) {
    a.stream()->send_trailers(*request_trailers_);
  }
  if (a.stream() != nullptr) {
    consume_downstream();
  }
}

void Router::attempt_failed(proxy::AttemptFailure failure) {
  const proxy::AttemptFailureInfo& info = proxy::describe(failure);
  if (info.counter) {
    stats().add(*info.counter);
  }
  end_attempt(Report::Failure);
  if (response_started_) {
    // Too late to answer anything else: the client sees the response cut short.
    done();
    response_complete_ = true;
    cb_.on_response_abort(info.flag_mid_response);
    return;
  }
  retry_or_reply(info.retry_kind, 0, &info);
}

void Router::retry_or_reply(Kind kind, uint16_t status, const proxy::AttemptFailureInfo* failure) {
  Outcome outcome;
  outcome.kind = kind;
  outcome.status = status;
  RetryDecision d = should_retry(route_->retry, static_cast<int>(attempts_), outcome);
  const bool replay = replay_ok();
  if (d.retry && !replay) {
    stats().add(stats::Id::upstream_rq_retry_body_too_large);
  }
  if (d.retry && replay && cluster_state_ != nullptr) {
    next_retry_ = cluster_state_->hold_retry();
    if (!next_retry_) {
      d.retry = false;  // maxRetries reached: no retry (Envoy counts upstream_rq_retry_overflow)
    }
  }
  if (d.retry && replay) {
    stats().add(stats::Id::upstream_rq_retry);
    schedule_retry();
    return;
  }
  if (d.reason == RetryDecision::Reason::AttemptsExhausted) {
    retries_exhausted_ = true;
    stats().add(stats::Id::upstream_rq_retry_limit_exceeded);
  }
  if (status != 0 || failure == nullptr) {
    return;  // a response: the caller passes it on
  }
  cb_.on_local_reply(failure->status, failure->body,
                     retries_exhausted_ ? failure->flag_retries_exhausted : failure->flag);
}

void Router::schedule_retry() {
  state_ = State::Upstream;
  // Envoy's back-off: a random wait in [0, (2^n - 1) × 25 ms], at most 250 ms.
  uint32_t n = std::min<uint32_t>(attempts_, 4);
  uint32_t ceiling = std::min<uint32_t>(((1u << n) - 1) * 25, 250);
  uint32_t wait = ceiling == 0 ? 0 : w_.random() % (ceiling + 1);
  retry_timer_.start(std::chrono::milliseconds(wait));
}

void Router::on_attempt_head(UpstreamAttempt& a, http::ResponseHead&& head) {
  if (state_ == State::Done) {
    return;
  }
  Outcome outcome;
  outcome.kind = Kind::Response;
  outcome.status = static_cast<uint16_t>(head.status);
  if (auto g = head.headers.get("grpc-status")) {
    outcome.grpc_status = std::atoi(std::string(*g).c_str());
  }
  const bool failure = head.status >= 500;
  const char* flags = nullptr;
  if (retriable(route_->retry, outcome) && !response_started_) {
    RetryDecision d = should_retry(route_->retry, static_cast<int>(attempts_), outcome);
    if (d.retry && replay_ok() && request_complete_) {
      end_attempt(failure ? Report::Failure : Report::Success);
      retry_or_reply(Kind::Response, outcome.status, nullptr);
      if (state_ == State::Done || retry_timer_.armed()) {
        return;
      }
      // Retry refused at the last moment (circuit breaker): nothing left to pass on.
      cb_.on_local_reply(head.status, "", "-");
      return;
    }
    if (d.reason == RetryDecision::Reason::AttemptsExhausted) {
      retries_exhausted_ = true;
      stats().add(stats::Id::upstream_rq_retry_limit_exceeded);
      flags = "URX";
    }
  }
  a.report(failure);
  state_ = State::Responding;
  response_started_ = true;
  cb_.on_response_head(std::move(head), flags);
}

void Router::on_attempt_body(UpstreamAttempt& a, buffer::Buffer& data) {
  const size_t len = data.length();
  if (!response_started_ || state_ == State::Done) {
    data.clear();
    if (a.stream() != nullptr) {
      a.stream()->consume(len);
    }
    return;
  }
  a.unconsumed += len;
  cb_.on_response_body(data);
  if (state_ != State::Done) {
    consume_upstream();
  }
}

void Router::on_attempt_trailers(UpstreamAttempt&, http::HeaderMap&& trailers) {
  if (response_started_ && state_ != State::Done) {
    response_complete_ = true;
    cb_.on_response_trailers(std::move(trailers));
  }
}

void Router::on_attempt_end(UpstreamAttempt&) {
  // The outcome (a 5xx or not) was reported at head time; the attempt itself ended normally.
  end_attempt(Report::None);
  if (!response_started_ || state_ == State::Done) {
    return;
  }
  done();
  response_complete_ = true;
  cb_.on_response_end();
}

void Router::on_attempt_error(UpstreamAttempt&, proxy::UpstreamError error, bool reused) {
  if (state_ == State::Done) {
    end_attempt(Report::None);
    return;
  }
  // A kept-alive HTTP/1.1 tunnel the pod closed while idle: the request never got there. Retry
  // once on a fresh tunnel without counting an attempt (Envoy does the same for a reused
  // connection that fails before any response byte).
  if (error == proxy::UpstreamError::Reset && reused && !response_started_ && !stale_retry_used_ &&
      (replayable_ || body_bytes_ == 0)) {
    stale_retry_used_ = true;
    end_attempt(Report::Success);
    --attempts_;
    start_attempt();
    return;
  }
  attempt_failed(proxy::attempt_failure(error));
}

void Router::on_attempt_timeout(UpstreamAttempt&) {
  attempt_failed(proxy::AttemptFailure::PerTryTimeout);  // also when it waits for its tunnel
}

void Router::on_route_timeout() {
  if (state_ == State::Done) {
    return;
  }
  stats().add(stats::Id::rq_timeout);
  retry_timer_.stop();
  abandon_attempt(Report::Failure);  // also when it still waits for its upstream tunnel
  done();
  if (response_started_) {
    response_complete_ = true;
    cb_.on_response_abort("UT");
    return;
  }
  cb_.on_local_reply(504, "upstream request timeout", "UT");
}

// ---- mirrors --------------------------------------------------------------------------------------

void Router::send_mirrors() {
  if (mirrored_ || route_ == nullptr || route_->mirrors.empty() || state_ == State::Done) {
    return;
  }
  mirrored_ = true;
  if (!replayable_) {
    return;  // the body was streamed on: there is no copy to send (counted nowhere: rare, logged)
  }
  for (const config::Mirror& mirror : route_->mirrors) {
    if (mirror.cluster == nullptr || !chance(mirror.per_million, w_.random())) {
      continue;
    }
    auto host = w_.clusters.get(snapshot_, *mirror.cluster).pick(loop().now(), {}, std::nullopt);
    if (!host) {
      continue;
    }
    http::RequestHead head = head_;
    head.authority += "-shadow";
    if (request_trailers_ || !replay_.empty()) {
      head.content_length = replay_.length();
      head.chunked = false;
    } else {
      head.content_length.reset();
      head.chunked = false;
    }
    buffer::Buffer body;
    body.append_copy(replay_);
    w_.mirrors.start(
        w_, proxy::upstream_key(tunnel_, mirror.cluster->endpoints[*host], snapshot_->bootstrap.upstream.hbone_port),
        std::move(head), std::move(body));
  }
}

}  // namespace wp::router
