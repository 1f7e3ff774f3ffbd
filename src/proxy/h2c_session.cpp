#include <spdlog/spdlog.h>

#include "waypoint/proxy/session.h"

namespace wp::proxy {
namespace {

H2cSettings codec_settings(const config::Bootstrap& b) {
  H2cSettings s;
  s.limits.max_consecutive_empty_frames = b.downstream.max_consecutive_empty_frames;
  s.limits.premature_reset_total_stream_count = b.downstream.premature_reset_total_stream_count;
  s.limits.premature_reset_min_stream_lifetime = b.downstream.premature_reset_min_stream_lifetime;
  return s;
}

}  // namespace

// One h2c stream: the DownstreamStream of its ActiveRequest.
class H2cSession::Stream final : public DownstreamStream, public event::DeferredDeletable {
 public:
  Stream(H2cSession& s, int32_t id) : session_(s), id_(id) {}

  void send_head(ResponseHead& head, bool end_stream) override {
    if (closed_) {
      return;
    }
    session_.codec_.respond(id_, head, end_stream);
    session_.flush();
  }
  void send_body(buffer::Buffer& data, bool end_stream) override {
    if (closed_) {
      data.clear();
      return;
    }
    session_.codec_.send_body(id_, data, end_stream);
    session_.flush();
  }
  void send_trailers(const HeaderMap& trailers) override {
    if (closed_) {
      return;
    }
    session_.codec_.send_trailers(id_, trailers);
    session_.flush();
  }
  void send_continue() override {}  // h2c clients do not wait for 100-continue from a proxy
  void abort() override {
    if (closed_) {
      return;
    }
    session_.codec_.reset(id_, 2 /* INTERNAL_ERROR */);
    session_.flush();
  }
  void consume(size_t n) override {
    if (!closed_) {
      session_.codec_.consume(id_, n);
      session_.flush();
    }
  }
  size_t send_pending() const override {
    return (closed_ ? 0 : session_.codec_.pending_body(id_)) +
           (session_.tunnel_ != nullptr ? session_.tunnel_->write_pending() : 0);
  }

