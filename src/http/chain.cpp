#include "waypoint/http/chain.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "waypoint/http/pipeline.h"
#include "waypoint/router/policy.h"
#include "waypoint/router/retry.h"
#include "waypoint/router/route_match.h"

namespace wp::http {

namespace {

using Kind = router::Outcome::Kind;

class MapList final : public router::HeaderList {
 public:
  explicit MapList(HeaderMap& m) : m_(m) {}
  void remove(std::string_view name) override { m_.remove(name); }
  void set(std::string_view name, std::string_view value) override { m_.set(name, value); }
  void add(std::string_view name, std::string_view value) override { m_.add(name, value); }

 private:
  HeaderMap& m_;
};

// The pod chain's route: forward to the addressed pod, Istio's default retry policy.
const char* version_name(Version v) {
  return v == Version::Http10 ? "HTTP/1.0" : "HTTP/1.1";
}

std::string uuid4(WorkerContext& w) {
  uint8_t b[16];
  for (int i = 0; i < 16; i += 4) {
    uint32_t r = w.random();
    std::memcpy(b + i, &r, 4);
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  // 8-4-4-4-12 hex digits, written by hand: snprintf cost 2 % of a request's CPU (bench/).
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  size_t pos = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      ++pos;  // the dash already there
    }
    out[pos++] = kHex[b[i] >> 4];
    out[pos++] = kHex[b[i] & 0x0f];
  }
  return out;
}

}  // namespace

// Where an attempt to `ep` goes: the pod's HBONE port, its identity, and the CONNECT headers that
// carry the client's address and trace context.
UpstreamKey upstream_key(const TunnelInfo& tunnel, const config::Endpoint& ep, uint16_t hbone_port) {
  UpstreamKey key;
  key.hbone_address = net::SockAddr(ep.pod->ip, hbone_port);
  key.identity = ep.pod->spiffe_id();
  key.authority = ep.address;
  key.h2c = tunnel.upstream_h2c;
  key.client = tunnel.client;
  key.connect_headers = &tunnel.connect_headers;
  return key;
}

// A mirrored copy of a request: sent to a host of the mirror cluster with the authority suffixed
// "-shadow" (as Envoy does); the response is read and dropped. Mirrors owns it. Its key's client
// address and CONNECT headers are its own copies: it may outlive the tunnel it was copied from.
class MirrorRequest final : public UpstreamStreamCallbacks,
                            public UpstreamPoolCallbacks,
                            public event::DeferredDeletable {
 public:
  static constexpr std::chrono::seconds kMaxLife{60};

  MirrorRequest(Mirrors& owner, WorkerContext& w, const UpstreamKey& key, RequestHead head, buffer::Buffer body)
      : owner_(owner),
        w_(w),
        key_(key),
        client_(key.client),
        head_(std::move(head)),
        body_(std::move(body)),
        timer_(w.loop, [this] { done(); }) {
    if (key.connect_headers != nullptr) {
      connect_headers_ = *key.connect_headers;
    }
    key_.client = client_;
    key_.connect_headers = &connect_headers_;
    timer_.start(kMaxLife);
    w_.stats.add(stats::Id::upstream_rq_mirrored);
  }
  ~MirrorRequest() override {
    pending_.reset();
    if (up_ != nullptr) {
      up_->abandon();
    }
  }
  void start() { pending_ = w_.upstream.new_stream(key_, *this, *this); }

  void on_pool_ready(UpstreamStream& s) override {
    pending_.reset();
    up_ = &s;
    bool has_body = !body_.empty();
    s.send_head(head_, !has_body);
    if (has_body && up_ != nullptr) {
      up_->send_body(body_, true);
    }
  }
  void on_pool_failure(hbone::UpstreamFailure) override { done(); }
  void on_upstream_head(ResponseHead&&) override {}
  void on_upstream_body(const uint8_t*, size_t len) override {
    if (up_ != nullptr) {
      up_->consume(len);
    }
  }
  void on_upstream_trailers(HeaderMap&&) override {}
  void on_upstream_end() override {
    up_ = nullptr;
    done();
  }
  void on_upstream_error(UpstreamError) override {
    up_ = nullptr;
    done();
  }
  void on_upstream_drained() override {}

  void done() {
    if (finished_) {
      return;
    }
    finished_ = true;
    timer_.stop();
    pending_.reset();
    if (up_ != nullptr) {
      up_->abandon();
      up_ = nullptr;
    }
    owner_.finished(*this);
  }

 private:
  Mirrors& owner_;
  WorkerContext& w_;
  UpstreamKey key_;
  std::string client_;
  hbone::H2Stream::HeaderList connect_headers_;
  RequestHead head_;
  buffer::Buffer body_;
  event::Timer timer_;
  std::unique_ptr<UpstreamHttpPool::Pending> pending_;
  UpstreamStream* up_ = nullptr;
  bool finished_ = false;
};

