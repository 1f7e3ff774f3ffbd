#include "waypoint/http/upstream.h"

#include <spdlog/spdlog.h>

#include <map>

#include "waypoint/http/h2c_codec.h"
#include "waypoint/http/http1_codec.h"

namespace wp::http {

namespace {

hbone::UpstreamTarget target_of(const UpstreamKey& key) {
  hbone::UpstreamTarget t;
  t.hbone_address = key.hbone_address;
  t.identity = key.identity;
  t.authority = key.authority.to_string();
  if (key.connect_headers != nullptr) {
    t.headers = *key.connect_headers;
  }
  return t;
}

// A Pending that forwards cancellation to its connection.
class PendingHandle final : public UpstreamHttpPool::Pending {
 public:
  explicit PendingHandle(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  ~PendingHandle() override {
    if (cancel_) {
      cancel_();
    }
  }
  void disarm() { cancel_ = nullptr; }

 private:
  std::function<void()> cancel_;
};

}  // namespace

// ---- HTTP/1.1: one exchange at a time per tunnel -------------------------------------------------

class Http1Upstream final : public UpstreamStream,
                            public hbone::UpstreamRequest::Callbacks,
                            public hbone::TunnelHandler,
                            public Http1ClientCallbacks,
                            public event::DeferredDeletable {
 public:
  enum class State { Connecting, Active, Idle, Closed };

  Http1Upstream(UpstreamHttpPool& pool, std::string key)
      : pool_(pool), key_(std::move(key)), codec_(*this), idle_timer_(pool.loop_, [this] { close(); }) {}
  ~Http1Upstream() override {
    if (tunnel_ != nullptr) {
      tunnel_->set_handler(nullptr);
      tunnel_->reset();
    }
  }

  const std::string& key() const { return key_; }
  State state() const { return state_; }
  std::string budget;    // the cluster whose connectionPool limit counts this tunnel ("" = none)
  bool retired = false;  // a config change: end the tunnel after the exchange in progress

  void connect(const UpstreamKey& key, UpstreamStreamCallbacks& scb, UpstreamPoolCallbacks& pcb) {
    stream_cb_ = &scb;
    pool_cb_ = &pcb;
    request_ = pool_.tunnels_.open(target_of(key), *this);
  }
  // Takes an idle tunnel for a new exchange.
  void activate(UpstreamStreamCallbacks& scb) {
    idle_timer_.stop();
    state_ = State::Active;
    stream_cb_ = &scb;
    req_done_ = resp_done_ = false;
    ++uses_;
  }
  // The requester went away while the tunnel was being opened.
  void cancel_connect() {
    pool_cb_ = nullptr;
    stream_cb_ = nullptr;
    close();
  }

  // UpstreamStream
  void send_head(const RequestHead& head, bool end_stream) override {
    if (tunnel_ == nullptr) {
      return;
    }
    keep_alive_ = head.keep_alive;
    buffer::Buffer out;
    codec_.encode_head(head, out);
    if (end_stream) {
      codec_.encode_end(out);
      req_done_ = true;
    }
    tunnel_->write(out);
  }
  void send_body(buffer::Buffer& data, bool end_stream) override {
    if (tunnel_ == nullptr) {
      data.clear();
      return;
    }
    buffer::Buffer out;
    data.for_each([&](const uint8_t* p, size_t n) { codec_.encode_body(p, n, out); });
    data.clear();
    if (end_stream) {
      codec_.encode_end(out);
      req_done_ = true;
    }
    if (!out.empty()) {
      tunnel_->write(out);
    }
    if (end_stream) {
      maybe_release();
    }
  }
  void send_trailers(const HeaderMap& trailers) override {
    if (tunnel_ == nullptr) {
      return;
    }
    buffer::Buffer out;
    codec_.encode_end(out, &trailers);
    req_done_ = true;
    tunnel_->write(out);
    maybe_release();
  }
  void abandon() override {
    stream_cb_ = nullptr;
    close();
  }
  void consume(size_t bytes) override {
    bytes = std::min(bytes, unconsumed_);
    unconsumed_ -= bytes;
    if (tunnel_ != nullptr && bytes > 0) {
      tunnel_->consume(bytes);
    }
  }
  size_t send_pending() const override { return tunnel_ != nullptr ? tunnel_->write_pending() : 0; }
  bool reused() const override { return uses_ > 1; }

  // hbone::UpstreamRequest::Callbacks
  void on_upstream_ready(hbone::H2Stream& tunnel) override {
    request_.release_later(pool_.loop_);
    tunnel_ = &tunnel;
    tunnel.set_handler(this);
    pool_.stats_.add(stats::Id::upstream_http_tunnels_opened);
    state_ = State::Active;
    uses_ = 1;
    auto* pcb = pool_cb_;
    pool_cb_ = nullptr;
    if (pcb != nullptr) {
      pcb->on_pool_ready(*this);
    } else {
      close();
    }
  }
  void on_upstream_failed(hbone::UpstreamFailure failure, int status) override {
    request_.release_later(pool_.loop_);
    auto* pcb = pool_cb_;
    pool_cb_ = nullptr;
    stream_cb_ = nullptr;
    close();
    if (pcb != nullptr) {
      pcb->on_pool_failure(failure);
    }
  }

  // hbone::TunnelHandler
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override {
    in_.move_from(data);
    parse();
  }
  void on_tunnel_eof(hbone::Tunnel&) override {
    eof_ = true;
    if (state_ == State::Active) {
      parse();
      if (state_ == State::Active && codec_.state() != CodecState::Error) {
        codec_.finish();  // completes a close-delimited response, or reports one cut short
        keep_alive_ = false;
        complete();
      }
    }
    keep_alive_ = false;
    if (state_ == State::Idle) {
      close();
    } else if (state_ == State::Active && resp_done_) {
      close();
    }
  }
  void on_tunnel_drained(hbone::Tunnel&, size_t) override {
    if (stream_cb_ != nullptr) {
      stream_cb_->on_upstream_drained();
    }
  }
  void on_tunnel_closed(hbone::Tunnel&, bool clean) override {
    tunnel_ = nullptr;
    auto* cb = stream_cb_;
    stream_cb_ = nullptr;
    bool was_active = state_ == State::Active && !resp_done_;
    close();
    if (was_active && cb != nullptr) {
      cb->on_upstream_error(UpstreamError::Reset);
    }
  }

  // Http1ClientCallbacks
  void on_head(ResponseHead&& head) override {
    if (head.status >= 100 && head.status < 200) {
      return;  // 1xx: the final response follows
    }
    if (!head.keep_alive) {
      keep_alive_ = false;
    }
    if (stream_cb_ != nullptr) {
      stream_cb_->on_upstream_head(std::move(head));
    }
  }
  void on_body(const uint8_t* data, size_t len) override {
    body_delivered_ += len;
    if (stream_cb_ != nullptr) {
      unconsumed_ += len;
      stream_cb_->on_upstream_body(data, len);
    } else if (tunnel_ != nullptr) {
      tunnel_->consume(len);
    }
  }
  void on_trailers(HeaderMap&& trailers) override {
    if (stream_cb_ != nullptr) {
      stream_cb_->on_upstream_trailers(std::move(trailers));
    }
  }
  void on_message_complete() override {
    resp_done_ = true;
    if (!req_done_) {
      // Answered before the request was sent in full: the tunnel's framing cannot be reused.
      keep_alive_ = false;
    }
    complete_pending_ = true;  // handled once feed() returns (the parsed bytes are drained then)
  }
  // The response is complete: park or end the tunnel first (so that the next request can take it),
  // then tell the stream.
  void complete() {
    if (!complete_pending_) {
      return;
    }
    complete_pending_ = false;
    auto* cb = stream_cb_;
    // Body bytes the requester has not acknowledged yet (still queued downstream) go back to the
    // tunnel's window now: the tunnel outlives this exchange.
    if (unconsumed_ > 0 && tunnel_ != nullptr) {
      tunnel_->consume(unconsumed_);
    }
    unconsumed_ = 0;
    maybe_release();
    if (cb != nullptr) {
      cb->on_upstream_end();
    }
  }
  void on_error(const CodecError& error) override {
    if (auto id = stats::find(error.counter)) {
      pool_.stats_.add(*id);
    }
    spdlog::debug("upstream HTTP/1.1 {}: {}", key_, error.reason);
    auto* cb = stream_cb_;
    stream_cb_ = nullptr;
    bool active = state_ == State::Active && !resp_done_;
    close();
    if (active && cb != nullptr) {
      cb->on_upstream_error(UpstreamError::Protocol);
    }
  }

  void close() {
    if (state_ == State::Closed) {
      return;
    }
    bool was_idle = state_ == State::Idle;
    state_ = State::Closed;
    idle_timer_.stop();
    request_.reset();
    if (tunnel_ != nullptr) {
      tunnel_->set_handler(nullptr);
      tunnel_->reset();
      tunnel_ = nullptr;
    }
    if (was_idle) {
      pool_.stats_.sub(stats::Id::upstream_http_tunnels_idle);
    }
    pool_.remove(*this);
  }

 private:
  // Small RAII holder that destroys the UpstreamRequest outside its own callback.
  struct RequestHolder {
    std::unique_ptr<hbone::UpstreamRequest> req;
    RequestHolder& operator=(std::unique_ptr<hbone::UpstreamRequest> r) {
      req = std::move(r);
      return *this;
    }
    void reset() { req.reset(); }
    void release_later(event::Loop& loop) {
      if (req) {
        auto* raw = req.release();
        loop.run_after_io([raw] { delete raw; });
      }
    }
  };

  void parse() {
    while (!in_.empty() && state_ == State::Active && tunnel_ != nullptr) {
      auto s = in_.front();
      body_delivered_ = 0;
      size_t n = codec_.feed(s.data(), s.size());
      if (state_ == State::Closed) {
        return;
      }
      if (n < s.size() && codec_.state() != CodecState::Closed) {
        // Error (reported) or nothing more to parse now.
        if (n == 0) {
          return;
        }
      }
      size_t framing = n > body_delivered_ ? n - body_delivered_ : 0;
      in_.drain(n);
      if (tunnel_ != nullptr && framing > 0) {
        tunnel_->consume(framing);
      }
      if (complete_pending_) {
        complete();
        return;
      }
      if (n == 0) {
        return;
      }
    }
    if (!in_.empty() && state_ == State::Idle) {
      // Bytes with no request outstanding: the codec reports them on the next exchange; a kept
      // tunnel must be clean, so close it.
      close();
    }
  }

  void maybe_release() {
    if (!req_done_ || !resp_done_ || state_ != State::Active) {
      return;
    }
    stream_cb_ = nullptr;
    if (keep_alive_ && !retired && !eof_ && tunnel_ != nullptr && codec_.state() == CodecState::Running &&
        in_.empty()) {
      state_ = State::Idle;
      pool_.stats_.add(stats::Id::upstream_http_tunnels_idle);
      idle_timer_.start(pool_.idle_timeout_);
      pool_.release(*this);
    } else {
      // Not reusable: end the tunnel cleanly (the pod sees EOF after the complete exchange).
      if (tunnel_ != nullptr) {
        tunnel_->set_handler(nullptr);
        tunnel_->write_eof();
        tunnel_ = nullptr;  // the stream finishes on its own; it is not ours any more
      }
      state_ = State::Closed;
      idle_timer_.stop();
      pool_.remove(*this);
    }
  }

  UpstreamHttpPool& pool_;
  std::string key_;
  State state_ = State::Connecting;
  Http1ClientCodec codec_;
  event::Timer idle_timer_;
  RequestHolder request_;
  hbone::H2Stream* tunnel_ = nullptr;
  UpstreamStreamCallbacks* stream_cb_ = nullptr;
  UpstreamPoolCallbacks* pool_cb_ = nullptr;
  buffer::Buffer in_;
  size_t body_delivered_ = 0;
  size_t unconsumed_ = 0;  // response body bytes delivered and not yet consumed by the requester
  uint32_t uses_ = 0;
  bool req_done_ = false;
  bool resp_done_ = false;
  bool keep_alive_ = true;
  bool eof_ = false;
  bool complete_pending_ = false;
};

// ---- h2c: many streams on one tunnel --------------------------------------------------------------

class H2cUpstream;

class H2cUpstreamStream final : public UpstreamStream {
 public:
  H2cUpstreamStream(H2cUpstream& conn, UpstreamStreamCallbacks& cb) : conn_(&conn), cb_(&cb) {}
  void send_head(const RequestHead& head, bool end_stream) override;
  void send_body(buffer::Buffer& data, bool end_stream) override;
  void send_trailers(const HeaderMap& trailers) override;
  void abandon() override;
  void consume(size_t bytes) override;
  size_t send_pending() const override;
  bool reused() const override { return reused_; }

