#include "waypoint/proxy/chain.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "waypoint/proxy/pipeline.h"
#include "waypoint/router/policy.h"
#include "waypoint/router/route_match.h"

namespace wp::proxy {

namespace {

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

ActiveRequest::ActiveRequest(WorkerContext& worker, const TunnelInfo& tunnel, DownstreamStream& downstream,
                             const char* protocol, Done done)
    : w_(worker),
      tunnel_(tunnel),
      down_(downstream),
      done_(std::move(done)),
      started_(std::chrono::steady_clock::now()),
      delay_timer_(worker.loop, [this] { after_fault_delay(); }),
      router_(worker, tunnel, record_, *this) {
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
  router_.cancel(router::Report::None);
  if (state_ != State::Done) {
    w_.stats.sub(stats::Id::downstream_rq_active);
  }
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
  if (end_stream) {
    router_.on_request_end();
  }
  run_pipeline();
}

// The stages before the upstream (proxy/pipeline.h), then the fault's delay or the upstream.
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
  if (routes_ != nullptr && route_->clusters.empty()) {
    local_reply(503, "no healthy upstream", "UH");
    return;
  }
  if (expect_continue_ && !request_complete_) {
    down_.send_continue();  // as Envoy does by default: the proxy answers 100-continue itself
  }
  router_.start(snapshot_, *route_, std::move(head_), routes_ == nullptr ? direct_pod_ : nullptr);
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

void ActiveRequest::on_request_body(buffer::Buffer& data) {
  const size_t len = data.length();
  record_.bytes_received += len;
  if (state_ == State::Done || response_complete_) {
    data.clear();
    down_.consume(len);
    return;
  }
  router_.on_request_body(data);
}

void ActiveRequest::on_request_trailers(HeaderMap&& trailers) {
  router_.on_request_trailers(std::move(trailers));
}

void ActiveRequest::on_request_end() {
  if (request_complete_) {
    return;  // the head said there was no body: already ended
  }
  request_complete_ = true;
  if (state_ == State::Done || response_complete_) {
    return;
  }
  router_.on_request_end();
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
  router_.on_downstream_drained();
}

// ---- the response, from the router ------------------------------------------------------------------

void ActiveRequest::on_response_head(ResponseHead&& head, const char* flags) {
  if (flags != nullptr) {
    flags_ = flags;
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

void ActiveRequest::on_response_body(buffer::Buffer& data) {
  record_.bytes_sent += data.length();
  down_.send_body(data, false);
}

void ActiveRequest::on_response_trailers(HeaderMap&& trailers) {
  down_.send_trailers(trailers);
  response_complete_ = true;
}

void ActiveRequest::on_response_end() {
  if (!response_complete_) {
    buffer::Buffer empty;
    response_complete_ = true;
    down_.send_body(empty, true);
  }
  finish();
}

void ActiveRequest::on_local_reply(int status, std::string_view body, const char* flags) {
  local_reply(status, body, flags);
}

void ActiveRequest::on_response_abort(const char* flags) {
  flags_ = flags;
  response_complete_ = true;
  down_.abort();
  finish();
}

void ActiveRequest::consume_request(size_t bytes) {
  down_.consume(bytes);
}

size_t ActiveRequest::response_pending() const {
  return down_.send_pending();
}

// ---- local replies and the end ---------------------------------------------------------------------

void ActiveRequest::local_reply(int status, std::string_view body, const char* flags, const HeaderMap* extra) {
  if (state_ == State::Done || response_started_) {
    return;
  }
  delay_timer_.stop();
  router_.cancel(router::Report::Success);  // also when it still waits for its upstream tunnel
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
  delay_timer_.stop();
  // An attempt still in flight (the client went away, or its request turned out malformed, while
  // the response streamed) ends with the request: no upstream callback reaches a finished request.
  router_.cancel(router::Report::None);
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
  if (size_t n = router_.take_unconsumed()) {
    down_.consume(n);
  }
  if (done_) {
    auto done = std::move(done_);
    done_ = nullptr;
    done(*this);
  }
}

}  // namespace wp::proxy