Mirrors::Mirrors(event::Loop& loop) : loop_(loop) {}

Mirrors::~Mirrors() {
  abort_all();
}

void Mirrors::start(WorkerContext& w, const UpstreamKey& key, RequestHead head, buffer::Buffer body) {
  auto m = std::make_unique<MirrorRequest>(*this, w, key, std::move(head), std::move(body));
  MirrorRequest* raw = m.get();
  live_.emplace(raw, std::move(m));
  raw->start();
}

void Mirrors::abort_all() {
  while (!live_.empty()) {
    live_.begin()->second->done();  // done() → finished() takes it out of live_
  }
}

void Mirrors::finished(MirrorRequest& m) {
  auto it = live_.find(&m);
  if (it != live_.end()) {
    loop_.defer_delete(std::move(it->second));
    live_.erase(it);
  }
}

uint32_t WorkerContext::random() {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return static_cast<uint32_t>((x * 0x2545F4914F6CDD1Dull) >> 32);
}

ActiveRequest::ActiveRequest(WorkerContext& worker, const TunnelInfo& tunnel, DownstreamStream& downstream,
                             const char* protocol, Done done)
    : w_(worker),
      tunnel_(tunnel),
      down_(downstream),
      done_(std::move(done)),
      started_(std::chrono::steady_clock::now()),
      per_try_timer_(worker.loop, [this] { on_per_try_timeout(); }),
      route_timer_(worker.loop, [this] { on_route_timeout(); }),
      retry_timer_(worker.loop, [this] { start_attempt(); }),
      delay_timer_(worker.loop, [this] { after_fault_delay(); }) {
  bind_config();
  record_.start = std::chrono::system_clock::now();
  record_.protocol = protocol;
  record_.chain = tunnel.chain;
  record_.source_principal = tunnel.source_principal;
  record_.source_address = tunnel.client;
  record_.source_pod = tunnel.source_pod;
  record_.destination_service = routes_ != nullptr ? routes_->service : nullptr;
  record_.destination_pod = direct_pod_;
  w_.stats.add(stats::Id::downstream_rq_total);
  w_.stats.add(stats::Id::downstream_rq_active);
}

// The configuration a request runs on: the worker's current snapshot, so that a config change
// applies to the next request on a kept-alive tunnel too (as Envoy applies a route update to new
// requests on open connections); the tunnel's own snapshot when the current one no longer serves
// the tunnel's destination (the tunnel then ends on the config it began with).
void ActiveRequest::bind_config() {
  const config::SnapshotPtr& current = w_.snapshot != nullptr ? *w_.snapshot : tunnel_.snapshot;
  if (current != nullptr && current != tunnel_.snapshot) {
    const net::SockAddr& dst = tunnel_.destination;
    if (tunnel_.routes != nullptr) {
      const config::VipChain* vip = current->find_vip(dst);
      if (vip != nullptr && vip->routes != nullptr) {
        snapshot_ = current;
        routes_ = vip->routes;
        authz_ = &current->authz_for(vip);
        return;
      }
    } else if (tunnel_.direct_pod != nullptr) {
      const config::Pod* pod = current->find_pod(dst.ip());
      if (pod != nullptr) {
        snapshot_ = current;
        direct_pod_ = pod;
        authz_ = &current->authz_gateway;
        return;
      }
    }
  }
  snapshot_ = tunnel_.snapshot;
  routes_ = tunnel_.routes;
  direct_pod_ = tunnel_.direct_pod;
  authz_ = tunnel_.authz;
}