  H2cUpstream* conn_;
  UpstreamStreamCallbacks* cb_;
  int32_t id_ = -1;
  bool reused_ = false;
};

class H2cUpstream final : public hbone::UpstreamRequest::Callbacks,
                          public hbone::TunnelHandler,
                          public H2cClientCallbacks,
                          public event::DeferredDeletable {
 public:
  struct Waiter {
    UpstreamStreamCallbacks* scb;
    UpstreamPoolCallbacks* pcb;
  };

  H2cUpstream(UpstreamHttpPool& pool, std::string key) : pool_(pool), key_(std::move(key)), codec_(*this) {}
  ~H2cUpstream() override {
    if (tunnel_ != nullptr) {
      tunnel_->set_handler(nullptr);
      tunnel_->reset();
    }
  }

  const std::string& key() const { return key_; }
  bool ready() const { return tunnel_ != nullptr && codec_.usable() && !draining_; }
  bool connecting() const { return connecting_; }
  // A config change: no new streams here; the streams open finish, then the tunnel closes.
  void retire() {
    if (connecting_ || !waiters_.empty() || closed_) {
      return;  // it serves requests already waiting for it; they finish on it
    }
    draining_ = true;
    if (streams_.empty() && unsubmitted_.empty()) {
      schedule_close();
    }
  }
  bool closed() const { return closed_; }
  size_t waiting() const { return waiters_.size(); }
  uint32_t available() const {
    return ready() ? codec_.available_streams() - std::min<uint32_t>(codec_.available_streams(), reserved_) : 0;
  }

  void connect(const UpstreamKey& key) {
    connecting_ = true;
    request_ = pool_.tunnels_.open(target_of(key), *this);
  }
  uint64_t add_waiter(UpstreamStreamCallbacks& scb, UpstreamPoolCallbacks& pcb) {
    uint64_t id = ++next_waiter_;
    waiters_.emplace(id, Waiter{&scb, &pcb});
    return id;
  }
  void cancel_waiter(uint64_t id) { waiters_.erase(id); }

  // A stream for a ready connection with available() > 0.
  H2cUpstreamStream& make_stream(UpstreamStreamCallbacks& scb) {
    auto s = std::make_unique<H2cUpstreamStream>(*this, scb);
    s->reused_ = used_;
    used_ = true;
    ++reserved_;
    H2cUpstreamStream& ref = *s;
    unsubmitted_.emplace(&ref, std::move(s));
    return ref;
  }

  // ---- used by H2cUpstreamStream
  void submit(H2cUpstreamStream& s, const RequestHead& head, bool end_stream) {
    auto it = unsubmitted_.find(&s);
    if (it == unsubmitted_.end()) {
      return;
    }
    --reserved_;
    auto owned = std::move(it->second);
    unsubmitted_.erase(it);
    int32_t id = codec_.submit_request(head, end_stream);
    if (id < 0) {
      // No stream after all (GOAWAY raced us): report a refused stream, never processed.
      auto* cb = s.cb_;
      pool_.loop_.run_after_io([cb, alive = alive_] {
        if (*alive) {
          cb->on_upstream_error(UpstreamError::RefusedStream);
        }
      });
      dead_.push_back(std::move(owned));
      return;
    }
    s.id_ = id;
    streams_.emplace(id, std::move(owned));
    flush();
  }
  void body(H2cUpstreamStream& s, buffer::Buffer& data, bool end) {
    if (s.id_ < 0) {
      data.clear();
      return;
    }
    codec_.send_body(s.id_, data, end);
    flush();
  }
  void trailers(H2cUpstreamStream& s, const HeaderMap& t) {
    if (s.id_ >= 0) {
      codec_.send_trailers(s.id_, t);
      flush();
    }
  }
  void abandon(H2cUpstreamStream& s) {
    s.cb_ = nullptr;
    if (s.id_ >= 0) {
      codec_.reset(s.id_, 8 /* CANCEL */);
      flush();
    } else if (auto it = unsubmitted_.find(&s); it != unsubmitted_.end()) {
      --reserved_;
      dead_.push_back(std::move(it->second));
      unsubmitted_.erase(it);
    }
  }
  void consume(H2cUpstreamStream& s, size_t n) {
    if (s.id_ >= 0) {
      codec_.consume(s.id_, n);
      flush();
    }
  }
  size_t pending(const H2cUpstreamStream& s) const { return s.id_ >= 0 ? codec_.pending_body(s.id_) : 0; }

  // hbone::UpstreamRequest::Callbacks
  void on_upstream_ready(hbone::H2Stream& tunnel) override {
    release_request();
    connecting_ = false;
    tunnel_ = &tunnel;
    tunnel.set_handler(this);
    pool_.stats_.add(stats::Id::upstream_http_tunnels_opened);
    flush();  // the client preface and SETTINGS
    serve_waiters();
  }
  void on_upstream_failed(hbone::UpstreamFailure failure, int) override {
    release_request();
    connecting_ = false;
    auto waiters = std::move(waiters_);
    waiters_.clear();
    close();
    for (auto& [id, w] : waiters) {
      w.pcb->on_pool_failure(failure);
    }
  }

  // hbone::TunnelHandler
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override {
    size_t total = data.length();
    while (!data.empty() && !closed_) {
      auto s = data.front();
      size_t n = s.size();
      if (!codec_.feed(s.data(), n)) {
        data.clear();
        break;
      }
      data.drain(n);
    }
    data.clear();
    if (tunnel_ != nullptr) {
      tunnel_->consume(total);  // DATA is flow-controlled per h2c stream; frames are consumed at once
    }
    flush();
  }
  void on_tunnel_eof(hbone::Tunnel&) override {
    codec_.finish();
    close();
  }
  void on_tunnel_drained(hbone::Tunnel&, size_t) override { flush(); }
  void on_tunnel_closed(hbone::Tunnel&, bool) override {
    tunnel_ = nullptr;
    codec_.finish();
    close();
  }

  // H2cClientCallbacks
  void on_response(int32_t id, ResponseHead&& head) override {
    if (auto* s = find(id); s != nullptr && s->cb_ != nullptr) {
      s->cb_->on_upstream_head(std::move(head));
    }
  }
  void on_response_body(int32_t id, const uint8_t* data, size_t len) override {
    if (auto* s = find(id); s != nullptr && s->cb_ != nullptr) {
      s->cb_->on_upstream_body(data, len);
    } else {
      codec_.consume(id, len);
    }
  }
  void on_response_trailers(int32_t id, HeaderMap&& t) override {
    if (auto* s = find(id); s != nullptr && s->cb_ != nullptr) {
      s->cb_->on_upstream_trailers(std::move(t));
    }
  }
  void on_response_end(int32_t id) override {
    if (auto* s = find(id); s != nullptr && s->cb_ != nullptr) {
      auto* cb = s->cb_;
      s->cb_ = nullptr;
      cb->on_upstream_end();
    }
  }
  void on_stream_closed(int32_t id, uint32_t code) override {
    auto it = streams_.find(id);
    if (it == streams_.end()) {
      return;
    }
    auto owned = std::move(it->second);
    streams_.erase(it);
    if (owned->cb_ != nullptr) {
      auto* cb = owned->cb_;
      owned->cb_ = nullptr;
      cb->on_upstream_error(code == 7 /* REFUSED_STREAM */ ? UpstreamError::RefusedStream : UpstreamError::Reset);
    }
    dead_.push_back(std::move(owned));
    schedule_gc();
    if (draining_ && streams_.empty() && unsubmitted_.empty()) {
      schedule_close();
    }
  }
  void on_stream_drained(int32_t id) override {
    if (auto* s = find(id); s != nullptr && s->cb_ != nullptr) {
      s->cb_->on_upstream_drained();
    }
  }
  void on_capacity() override { serve_waiters(); }
  void on_error(const CodecError& error) override {
    if (auto id = stats::find(error.counter)) {
      pool_.stats_.add(*id);
    }
    if (error.counter == nullptr || *error.counter == '\0') {
      // A graceful GOAWAY: no new streams here; those already accepted finish, then it closes.
      draining_ = true;
      if (streams_.empty() && unsubmitted_.empty()) {
        schedule_close();
      }
      return;
    }
    schedule_close();
  }

  void close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    request_.reset();
    if (tunnel_ != nullptr) {
      flush();
      tunnel_->set_handler(nullptr);
      tunnel_->reset();
      tunnel_ = nullptr;
    }
    codec_.finish();
    auto streams = std::move(streams_);
    streams_.clear();
    for (auto& [id, s] : streams) {
      if (s->cb_ != nullptr) {
        auto* cb = s->cb_;
        s->cb_ = nullptr;
        cb->on_upstream_error(UpstreamError::Reset);
      }
      dead_.push_back(std::move(s));
    }
    for (auto& [p, s] : unsubmitted_) {
      if (s->cb_ != nullptr) {
        auto* cb = s->cb_;
        s->cb_ = nullptr;
        cb->on_upstream_error(UpstreamError::Reset);
      }
      dead_.push_back(std::move(s));
    }
    unsubmitted_.clear();
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto& [id, w] : waiters) {
      w.pcb->on_pool_failure(hbone::UpstreamFailure::Reset);
    }
    *alive_ = false;
    pool_.remove(*this);
  }

