#include "waypoint/proxy/upstream.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "waypoint/http/h2c_codec.h"
#include "waypoint/http/http1_codec.h"
#include "waypoint/net/conn_pool.h"

namespace wp::proxy {

using http::CodecError;
using http::CodecState;
using http::H2cClientCallbacks;
using http::H2cClientCodec;
using http::Http1ClientCallbacks;
using http::Http1ClientCodec;
using net::ConnState;
using net::PoolConnState;

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

}  // namespace

// ---- requests waiting for a stream ----------------------------------------------------------------

StreamPool::Pending::~Pending() {
  if (queue_ != nullptr) {
    PendingQueue* q = queue_;
    q->unlink(*this);
    if (q->on_cancel_) {
      q->on_cancel_();
    }
  }
}

StreamPool::PendingQueue::~PendingQueue() {
  while (pop_front() != nullptr) {
  }
}

void StreamPool::PendingQueue::push_back(Pending& p) {
  if (p.queue_ != nullptr) {
    p.queue_->unlink(p);
  }
  p.queue_ = this;
  p.prev_ = tail_;
  p.next_ = nullptr;
  (tail_ != nullptr ? tail_->next_ : head_) = &p;
  tail_ = &p;
  ++size_;
  if (p.key.resources != nullptr) {
    p.counted_ = upstream::ResourceHold::acquire(*p.key.resources, upstream::Resource::PendingRequests);
  }
}

StreamPool::Pending* StreamPool::PendingQueue::pop_front() {
  Pending* p = head_;
  if (p != nullptr) {
    unlink(*p);
  }
  return p;
}

void StreamPool::PendingQueue::unlink(Pending& p) {
  (p.prev_ != nullptr ? p.prev_->next_ : head_) = p.next_;
  (p.next_ != nullptr ? p.next_->prev_ : tail_) = p.prev_;
  p.prev_ = p.next_ = nullptr;
  p.queue_ = nullptr;
  --size_;
  p.counted_.reset();
}

// ---- HTTP/1.1: one exchange at a time per tunnel -------------------------------------------------