ActiveRequest::~ActiveRequest() {
  abandon_attempt(Report::None);
  if (state_ != State::Done) {
    w_.stats.sub(stats::Id::downstream_rq_active);
  }
}

upstream::ClusterState* ActiveRequest::cluster_state() {
  return cluster_state_;
}

// ---- request from downstream ---------------------------------------------------------------------

void ActiveRequest::on_request_head(RequestHead&& head, bool end_stream) {
  head_ = std::move(head);
  request_complete_ = end_stream;
  record_.protocol = record_.protocol != nullptr && std::string_view(record_.protocol) == "HTTP/2"
                         ? record_.protocol
                         : version_name(head_.version);
  record_.method = head_.method;
  std::string_view path, query;
  router::split_target(head_.target, path, query);
  path_ = std::string(path);
  query_ = std::string(query);
  record_.path = head_.target;
  record_.destination = head_.authority.empty() ? tunnel_.destination.to_string() : head_.authority;
  record_.request_header_bytes = head_.headers.byte_size();
  auto content_type = head_.headers.get("content-type");
  record_.grpc = content_type && content_type->starts_with("application/grpc");
  expect_continue_ = head_.expect_continue;
  expects_body_ = !end_stream;
  run_pipeline();
}

// The stages before the upstream (http/pipeline.h), then the fault's delay or the upstream.
void ActiveRequest::run_pipeline() {
  StageInput in;
  in.snapshot = snapshot_.get();
  in.authz = authz_;
  in.direct = routes_ == nullptr;
  in.routes = routes_;
  in.method = head_.method;
  in.path = path_;
  in.query = query_;
  in.authority = head_.authority;
  in.port = tunnel_.destination.port();
  in.headers = &head_.headers;
  in.principal = tunnel_.source_principal;
  in.source_ip = tunnel_.source_ip;
  in.destination = tunnel_.destination;
  in.random_delay = w_.random();
  in.random_abort = w_.random();
  StageResult r = run_stages(in);
  for (uint8_t i = 0; i < r.counter_count; ++i) {
    w_.stats.add(r.counters[i]);
  }
  route_ = r.route;
  if (route_ != nullptr) {
    record_.route = route_->name;
  }
  if (r.stop) {
    if (r.stage == Stage::Authz) {
      spdlog::debug(
          "request {} {} from {}: denied by {}", head_.method, head_.target, tunnel_.source_principal,
          r.verdict.decided_by != nullptr ? r.verdict.decided_by->name : std::string("no matching ALLOW policy"));
    }
    local_reply(r.status, r.body, r.flags, r.extra.empty() ? nullptr : &r.extra);
    return;
  }
  if (r.fault.delay && r.fault.delay_for.count() > 0) {
    flags_ = "DI";
    state_ = State::Delaying;
    delay_timer_.start(r.fault.delay_for);
    return;
  }
  after_fault_delay();
}

void ActiveRequest::after_fault_delay() {
  state_ = State::Upstream;
  prepare_upstream_head();
  if (routes_ != nullptr) {
    if (route_->clusters.empty()) {
      local_reply(503, "no healthy upstream", "UH");
      return;
    }
    cluster_ = router::pick(*route_, w_.random()).cluster;
    // The state of the pinned snapshot's cluster: a config change meanwhile gives new requests
    // new states, while this one keeps counting against the hosts (indices) it picked from.
    cluster_state_ = &w_.clusters.get(snapshot_, *cluster_);
    record_.cluster = cluster_->name;
    record_.destination_service = cluster_->service;
  } else {
    record_.cluster = "encap";
  }
  if (expect_continue_ && !request_complete_) {
    down_.send_continue();  // as Envoy does by default: the proxy answers 100-continue itself
  }
  if (route_->timeout && route_->timeout->count() > 0 && request_complete_) {
    route_timer_.start(*route_->timeout);
  }
  start_attempt();
  if (request_complete_) {
    send_mirrors();
  }
}

