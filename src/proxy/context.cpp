// What the chain's pieces share on a worker (proxy/context.h): the key of an attempt, mirrored
// requests, the worker's random numbers.
#include "waypoint/proxy/context.h"

#include <utility>

namespace wp::proxy {

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
  void on_upstream_body(buffer::Buffer& data) override {
    const size_t len = data.length();
    data.clear();
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

}  // namespace wp::proxy