 private:
  H2cUpstreamStream* find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  void release_request() {
    if (request_) {
      auto* raw = request_.release();
      pool_.loop_.run_after_io([raw] { delete raw; });
    }
  }
  void serve_waiters() {
    while (!waiters_.empty() && available() > 0) {
      auto it = waiters_.begin();
      Waiter w = it->second;
      waiters_.erase(it);
      w.pcb->on_pool_ready(make_stream(*w.scb));
      if (closed_) {
        return;
      }
    }
  }
  void flush() {
    if (tunnel_ == nullptr || in_flush_) {
      return;
    }
    in_flush_ = true;
    buffer::Buffer out;
    collect_output(codec_, out);
    in_flush_ = false;
    if (!out.empty() && tunnel_ != nullptr) {
      tunnel_->write(out);
    }
  }
  void schedule_close() {
    pool_.loop_.run_after_io([this, alive = alive_] {
      if (*alive) {
        close();
      }
    });
  }
  void schedule_gc() {
    if (gc_scheduled_) {
      return;
    }
    gc_scheduled_ = true;
    pool_.loop_.run_after_io([this, alive = alive_] {
      if (*alive) {
        gc_scheduled_ = false;
        dead_.clear();
      }
    });
  }

  UpstreamHttpPool& pool_;
  std::string key_;
  H2cClientCodec codec_;
  std::unique_ptr<hbone::UpstreamRequest> request_;
  hbone::H2Stream* tunnel_ = nullptr;
  bool connecting_ = false;
  bool closed_ = false;
  bool used_ = false;
  bool in_flush_ = false;
  bool gc_scheduled_ = false;
  bool draining_ = false;  // graceful GOAWAY received, or retired
  uint32_t reserved_ = 0;  // streams handed out but not yet submitted
  uint64_t next_waiter_ = 0;
  std::map<uint64_t, Waiter> waiters_;
  std::unordered_map<int32_t, std::unique_ptr<H2cUpstreamStream>> streams_;
  std::unordered_map<H2cUpstreamStream*, std::unique_ptr<H2cUpstreamStream>> unsubmitted_;
  std::vector<std::unique_ptr<H2cUpstreamStream>> dead_;  // freed after the current callbacks
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

void H2cUpstreamStream::send_head(const RequestHead& head, bool end_stream) {
  if (conn_ != nullptr) {
    conn_->submit(*this, head, end_stream);
  }
}
void H2cUpstreamStream::send_body(buffer::Buffer& data, bool end_stream) {
  conn_->body(*this, data, end_stream);
}
void H2cUpstreamStream::send_trailers(const HeaderMap& trailers) {
  conn_->trailers(*this, trailers);
}
void H2cUpstreamStream::abandon() {
  conn_->abandon(*this);
}
void H2cUpstreamStream::consume(size_t bytes) {
  conn_->consume(*this, bytes);
}
size_t H2cUpstreamStream::send_pending() const {
  return conn_->pending(*this);
}

// ---- the pool ---------------------------------------------------------------------------------------

UpstreamHttpPool::UpstreamHttpPool(event::Loop& loop, hbone::Pool& tunnels, stats::Block& stats,
                                   std::chrono::milliseconds idle_timeout)
    : loop_(loop), tunnels_(tunnels), stats_(stats), idle_timeout_(idle_timeout) {}

UpstreamHttpPool::~UpstreamHttpPool() {
  *alive_ = false;
  pending_handoff_.clear();
  close_all();
}

std::string UpstreamHttpPool::key_of(const UpstreamKey& key) {
  std::string authority = key.authority.to_string();
  std::string k;
  k.reserve(authority.size() + 7 + key.identity.size() + 1 + key.client.size());  // one allocation
  k += authority;
  k += key.h2c ? "|h2c|" : "|http1|";
  k += key.identity;
  k += '|';
  k += key.client;
  return k;
}

Http1Upstream* UpstreamHttpPool::find_idle(const std::string& k) {
  auto eit = entries_.find(k);
  if (eit == entries_.end()) {
    return nullptr;
  }
  auto& idle = eit->second.idle;
  while (!idle.empty()) {
    Http1Upstream* conn = idle.back();
    idle.pop_back();
    if (conn->state() == Http1Upstream::State::Idle) {
      return conn;
    }
  }
  return nullptr;
}

bool UpstreamHttpPool::would_overflow(const UpstreamKey& key) const {
  if (key.h2c || key.max_connections == 0 || key.max_pending == 0) {
    return false;
  }
  auto b = budgets_.find(key.cluster);
  if (b == budgets_.end() || b->second.open < key.max_connections) {
    return false;
  }
  auto eit = entries_.find(key_of(key));
  if (eit != entries_.end() && !eit->second.idle.empty()) {
    return false;
  }
  return b->second.waiters.size() >= key.max_pending;
}

std::unique_ptr<UpstreamHttpPool::Pending> UpstreamHttpPool::connect_http1(const UpstreamKey& key,
                                                                           UpstreamStreamCallbacks& scb,
                                                                           UpstreamPoolCallbacks& pcb) {
  auto owned = std::make_unique<Http1Upstream>(*this, key_of(key));
  Http1Upstream* conn = owned.get();
  http1_.emplace(conn, std::move(owned));
  if (key.max_connections > 0) {
    conn->budget = key.cluster;
    budgets_[key.cluster].open++;
  }
  conn->connect(key, scb, pcb);
  return std::make_unique<PendingHandle>([this, conn] {
    if (http1_.count(conn) != 0 && conn->state() == Http1Upstream::State::Connecting) {
      conn->cancel_connect();
    }
  });
}

// A tunnel of a limited cluster was released or closed: waiting requests take idle tunnels to
// their endpoint, or the room that closing an idle tunnel to another endpoint makes.
void UpstreamHttpPool::serve_waiters(const std::string& cluster) {
  auto bit = budgets_.find(cluster);
  if (bit == budgets_.end()) {
    return;
  }
  Budget& b = bit->second;
  while (!b.waiters.empty()) {
    Waiter& w = b.waiters.front();
    if (Http1Upstream* conn = find_idle(key_of(w.key))) {
      stats_.sub(stats::Id::upstream_http_tunnels_idle);
      stats_.add(stats::Id::upstream_http_tunnels_reused);
      Waiter taken = std::move(w);
      b.waiters.pop_front();
      conn->activate(*taken.scb);
      taken.pcb->on_pool_ready(*conn);
      continue;
    }
    if (b.open >= w.key.max_connections) {
      Http1Upstream* victim = nullptr;
      for (auto& [c, owned] : http1_) {
        if (c->budget == cluster && c->state() == Http1Upstream::State::Idle) {
          victim = c;
          break;
        }
      }
      if (victim == nullptr) {
        return;  // every tunnel is busy: wait for one to finish
      }
      victim->close();  // frees one (remove() decrements b.open)
      continue;
    }
    Waiter taken = std::move(w);
    b.waiters.pop_front();
    // The request keeps waiting on a new tunnel; its cancel handle reaches it through the id.
    pending_handoff_[taken.id] = connect_http1(taken.key, *taken.scb, *taken.pcb);
  }
}

std::unique_ptr<UpstreamHttpPool::Pending> UpstreamHttpPool::new_stream(const UpstreamKey& key,
                                                                        UpstreamStreamCallbacks& scb,
                                                                        UpstreamPoolCallbacks& pcb) {
  std::string k = key_of(key);
  if (!key.h2c) {
    if (Http1Upstream* conn = find_idle(k)) {
      stats_.sub(stats::Id::upstream_http_tunnels_idle);
      stats_.add(stats::Id::upstream_http_tunnels_reused);
      conn->activate(scb);
      pcb.on_pool_ready(*conn);
      return nullptr;
    }
    if (key.max_connections > 0 && budgets_[key.cluster].open >= key.max_connections) {
      // At maxConnections: wait for a tunnel (would_overflow() told the caller whether it may).
      uint64_t id = ++next_waiter_;
      budgets_[key.cluster].waiters.push_back(Waiter{key, &scb, &pcb, id});
      return std::make_unique<PendingHandle>([this, cluster = key.cluster, id, alive = alive_] {
        if (!*alive) {
          return;
        }
        pending_handoff_.erase(id);  // cancels a tunnel dialled for it, if any
        auto bit = budgets_.find(cluster);
        if (bit != budgets_.end()) {
          bit->second.waiters.remove_if([id](const Waiter& w) { return w.id == id; });
        }
      });
    }
    return connect_http1(key, scb, pcb);
  }
  Entry& e = entries_[k];
  for (H2cUpstream* conn : e.h2c) {
    if (!conn->closed() && conn->available() > 0) {
      stats_.add(stats::Id::upstream_http_tunnels_reused);
      pcb.on_pool_ready(conn->make_stream(scb));
      return nullptr;
    }
  }
  H2cUpstream* target = nullptr;
  for (H2cUpstream* conn : e.h2c) {
    if (conn->connecting() && conn->waiting() < 100) {
      target = conn;
      break;
    }
  }
  if (target == nullptr) {
    auto owned = std::make_unique<H2cUpstream>(*this, k);
    target = owned.get();
    h2c_.emplace(target, std::move(owned));
    e.h2c.push_back(target);
    target->connect(key);
  }
  uint64_t id = target->add_waiter(scb, pcb);
  return std::make_unique<PendingHandle>([this, target, id] {
    if (h2c_.count(target) != 0) {
      target->cancel_waiter(id);
    }
  });
}

void UpstreamHttpPool::release(Http1Upstream& conn) {
  entries_[conn.key()].idle.push_back(&conn);
  if (!conn.budget.empty()) {
    auto bit = budgets_.find(conn.budget);
    if (bit != budgets_.end() && !bit->second.waiters.empty()) {
      // Not from inside the finishing exchange's callbacks: after them.
      loop_.run_after_io([this, cluster = conn.budget, alive = alive_] {
        if (*alive) {
          serve_waiters(cluster);
        }
      });
    }
  }
}

void UpstreamHttpPool::remove(Http1Upstream& conn) {
  if (!conn.budget.empty()) {
    auto bit = budgets_.find(conn.budget);
    if (bit != budgets_.end()) {
      bit->second.open--;
      if (!bit->second.waiters.empty()) {
        loop_.run_after_io([this, cluster = conn.budget, alive = alive_] {
          if (*alive) {
            serve_waiters(cluster);
          }
        });
      } else if (bit->second.open == 0) {
        budgets_.erase(bit);
      }
    }
    conn.budget.clear();
  }
  auto eit = entries_.find(conn.key());
  if (eit != entries_.end()) {
    eit->second.idle.remove(&conn);
    if (eit->second.idle.empty() && eit->second.h2c.empty()) {
      entries_.erase(eit);
    }
  }
  auto it = http1_.find(&conn);
  if (it != http1_.end()) {
    loop_.defer_delete(std::move(it->second));
    http1_.erase(it);
  }
}

void UpstreamHttpPool::remove(H2cUpstream& conn) {
  auto eit = entries_.find(conn.key());
  if (eit != entries_.end()) {
    eit->second.h2c.remove(&conn);
    if (eit->second.idle.empty() && eit->second.h2c.empty()) {
      entries_.erase(eit);
    }
  }
  auto it = h2c_.find(&conn);
  if (it != h2c_.end()) {
    loop_.defer_delete(std::move(it->second));
    h2c_.erase(it);
  }
}

void UpstreamHttpPool::retire_all() {
  std::vector<Http1Upstream*> idle;
  for (auto& [p, o] : http1_) {
    if (p->state() == Http1Upstream::State::Idle) {
      idle.push_back(p);
    } else {
      p->retired = true;
    }
  }
  for (auto* p : idle) {
    p->close();
  }
  std::vector<H2cUpstream*> h2;
  for (auto& [p, o] : h2c_) {
    h2.push_back(p);
  }
  for (auto* p : h2) {
    p->retire();
  }
}

void UpstreamHttpPool::close_all() {
  std::vector<Http1Upstream*> h1;
  for (auto& [p, o] : http1_) {
    h1.push_back(p);
  }
  for (auto* p : h1) {
    p->close();
  }
  std::vector<H2cUpstream*> h2;
  for (auto& [p, o] : h2c_) {
    h2.push_back(p);
  }
  for (auto* p : h2) {
    p->close();
  }
}

}  // namespace wp::http