void ActiveRequest::send_mirrors() {
  if (mirrored_ || route_ == nullptr || route_->mirrors.empty() || state_ == State::Done) {
    return;
  }
  mirrored_ = true;
  if (!replayable_) {
    return;  // the body was streamed on: there is no copy to send (counted nowhere: rare, logged)
  }
  for (const config::Mirror& mirror : route_->mirrors) {
    if (mirror.cluster == nullptr || !router::chance(mirror.per_million, w_.random())) {
      continue;
    }
    auto host = w_.clusters.get(snapshot_, *mirror.cluster).pick(std::chrono::steady_clock::now(), {}, std::nullopt);
    if (!host) {
      continue;
    }
    RequestHead head = head_;
    head.authority += "-shadow";
    if (request_trailers_ || !replay_.empty()) {
      head.content_length = replay_.length();
      head.chunked = false;
    } else {
      head.content_length.reset();
      head.chunked = false;
    }
    buffer::Buffer body;
    replay_.for_each([&](const uint8_t* p, size_t n) { body.append(p, n); });
    w_.mirrors.start(w_,
                     upstream_key(tunnel_, mirror.cluster->endpoints[*host], snapshot_->bootstrap.upstream.hbone_port),
                     std::move(head), std::move(body));
  }
}

void ActiveRequest::prepare_upstream_head() {
  MapSource source(head_.headers);
  router::RequestView view{head_.method, path_, query_, head_.authority, tunnel_.destination.port(), &source};
  if (route_->rewrite.path_kind != config::PathRewrite::None) {
    head_.target = router::rewritten_path(*route_, view);
  }
  if (!route_->rewrite.authority.empty()) {
    head_.authority = route_->rewrite.authority;
  }
  MapList list(head_.headers);
  router::apply(route_->request_headers, list);
  // Framing and hop-by-hop fields are the codecs' business.
  head_.headers.remove("host");
  head_.headers.remove("expect");
  head_.headers.remove("content-length");
  head_.headers.remove("transfer-encoding");
  head_.keep_alive = true;
  head_.expect_continue = false;
  if (!head_.content_length && !request_complete_) {
    head_.chunked = true;
  }
  // x-forwarded-for: the client address the CONNECT's forwarded header named (or the peer).
  if (auto xff = head_.headers.get("x-forwarded-for")) {
    head_.headers.set("x-forwarded-for", std::string(*xff) + ", " + tunnel_.client);
  } else {
    head_.headers.add("x-forwarded-for", tunnel_.client);
  }
  if (!head_.headers.has("x-forwarded-proto")) {
    head_.headers.add("x-forwarded-proto", "http");
  }
  if (auto id = head_.headers.get("x-request-id"); id && !id->empty()) {
    record_.request_id = std::string(*id);
  } else {
    record_.request_id = uuid4(w_);
    head_.headers.set("x-request-id", record_.request_id);
  }
  if (!head_.headers.has("traceparent") && !tunnel_.traceparent.empty()) {
    head_.headers.add("traceparent", tunnel_.traceparent);
  }
}

void ActiveRequest::on_request_body(const uint8_t* data, size_t len) {
  record_.bytes_received += len;
  down_unconsumed_ += len;
  if (state_ == State::Done || response_complete_) {
    consume_downstream();
    return;
  }
  if (replayable_) {
    if (replay_.length() + len > kRetryBufferLimit) {
      replayable_ = false;
      if (up_ == nullptr) {
        pending_.move_from(replay_);  // nothing was sent yet: these still have to go
      }
      replay_.clear();
    } else {
      replay_.append(data, len);
    }
  }
  buffer::Buffer chunk;
  chunk.append(data, len);
  if (up_ != nullptr) {
    up_->send_body(chunk, false);
    consume_downstream();
  } else if (!replayable_) {
    pending_.move_from(chunk);
  }
}

void ActiveRequest::on_request_trailers(HeaderMap&& trailers) {
  request_trailers_ = std::move(trailers);
}