  H2cSession& session_;
  int32_t id_;
  bool closed_ = false;        // on_stream_closed seen
  bool request_done_ = false;  // the ActiveRequest finished
  std::unique_ptr<ActiveRequest> request;
};

H2cSession::H2cSession(WorkerContext& worker, TunnelInfo info, hbone::Tunnel& tunnel, buffer::Buffer initial, bool eof,
                       Done done)
    : w_(worker),
      info_(std::move(info)),
      tunnel_(&tunnel),
      codec_(*this, codec_settings(info_.snapshot->bootstrap)),
      done_(std::move(done)),
      start_(worker.loop, [this] { start(); }),
      fail_(worker.loop, [this] {
        flush();
        close_tunnel(false);
      }) {
  early_.move_from(initial);
  early_eof_ = eof;
  tunnel.set_handler(this);  // may deliver buffered bytes at once: they queue behind `initial`
  // Start on the next turn: the owner has not stored this session yet.
  start_.schedule();
}

void H2cSession::start() {
  started_ = true;
  feed(early_);
  flush();
  if (early_eof_ && tunnel_ != nullptr) {
    on_tunnel_eof(*tunnel_);
  }
}

H2cSession::~H2cSession() {
  streams_.clear();
  if (tunnel_ != nullptr) {
    tunnel_->set_handler(nullptr);
    tunnel_->reset();
  }
}

void H2cSession::abort() {
  close_tunnel(true);
}

void H2cSession::feed(buffer::Buffer& data) {
  size_t total = data.length();
  while (!data.empty() && !failed_) {
    auto s = data.front();
    size_t n = s.size();
    if (!codec_.feed(s.data(), n)) {
      break;
    }
    data.drain(n);
  }
  data.clear();
  if (tunnel_ != nullptr && total > 0) {
    tunnel_->consume(total);  // h2c DATA is flow-controlled per stream by the codec's windows
  }
}

void H2cSession::on_tunnel_data(hbone::Tunnel&, buffer::Buffer& data) {
  if (!started_) {
    early_.move_from(data);
    return;
  }
  feed(data);
  flush();
}

void H2cSession::on_tunnel_eof(hbone::Tunnel&) {
  if (!started_) {
    early_eof_ = true;
    return;
  }
  codec_.finish();
  flush();
  close_tunnel(false);
}

void H2cSession::on_tunnel_drained(hbone::Tunnel&, size_t) {
  flush();
  // Room downstream: let every responding stream acknowledge more upstream bytes.
  std::vector<ActiveRequest*> rs;
  for (auto& [id, s] : streams_) {
    if (s->request != nullptr) {
      rs.push_back(s->request.get());
    }
  }
  for (auto* r : rs) {
    r->on_downstream_drained();
  }
}

void H2cSession::on_tunnel_closed(hbone::Tunnel&, bool) {
  tunnel_ = nullptr;
  codec_.finish();  // closes every stream: their requests see a downstream reset
  std::vector<int32_t> ids;
  for (auto& [id, s] : streams_) {
    ids.push_back(id);
  }
  for (int32_t id : ids) {
    on_stream_closed(id, 2);
  }
  maybe_done();
}

void H2cSession::on_request(int32_t id, RequestHead&& head, bool end_stream) {
  auto stream = std::make_unique<Stream>(*this, id);
  Stream* s = stream.get();
  streams_[id] = std::move(stream);
  s->request = std::make_unique<ActiveRequest>(w_, info_, *s, "HTTP/2", [this, s](ActiveRequest&) {
    s->request_done_ = true;
    if (s->request != nullptr) {
      w_.loop.defer_delete(std::move(s->request));
    }
    if (s->closed_) {
      auto it = streams_.find(s->id_);
      if (it != streams_.end()) {
        auto owned = std::move(it->second);
        streams_.erase(it);
        w_.loop.defer_delete(std::move(owned));
      }
    }
  });
  s->request->on_request_head(std::move(head), end_stream);
}

void H2cSession::on_request_body(int32_t id, buffer::Buffer& data) {
  auto it = streams_.find(id);
  if (it != streams_.end() && it->second->request != nullptr) {
    it->second->request->on_request_body(data);
  } else {
    codec_.consume(id, data.length());
    data.clear();
  }
}

void H2cSession::on_request_trailers(int32_t id, HeaderMap&& trailers) {
  auto it = streams_.find(id);
  if (it != streams_.end() && it->second->request != nullptr) {
    it->second->request->on_request_trailers(std::move(trailers));
  }
}

void H2cSession::on_request_end(int32_t id) {
  auto it = streams_.find(id);
  if (it != streams_.end() && it->second->request != nullptr) {
    it->second->request->on_request_end();
  }
}

void H2cSession::on_stream_closed(int32_t id, uint32_t error_code) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  Stream* s = it->second.get();
  s->closed_ = true;
  if (s->request != nullptr) {
    s->request->on_downstream_reset();  // finishes it (no-op when it already had); may erase s
  }
  it = streams_.find(id);
  if (it != streams_.end() && it->second.get() == s && s->request_done_) {
    auto owned = std::move(it->second);
    streams_.erase(it);
    w_.loop.defer_delete(std::move(owned));
  }
  maybe_done();
}

void H2cSession::on_stream_drained(int32_t id) {
  auto it = streams_.find(id);
  if (it != streams_.end() && it->second->request != nullptr) {
    it->second->request->on_downstream_drained();
  }
}

void H2cSession::on_stream_refused(int32_t) {
  w_.stats.add(stats::Id::inner_h2c_refused_over_limit);
}

void H2cSession::on_error(const CodecError& error) {
  w_.stats.add(stats::Id::downstream_h2c_protocol_error);
  if (error.counter && *error.counter != stats::Id::downstream_h2c_protocol_error) {
    w_.stats.add(*error.counter);  // the guard that ended the session (empty frames, rapid reset)
  }
  spdlog::debug("{}: h2c session from {} failed: {}", info_.chain, info_.source_principal, error.reason);
  failed_ = true;
  fail_.schedule();  // after the codec's callbacks: flush its GOAWAY, then end the tunnel
}

void H2cSession::flush() {
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

void H2cSession::close_tunnel(bool reset) {
  if (tunnel_ == nullptr) {
    maybe_done();
    return;
  }
  if (reset) {
    hbone::Tunnel* t = tunnel_;
    t->set_handler(nullptr);
    t->reset();
    tunnel_ = nullptr;
    codec_.finish();
    std::vector<int32_t> ids;
    for (auto& [id, s] : streams_) {
      ids.push_back(id);
    }
    for (int32_t id : ids) {
      on_stream_closed(id, 2);
    }
    maybe_done();
    return;
  }
  tunnel_->write_eof();
}

void H2cSession::maybe_done() {
  if (finished_ || tunnel_ != nullptr) {
    return;
  }
  finished_ = true;
  if (done_) {
    auto done = std::move(done_);
    done_ = nullptr;
    done(*this);
  }
}

}  // namespace wp::proxy