class Http1Upstream final : public UpstreamStream,
                            public hbone::TunnelCallbacks,
                            public hbone::TunnelHandler,
                            public Http1ClientCallbacks,
                            public event::DeferredDeletable {
 public:
  Http1Upstream(UpstreamHttpPool& pool, std::string key)
      : pool_(pool),
        key_(std::move(key)),
        codec_(*this),
        idle_timer_(pool.loop_, [this] { close(); }),
        waiting_([this] { cancel_connect(); }) {}
  ~Http1Upstream() override {
    if (tunnel_ != nullptr) {
      tunnel_->set_handler(nullptr);
      tunnel_->reset();
    }
  }

  const std::string& key() const { return key_; }
  ConnState state() const { return st_.state(); }
  upstream::ResourceHold counted;  // its place in the cluster's maxConnections (empty: no cluster)
  uint32_t max_uses = 0;           // maxRequestsPerConnection (0 = unlimited)
  // A config change: end the tunnel after the exchange in progress (or the one it is opened for).
  void retire() { st_.transition(ConnState::Draining); }

  // Opens the tunnel for p, which waits on it (until it is ready, fails, or p is destroyed).
  void connect(UpstreamHttpPool::Pending& p) {
    waiting_.push_back(p);
    request_ = pool_.tunnels_.open(target_of(p.key), *this);
  }
  // Takes an idle tunnel for a new exchange.
  void activate(UpstreamStreamCallbacks& scb) {
    idle_timer_.stop();
    st_.transition(ConnState::Busy);
    stream_cb_ = &scb;
    req_done_ = resp_done_ = false;
    ++uses_;
  }
  // The requester went away while the tunnel was being opened.
  void cancel_connect() {
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
    codec_.encode_body(data, out);
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

  // hbone::TunnelCallbacks
  void on_upstream_ready(hbone::Tunnel& tunnel) override {
    release_request();
    tunnel_ = &tunnel;
    tunnel.set_handler(this);
    pool_.stats_.add(stats::Id::upstream_http_tunnels_opened);
    if (st_.state() == ConnState::Connecting) {
      st_.transition(ConnState::Busy);  // a Draining one still carries the exchange it was opened for
    }
    uses_ = 1;
    if (UpstreamHttpPool::Pending* p = waiting_.pop_front()) {
      stream_cb_ = p->scb;
      p->pcb->on_pool_ready(*this);
    } else {
      close();
    }
  }
  void on_upstream_failed(hbone::UpstreamFailure failure, int) override {
    release_request();
    UpstreamHttpPool::Pending* p = waiting_.pop_front();
    stream_cb_ = nullptr;
    close();
    if (p != nullptr) {
      p->pcb->on_pool_failure(failure);
    }
  }

  // hbone::TunnelHandler
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override {
    in_.move_from(data);
    parse();
  }
  void on_tunnel_eof(hbone::Tunnel&) override {
    eof_ = true;
    if (exchanging()) {
      parse();
      if (exchanging() && codec_.state() != CodecState::Error) {
        codec_.finish();  // completes a close-delimited response, or reports one cut short
        keep_alive_ = false;
        complete();
      }
    }
    keep_alive_ = false;
    if (st_.state() == ConnState::Ready) {
      close();
    } else if (exchanging() && resp_done_) {
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
    bool was_active = exchanging() && !resp_done_;
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
  void on_body(buffer::Buffer& data) override {
    const size_t len = data.length();
    body_delivered_ += len;
    if (stream_cb_ != nullptr) {
      unconsumed_ += len;
      stream_cb_->on_upstream_body(data);
    } else {
      data.clear();
      if (tunnel_ != nullptr) {
        tunnel_->consume(len);
      }
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
    if (error.counter) {
      pool_.stats_.add(*error.counter);
    }
    spdlog::debug("upstream HTTP/1.1 {}: {}", key_, error.reason);
    auto* cb = stream_cb_;
    stream_cb_ = nullptr;
    bool active = exchanging() && !resp_done_;
    close();
    if (active && cb != nullptr) {
      cb->on_upstream_error(UpstreamError::Protocol);
    }
  }

  void close() {
    if (st_.state() == ConnState::Closed) {
      return;
    }
    bool was_idle = st_.state() == ConnState::Ready;
    st_.transition(ConnState::Closed);
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
    // Closed while being opened (shutdown): the request waiting for it is told.
    UpstreamHttpPool::Pending* p = waiting_.pop_front();
    pool_.remove(*this);
    if (p != nullptr) {
      p->pcb->on_pool_failure(hbone::UpstreamFailure::Reset);
    }
  }

 private:
  // Carrying an exchange (a Draining tunnel too: it ends after that one).
  bool exchanging() const { return st_.state() == ConnState::Busy || st_.state() == ConnState::Draining; }
  // The tunnel request is done: freed after its own callback.
  void release_request() {
    if (request_) {
      pool_.loop_.defer_delete(std::move(request_));
    }
  }

  void parse() {
    while (!in_.empty() && exchanging() && tunnel_ != nullptr) {
      body_delivered_ = 0;
      size_t n = codec_.feed(in_);  // drains what it parsed; body slices leave by on_body
      if (st_.state() == ConnState::Closed) {
        return;
      }
      if (n == 0) {
        return;  // error (reported) or nothing more to parse now
      }
      size_t framing = n > body_delivered_ ? n - body_delivered_ : 0;
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
    if (!in_.empty() && st_.state() == ConnState::Ready) {
      // Bytes with no request outstanding: the codec reports them on the next exchange; a kept
      // tunnel must be clean, so close it.
      close();
    }
  }

  void maybe_release() {
    if (!req_done_ || !resp_done_ || !exchanging()) {
      return;
    }
    stream_cb_ = nullptr;
    if (keep_alive_ && st_.state() != ConnState::Draining && (max_uses == 0 || uses_ < max_uses) && !eof_ &&
        tunnel_ != nullptr && codec_.state() == CodecState::Running && in_.empty()) {
      st_.transition(ConnState::Ready);
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
      st_.transition(ConnState::Closed);
      idle_timer_.stop();
      pool_.remove(*this);
    }
  }

  UpstreamHttpPool& pool_;
  std::string key_;
  PoolConnState st_;
  Http1ClientCodec codec_;
  event::Timer idle_timer_;
  std::unique_ptr<hbone::TunnelRequest> request_;
  UpstreamHttpPool::PendingQueue waiting_;  // the request this tunnel is being opened for
  hbone::Tunnel* tunnel_ = nullptr;
  UpstreamStreamCallbacks* stream_cb_ = nullptr;
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

class H2cUpstreamStream final : public UpstreamStream, public event::DeferredDeletable {
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

class H2cUpstream final : public hbone::TunnelCallbacks,
                          public hbone::TunnelHandler,
                          public H2cClientCallbacks,
                          public event::DeferredDeletable {
 public:
  H2cUpstream(UpstreamHttpPool& pool, std::string key)
      : pool_(pool),
        loop_(pool.loop_),
        key_(std::move(key)),
        codec_(*this),
        close_soon_(loop_, [this] { close(); }),
        refuse_soon_(loop_, [this] { refuse(); }) {}
  ~H2cUpstream() override {
    if (tunnel_ != nullptr) {
      tunnel_->set_handler(nullptr);
      tunnel_->reset();
    }
  }

  const std::string& key() const { return key_; }
  bool ready() const {
    return tunnel_ != nullptr && codec_.usable() && (st_.state() == ConnState::Ready || st_.state() == ConnState::Busy);
  }
  bool connecting() const { return st_.state() == ConnState::Connecting; }
  ConnState state() const { return st_.state(); }
  upstream::ResourceHold counted;  // its place in the cluster's maxConnections (empty: no cluster)
  uint32_t max_uses = 0;           // maxRequestsPerConnection: streams it carries before draining (0 = unlimited)
  // A config change: no new streams here; the streams open finish, then the tunnel closes.
  void retire() {
    if (connecting() || !waiters_.empty() || closed()) {
      return;  // it serves requests already waiting for it; they finish on it
    }
    st_.transition(ConnState::Draining);
    close_if_drained();
  }
  bool closed() const { return st_.state() == ConnState::Closed; }
  size_t waiting() const { return waiters_.size(); }
  uint32_t available() const {
    return ready() ? codec_.available_streams() - std::min<uint32_t>(codec_.available_streams(), reserved_) : 0;
  }

  void connect(const UpstreamKey& key) { request_ = pool_.tunnels_.open(target_of(key), *this); }
  void add_waiter(UpstreamHttpPool::Pending& p) { waiters_.push_back(p); }

  // A stream for a ready connection with available() > 0.
  H2cUpstreamStream& make_stream(UpstreamStreamCallbacks& scb) {
    auto s = std::make_unique<H2cUpstreamStream>(*this, scb);
    s->reused_ = used_;
    used_ = true;
    ++reserved_;
    H2cUpstreamStream& ref = *s;
    unsubmitted_.emplace(&ref, std::move(s));
    if (max_uses > 0 && ++streams_made_ >= max_uses) {
      st_.transition(ConnState::Draining);  // this was its last stream
    } else {
      note_capacity();
    }
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
      // No stream after all (GOAWAY raced us): a refused stream, never processed, reported
      // after the requester's call.
      refused_.push_back(std::move(owned));
      refuse_soon_.schedule();
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
      loop_.defer_delete(std::move(it->second));
      unsubmitted_.erase(it);
      note_capacity();
      close_if_drained();
    }
  }
  void consume(H2cUpstreamStream& s, size_t n) {
    if (s.id_ >= 0) {
      codec_.consume(s.id_, n);
      flush();
    }
  }
  size_t pending(const H2cUpstreamStream& s) const { return s.id_ >= 0 ? codec_.pending_body(s.id_) : 0; }

  // hbone::TunnelCallbacks
  void on_upstream_ready(hbone::Tunnel& tunnel) override {
    release_request();
    st_.transition(ConnState::Ready);
    tunnel_ = &tunnel;
    tunnel.set_handler(this);
    pool_.stats_.add(stats::Id::upstream_http_tunnels_opened);
    flush();  // the client preface and SETTINGS
    serve_waiters();
  }
  void on_upstream_failed(hbone::UpstreamFailure failure, int) override {
    release_request();
    close(failure);
  }

  // hbone::TunnelHandler
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override {
    size_t total = data.length();
    while (!data.empty() && !closed()) {
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
  void on_response_body(int32_t id, buffer::Buffer& data) override {
    if (auto* s = find(id); s != nullptr && s->cb_ != nullptr) {
      s->cb_->on_upstream_body(data);
    } else {
      codec_.consume(id, data.length());
      data.clear();
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
    loop_.defer_delete(std::move(owned));
    note_capacity();
    close_if_drained();
  }
  void on_stream_drained(int32_t id) override {
    if (auto* s = find(id); s != nullptr && s->cb_ != nullptr) {
      s->cb_->on_upstream_drained();
    }
  }
  void on_capacity() override {
    note_capacity();
    serve_waiters();
  }
  void on_error(const CodecError& error) override {
    if (error.counter) {
      pool_.stats_.add(*error.counter);
    }
    if (error.graceful) {
      // A graceful GOAWAY: no new streams here; those already accepted finish, then it closes.
      if (!closed()) {
        st_.transition(ConnState::Draining);
        close_if_drained();
      }
      return;
    }
    close_soon_.schedule();
  }

  // Ends the tunnel: every stream and waiting request is told (waiting ones with `why`), at once.
  void close(hbone::UpstreamFailure why = hbone::UpstreamFailure::Reset) {
    if (closed()) {
      return;
    }
    st_.transition(ConnState::Closed);
    close_soon_.cancel();
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
      loop_.defer_delete(std::move(s));
    }
    auto unsubmitted = std::move(unsubmitted_);
    unsubmitted_.clear();
    for (auto& [p, s] : unsubmitted) {
      if (s->cb_ != nullptr) {
        auto* cb = s->cb_;
        s->cb_ = nullptr;
        cb->on_upstream_error(UpstreamError::Reset);
      }
      loop_.defer_delete(std::move(s));
    }
    refuse();
    // One at a time: a failed request may cancel (destroy) another waiting one.
    while (UpstreamHttpPool::Pending* p = waiters_.pop_front()) {
      p->pcb->on_pool_failure(why);
    }
    pool_.remove(*this);
  }

 private:
  H2cUpstreamStream* find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  // The tunnel request is done: freed after its own callback.
  void release_request() {
    if (request_) {
      loop_.defer_delete(std::move(request_));
    }
  }
  void serve_waiters() {
    while (!waiters_.empty() && available() > 0) {
      UpstreamHttpPool::Pending* p = waiters_.pop_front();
      p->pcb->on_pool_ready(make_stream(*p->scb));
      if (closed()) {
        return;
      }
    }
  }
  // Ready while a stream is free, Busy while none is (a Draining or Closed tunnel stays so).
  void note_capacity() {
    if (st_.state() == ConnState::Ready && available() == 0) {
      st_.transition(ConnState::Busy);
    } else if (st_.state() == ConnState::Busy && available() > 0) {
      st_.transition(ConnState::Ready);
    }
  }
  void close_if_drained() {
    if (st_.state() == ConnState::Draining && streams_.empty() && unsubmitted_.empty()) {
      close_soon_.schedule();
    }
  }
  // Streams whose submission found no stream id: each requester is told, then the stream freed.
  void refuse() {
    refuse_soon_.cancel();
    auto refused = std::move(refused_);
    refused_.clear();
    for (auto& s : refused) {
      if (auto* cb = s->cb_) {
        s->cb_ = nullptr;
        cb->on_upstream_error(UpstreamError::RefusedStream);
      }
      loop_.defer_delete(std::move(s));
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

  UpstreamHttpPool& pool_;
  event::Loop& loop_;
  std::string key_;
  H2cClientCodec codec_;
  std::unique_ptr<hbone::TunnelRequest> request_;
  hbone::Tunnel* tunnel_ = nullptr;
  PoolConnState st_;
  uint32_t streams_made_ = 0;
  bool used_ = false;
  bool in_flush_ = false;
  uint32_t reserved_ = 0;                   // streams handed out but not yet submitted
  UpstreamHttpPool::PendingQueue waiters_;  // requests waiting for the tunnel or a free stream
  std::unordered_map<int32_t, std::unique_ptr<H2cUpstreamStream>> streams_;
  std::unordered_map<H2cUpstreamStream*, std::unique_ptr<H2cUpstreamStream>> unsubmitted_;
  std::vector<std::unique_ptr<H2cUpstreamStream>> refused_;
  event::Deferred close_soon_;   // close() outside the codec's callbacks
  event::Deferred refuse_soon_;  // refuse() after the requester's call
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

UpstreamHttpPool::UpstreamHttpPool(event::Loop& loop, hbone::TunnelOpener& tunnels, stats::Block& stats,
                                   std::chrono::milliseconds idle_timeout)
    : loop_(loop), tunnels_(tunnels), stats_(stats), idle_timeout_(idle_timeout), serve_soon_(loop, [this] {
        auto clusters = std::move(to_serve_);
        to_serve_.clear();
        for (const auto& c : clusters) {
          serve_waiters(c);
        }
      }) {}

UpstreamHttpPool::~UpstreamHttpPool() {
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
    if (conn->state() == ConnState::Ready) {
      return conn;
    }
  }
  return nullptr;
}

// Envoy's order (conn_pool_base.cc newStreamImpl): a request a tunnel takes now never overflows;
// one that would wait overflows when the cluster's waiting requests are at http1MaxPendingRequests.
bool UpstreamHttpPool::would_overflow(const UpstreamKey& key) const {
  if (key.resources == nullptr || key.resources->can_create(upstream::Resource::PendingRequests, key.max_pending)) {
    return false;
  }
  auto eit = entries_.find(key_of(key));
  if (eit == entries_.end()) {
    return true;
  }
  if (!key.h2c) {
    for (const Http1Upstream* conn : eit->second.idle) {
      if (conn->state() == ConnState::Ready) {
        return false;
      }
    }
    return true;
  }
  for (const H2cUpstream* conn : eit->second.h2c) {
    if (!conn->closed() && conn->available() > 0) {
      return false;
    }
  }
  return true;
}

// A tunnel counts against its cluster's maxConnections from its creation to remove().
void UpstreamHttpPool::count_connection(const UpstreamKey& key, upstream::ResourceHold& counted) {
  if (key.resources != nullptr) {
    counted = upstream::ResourceHold::acquire(*key.resources, upstream::Resource::Connections);
  }
}

void UpstreamHttpPool::uncount_connection(upstream::ResourceHold& counted) {
  if (!counted) {
    return;
  }
  const std::string& cluster = counted.manager()->cluster();
  auto wit = waiting_.find(cluster);
  if (wit != waiting_.end() && !wit->second.empty()) {
    serve_soon(cluster);
  }
  counted.reset();
}

bool UpstreamHttpPool::at_connection_limit(const UpstreamKey& key) const {
  return key.resources != nullptr && !key.resources->can_create(upstream::Resource::Connections, key.max_connections);
}

void UpstreamHttpPool::dial_http1(Pending& p) {
  auto owned = std::make_unique<Http1Upstream>(*this, key_of(p.key));
  Http1Upstream* conn = owned.get();
  http1_.emplace(conn, std::move(owned));
  count_connection(p.key, conn->counted);
  conn->max_uses = p.key.max_requests_per_connection;
  conn->connect(p);
}

void UpstreamHttpPool::serve_soon(const std::string& cluster) {
  if (std::find(to_serve_.begin(), to_serve_.end(), cluster) == to_serve_.end()) {
    to_serve_.push_back(cluster);
  }
  serve_soon_.schedule();
}

// A tunnel of a limited cluster was released or closed: waiting requests take idle tunnels to
// their endpoint, or the room that closing an idle tunnel to another endpoint makes.
void UpstreamHttpPool::serve_waiters(const std::string& cluster) {
  for (;;) {
    // Found again each turn: a served request's callbacks may change the pool.
    auto wit = waiting_.find(cluster);
    if (wit == waiting_.end()) {
      return;
    }
    if (wit->second.empty()) {
      waiting_.erase(wit);
      return;
    }
    PendingQueue& line = wit->second;
    Pending& w = *line.front();
    if (Http1Upstream* conn = find_idle(key_of(w.key))) {
      stats_.sub(stats::Id::upstream_http_tunnels_idle);
      stats_.add(stats::Id::upstream_http_tunnels_reused);
      line.pop_front();
      conn->activate(*w.scb);
      w.pcb->on_pool_ready(*conn);
      continue;
    }
    if (at_connection_limit(w.key)) {
      Http1Upstream* victim = nullptr;
      for (auto& [c, owned] : http1_) {
        if (c->counted.manager() == w.key.resources && c->state() == ConnState::Ready) {
          victim = c;
          break;
        }
      }
      if (victim == nullptr) {
        return;  // every tunnel is busy: wait for one to finish
      }
      victim->close();  // frees one (remove() gives its connection back)
      continue;
    }
    // The request now waits on a new tunnel (its requester's handle follows it there).
    dial_http1(w);
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
    auto p = std::make_unique<Pending>(key, scb, pcb);
    if (at_connection_limit(key)) {
      // At maxConnections: wait for a tunnel (would_overflow() told the caller whether it may).
      stats_.add(stats::Id::upstream_cx_overflow);
      // An idle tunnel of the cluster to another endpoint makes room once closed: serve_waiters,
      // after the current callbacks, closes it for this request (or finds it was taken meanwhile).
      waiting_[key.resources->cluster()].push_back(*p);
      serve_soon(key.resources->cluster());
    } else {
      dial_http1(*p);
    }
    return p;
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
  if (target == nullptr && at_connection_limit(key)) {
    // At maxConnections: wait for a free stream on a tunnel to the endpoint that still takes
    // streams, the least waited-on. Only an endpoint with none gets a tunnel over the limit (as
    // Envoy guarantees a connection to a host a request was sent to).
    for (H2cUpstream* conn : e.h2c) {
      if (!conn->closed() && conn->state() != ConnState::Draining &&
          (target == nullptr || conn->waiting() < target->waiting())) {
        target = conn;
      }
    }
    if (target != nullptr) {
      stats_.add(stats::Id::upstream_cx_overflow);
    }
  }
  if (target == nullptr) {
    auto owned = std::make_unique<H2cUpstream>(*this, k);
    target = owned.get();
    h2c_.emplace(target, std::move(owned));
    e.h2c.push_back(target);
    count_connection(key, target->counted);
    target->max_uses = key.max_requests_per_connection;
    target->connect(key);
  }
  auto p = std::make_unique<Pending>(key, scb, pcb);
  target->add_waiter(*p);
  return p;
}

void UpstreamHttpPool::release(Http1Upstream& conn) {
  entries_[conn.key()].idle.push_back(&conn);
  if (conn.counted) {
    const std::string& cluster = conn.counted.manager()->cluster();
    auto wit = waiting_.find(cluster);
    if (wit != waiting_.end() && !wit->second.empty()) {
      serve_soon(cluster);  // not from inside the finishing exchange's callbacks: after them
    }
  }
}

void UpstreamHttpPool::remove(Http1Upstream& conn) {
  uncount_connection(conn.counted);
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
  uncount_connection(conn.counted);
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
    if (p->state() == ConnState::Ready) {
      idle.push_back(p);
    } else {
      p->retire();
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

}  // namespace wp::proxy