void ActiveRequest::on_request_end() {
  if (request_complete_) {
    return;  // the head said there was no body: already ended
  }
  request_complete_ = true;
  if (state_ == State::Done || response_complete_) {
    return;
  }
  if (state_ == State::Upstream && route_ != nullptr && route_->timeout && route_->timeout->count() > 0 &&
      !route_timer_.armed()) {
    route_timer_.start(*route_->timeout);
  }
  if (up_ != nullptr) {
    if (request_trailers_) {
      up_->send_trailers(*request_trailers_);
    } else {
      buffer::Buffer empty;
      up_->send_body(empty, true);
    }
  }
  if (state_ == State::Upstream || state_ == State::Responding) {
    send_mirrors();
  }
}

void ActiveRequest::on_downstream_reset() {
  if (state_ == State::Done) {
    return;
  }
  if (!response_complete_) {
    flags_ = "DC";
  }
  response_complete_ = true;  // nothing more can be sent
  request_complete_ = true;
  finish();
}

void ActiveRequest::on_request_error(int status, std::string_view reason) {
  if (state_ == State::Done) {
    return;
  }
  if (!response_started_) {
    local_reply(status, reason, "DPE");
    return;
  }
  flags_ = "DPE";
  response_complete_ = true;
  down_.abort();
  finish();
}

void ActiveRequest::on_downstream_drained() {
  consume_upstream();
}

void ActiveRequest::consume_downstream() {
  if (down_unconsumed_ == 0) {
    return;
  }
  if (up_ != nullptr && up_->send_pending() > kHighWatermark && !response_complete_) {
    return;  // on_upstream_drained will come
  }
  size_t n = down_unconsumed_;
  down_unconsumed_ = 0;
  down_.consume(n);
}

void ActiveRequest::consume_upstream() {
  if (up_unconsumed_ == 0 || up_ == nullptr) {
    return;
  }
  if (down_.send_pending() > kHighWatermark) {
    return;
  }
  size_t n = up_unconsumed_;
  up_unconsumed_ = 0;
  up_->consume(n);
}

// ---- upstream attempts -------------------------------------------------------------------------------

void ActiveRequest::start_attempt() {
  if (state_ == State::Done) {
    return;
  }
  state_ = State::Upstream;
  config::Endpoint ep;
  if (cluster_ != nullptr) {
    upstream::ClusterState* cs = cluster_state();
    std::optional<std::string_view> hash_key;
    if (!cluster_->policy.hash_header.empty()) {
      hash_key = head_.headers.get(cluster_->policy.hash_header);
    }
    auto picked = cs->pick(std::chrono::steady_clock::now(), tried_, hash_key);
    if (!picked) {
      w_.stats.add(stats::Id::rq_no_healthy_upstream);
      local_reply(503, "no healthy upstream", "UH");
      return;
    }
    if (!cs->try_begin_request(*picked)) {
      local_reply(503, "upstream connect error or disconnect/reset before headers", "UO");
      return;
    }
    host_ = *picked;
    host_counted_ = true;
    tried_.push_back(host_);
    ep = cluster_->endpoints[host_];
  } else {
    ep.pod = direct_pod_;
    ep.address = tunnel_.destination;
  }
  UpstreamKey key = upstream_key(tunnel_, ep, snapshot_->bootstrap.upstream.hbone_port);
  if (cluster_ != nullptr &&
      (cluster_->policy.max_connections > 0 || cluster_->policy.max_requests_per_connection > 0)) {
    key.cluster = cluster_->name;
    key.max_connections = cluster_->policy.max_connections;
    key.max_pending = cluster_->policy.http1_max_pending_requests;
    key.max_requests_per_connection = cluster_->policy.max_requests_per_connection;
    if (w_.upstream.would_overflow(key)) {
      w_.stats.add(stats::Id::upstream_rq_pending_overflow);
      cluster_state()->end_request(host_);
      host_counted_ = false;
      local_reply(503, "upstream connect error or disconnect/reset before headers", "UO");
      return;
    }
  }
  ++attempts_;
  record_.attempts = attempts_;
  record_.upstream_host = ep.address.to_string();
  record_.destination_pod = ep.pod;
  attempt_.emplace(w_.stats);

  if (route_->retry.per_try_timeout && route_->retry.per_try_timeout->count() > 0) {
    per_try_timer_.start(*route_->retry.per_try_timeout);
  }
  awaiting_pool_ = true;
  auto pending = w_.upstream.new_stream(key, *this, *this);
  if (awaiting_pool_) {
    pending_stream_ = std::move(pending);
  }
}

void ActiveRequest::on_pool_ready(UpstreamStream& stream) {
  awaiting_pool_ = false;
  pending_stream_.reset();
  up_ = &stream;
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
  up_->send_head(head_, end);
  head_.content_length = content_length;
  head_.chunked = chunked;
  if (up_ == nullptr) {
    return;  // failed synchronously
  }
  if (replayable_ && !replay_.empty()) {
    buffer::Buffer copy;
    replay_.for_each([&](const uint8_t* p, size_t n) { copy.append(p, n); });
    up_->send_body(copy, request_complete_ && !request_trailers_);
  } else if (!pending_.empty()) {
    up_->send_body(pending_, request_complete_ && !request_trailers_);
  }
  if (up_ != nullptr && request_complete_ && request_trailers_) {
    up_->send_trailers(*request_trailers_);
  }
  consume_downstream();
}

void ActiveRequest::on_pool_failure(hbone::UpstreamFailure failure) {
  awaiting_pool_ = false;
  pending_stream_.reset();
  attempt_failed(AttemptFailure::ConnectFailure);
}

void ActiveRequest::on_upstream_drained() {
  consume_downstream();
}

// Settles the per-try bookkeeping: the per-try timer, the attempt's place in upstream_rq_active,
// the host's active request (and, unless Report::None, the outcome for outlier detection) and the
// retry budget held. Harmless when no attempt is in flight.
void ActiveRequest::end_attempt(Report report) {
  per_try_timer_.stop();
  attempt_.reset();
  if (cluster_ != nullptr && host_counted_) {
    upstream::ClusterState* cs = cluster_state();
    if (report != Report::None) {
      cs->report(host_, report == Report::Failure, std::chrono::steady_clock::now());
    }
    cs->end_request(host_);
    host_counted_ = false;
  }
  if (in_retry_) {
    cluster_state()->end_retry();
    in_retry_ = false;
  }
}

// The request ends on its own side (a local reply, the route timeout, the client gone, its
// destruction): abandons the attempt's stream, or its wait for one, and ends the attempt. Only an
// attempt that had its stream reports `report`; one still waiting never reached the host.
void ActiveRequest::abandon_attempt(Report report) {
  if (!detach_upstream()) {
    report = Report::None;
  }
  end_attempt(report);
}

// Lets go of the attempt's upstream stream, or of its wait for one; true when it had a stream.
bool ActiveRequest::detach_upstream() {
  pending_stream_.reset();
  awaiting_pool_ = false;
  if (up_ == nullptr) {
    return false;
  }
  UpstreamStream* s = up_;
  up_ = nullptr;
  up_unconsumed_ = 0;
  s->abandon();
  return true;
}

void ActiveRequest::attempt_failed(AttemptFailure failure) {
  const AttemptFailureInfo& info = describe(failure);
  if (info.counter) {
    w_.stats.add(*info.counter);
  }
  end_attempt(Report::Failure);
  if (response_started_) {
    // Too late to answer anything else: the client sees the response cut short.
    flags_ = info.flag_mid_response;
    response_complete_ = true;
    down_.abort();
    finish();
    return;
  }
  retry_or_reply(info.retry_kind, 0, &info);
}

void ActiveRequest::retry_or_reply(Kind kind, uint16_t status, const AttemptFailureInfo* failure) {
  router::Outcome outcome;
  outcome.kind = kind;
  outcome.status = status;
  router::RetryDecision d = router::should_retry(route_->retry, static_cast<int>(attempts_), outcome);
  bool replay_ok = replayable_ || (record_.bytes_received == 0 && request_complete_);
  if (d.retry && !replay_ok) {
    w_.stats.add(stats::Id::upstream_rq_retry_body_too_large);
  }
  if (d.retry && replay_ok && cluster_ != nullptr && !cluster_state()->try_begin_retry()) {
    d.retry = false;  // maxRetries reached: no retry (Envoy counts upstream_rq_retry_overflow)
  } else if (d.retry && replay_ok && cluster_ != nullptr) {
    in_retry_ = true;
  }
  if (d.retry && replay_ok) {
    w_.stats.add(stats::Id::upstream_rq_retry);
    schedule_retry();
    return;
  }
  if (d.reason == router::RetryDecision::Reason::AttemptsExhausted) {
    retries_exhausted_ = true;
    w_.stats.add(stats::Id::upstream_rq_retry_limit_exceeded);
  }
  if (status != 0 || failure == nullptr) {
    return;  // a response: the caller passes it on
  }
  local_reply(failure->status, failure->body, retries_exhausted_ ? failure->flag_retries_exhausted : failure->flag);
}

void ActiveRequest::schedule_retry() {
  state_ = State::Upstream;
  // Envoy's back-off: a random wait in [0, (2^n - 1) × 25 ms], at most 250 ms.
  uint32_t n = std::min<uint32_t>(attempts_, 4);
  uint32_t ceiling = std::min<uint32_t>(((1u << n) - 1) * 25, 250);
  uint32_t wait = ceiling == 0 ? 0 : w_.random() % (ceiling + 1);
  retry_timer_.start(std::chrono::milliseconds(wait));
}

void ActiveRequest::on_upstream_head(ResponseHead&& head) {
  if (state_ == State::Done) {
    return;
  }
  router::Outcome outcome;
  outcome.kind = Kind::Response;
  outcome.status = static_cast<uint16_t>(head.status);
  if (auto g = head.headers.get("grpc-status")) {
    outcome.grpc_status = std::atoi(std::string(*g).c_str());
  }
  bool failure = head.status >= 500;
  if (router::retriable(route_->retry, outcome) && !response_started_) {
    router::RetryDecision d = router::should_retry(route_->retry, static_cast<int>(attempts_), outcome);
    bool replay_ok = replayable_ || (record_.bytes_received == 0 && request_complete_);
    if (d.retry && replay_ok && request_complete_) {
      detach_upstream();
      end_attempt(failure ? Report::Failure : Report::Success);
      retry_or_reply(Kind::Response, outcome.status, nullptr);
      if (state_ == State::Done || retry_timer_.armed()) {
        return;
      }
      // Retry refused at the last moment (circuit breaker): nothing left to pass on.
      local_reply(head.status, "", "-");
      return;
    }
    if (d.reason == router::RetryDecision::Reason::AttemptsExhausted) {
      retries_exhausted_ = true;
      w_.stats.add(stats::Id::upstream_rq_retry_limit_exceeded);
      flags_ = "URX";
    }
  }
  if (cluster_ != nullptr && host_counted_) {
    cluster_state()->report(host_, failure, std::chrono::steady_clock::now());
  }
  state_ = State::Responding;
  response_started_ = true;
  record_.response_code = head.status;
  MapList list(head.headers);
  router::apply(route_->response_headers, list);
  head.headers.remove("content-length");
  head.headers.remove("transfer-encoding");
  record_.response_header_bytes = head.headers.byte_size();
  down_.send_head(head, false);
}

void ActiveRequest::on_upstream_body(const uint8_t* data, size_t len) {
  if (!response_started_) {
    if (up_ != nullptr) {
      up_->consume(len);
    }
    return;
  }
  record_.bytes_sent += len;
  up_unconsumed_ += len;
  buffer::Buffer chunk;
  chunk.append(data, len);
  down_.send_body(chunk, false);
  consume_upstream();
}

void ActiveRequest::on_upstream_trailers(HeaderMap&& trailers) {
  if (response_started_) {
    down_.send_trailers(trailers);
    response_complete_ = true;
  }
}

void ActiveRequest::on_upstream_end() {
  UpstreamStream* s = up_;
  up_ = nullptr;
  up_unconsumed_ = 0;  // the stream gave its window back as it was released
  if (s == nullptr) {
    return;
  }
  // The outcome (a 5xx or not) was reported at head time; the attempt itself ended normally.
  end_attempt(Report::None);
  if (!response_started_) {
    return;
  }
  if (!response_complete_) {
    buffer::Buffer empty;
    response_complete_ = true;
    down_.send_body(empty, true);
  }
  finish();
}

void ActiveRequest::on_upstream_error(UpstreamError error) {
  UpstreamStream* s = up_;
  up_ = nullptr;
  up_unconsumed_ = 0;
  if (s == nullptr || state_ == State::Done) {
    return;
  }
  // A kept-alive HTTP/1.1 tunnel the pod closed while idle: the request never got there. Retry
  // once on a fresh tunnel without counting an attempt (Envoy does the same for a reused
  // connection that fails before any response byte).
  if (error == UpstreamError::Reset && s->reused() && !response_started_ && !stale_retry_used_ &&
      (replayable_ || record_.bytes_received == 0)) {
    stale_retry_used_ = true;
    end_attempt(Report::Success);
    --attempts_;
    start_attempt();
    return;
  }
  attempt_failed(attempt_failure(error));
}

void ActiveRequest::on_per_try_timeout() {
  detach_upstream();  // a try that timed out waiting for its tunnel fails too
  attempt_failed(AttemptFailure::PerTryTimeout);
}

void ActiveRequest::on_route_timeout() {
  if (state_ == State::Done) {
    return;
  }
  w_.stats.add(stats::Id::rq_timeout);
  retry_timer_.stop();
  abandon_attempt(Report::Failure);  // also when it still waits for its upstream tunnel
  if (response_started_) {
    flags_ = "UT";
    response_complete_ = true;
    down_.abort();
    finish();
    return;
  }
  local_reply(504, "upstream request timeout", "UT");
}

// ---- local replies and the end ---------------------------------------------------------------------

void ActiveRequest::local_reply(int status, std::string_view body, const char* flags, const HeaderMap* extra) {
  if (state_ == State::Done || response_started_) {
    return;
  }
  retry_timer_.stop();
  per_try_timer_.stop();
  route_timer_.stop();
  delay_timer_.stop();
  abandon_attempt(Report::Success);  // also when it still waits for its upstream tunnel
  flags_ = flags;
  response_started_ = true;
  response_complete_ = true;
  record_.response_code = status;
  ResponseHead head;
  head.status = status;
  if (extra != nullptr) {
    head.headers = *extra;
  }
  if (!body.empty()) {
    head.headers.add("content-type", "text/plain");
  }
  head.content_length = body.size();
  head.keep_alive = !close_connection();
  record_.bytes_sent = body.size();
  record_.response_header_bytes = head.headers.byte_size();
  if (body.empty()) {
    down_.send_head(head, true);
  } else {
    down_.send_head(head, false);
    buffer::Buffer b;
    b.append(body.data(), body.size());
    down_.send_body(b, true);
  }
  finish();
}

void ActiveRequest::finish() {
  if (state_ == State::Done || !response_complete_) {
    return;
  }
  state_ = State::Done;
  retry_timer_.stop();
  route_timer_.stop();
  delay_timer_.stop();
  // An attempt still in flight (the client went away, or its request turned out malformed, while
  // the response streamed) ends with the request: no upstream callback reaches a finished request.
  abandon_attempt(Report::None);
  w_.stats.sub(stats::Id::downstream_rq_active);
  int code = record_.response_code;
  if (code >= 100 && code < 600) {
    static constexpr stats::Id kClass[] = {stats::Id::downstream_rq_1xx, stats::Id::downstream_rq_2xx,
                                           stats::Id::downstream_rq_3xx, stats::Id::downstream_rq_4xx,
                                           stats::Id::downstream_rq_5xx};
    w_.stats.add(kClass[code / 100 - 1]);
  }
  record_.response_flags = flags_;
  record_.duration = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_);
  w_.log.log(record_);
  consume_downstream();
  if (done_) {
    auto done = std::move(done_);
    done_ = nullptr;
    done(*this);
  }
}

}  // namespace wp::http
