#include "waypoint/hbone/h2_connection.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace wp::hbone {

// ---------------------------------------------------------------------------------------------
// H2Stream

H2Stream::H2Stream(H2Connection& conn, int32_t id)
    : conn_(conn),
      id_(id),
      header_budget_(conn.settings_.max_header_list_bytes),
      drain_soon_(conn.loop_, [this] { flush_drained(); }) {}

H2Stream::~H2Stream() = default;

const std::string* H2Stream::header(std::string_view name) const {
  for (const auto& [k, v] : headers_) {
    if (k == name) {
      return &v;
    }
  }
  return nullptr;
}

void H2Stream::add_header(std::string_view name, std::string_view value) {
  if (!header_budget_.add(name.size(), value.size())) {
    return;
  }
  headers_.emplace_back(name, value);
}

void H2Stream::set_handler(TunnelHandler* handler) {
  handler_ = handler;
  if (handler_ == nullptr || state_ == State::Closed) {
    return;
  }
  if (!recv_buf_.empty()) {
    handler_->on_tunnel_data(*this, recv_buf_);
  }
  if (remote_eof_ && !eof_delivered_ && handler_ != nullptr && state_ != State::Closed) {
    eof_delivered_ = true;
    handler_->on_tunnel_eof(*this);
  }
}

void H2Stream::write(buffer::Buffer& data) {
  if (state_ == State::Closed || local_eof_) {
    data.clear();
    return;
  }
  send_buf_.move_from(data);
  submit_data_provider_if_needed();
}

void H2Stream::write_eof() {
  if (state_ == State::Closed || local_eof_) {
    return;
  }
  local_eof_ = true;
  submit_data_provider_if_needed();
}

void H2Stream::submit_data_provider_if_needed() {
  if (data_deferred_) {
    data_deferred_ = false;
    nghttp2_session_resume_data(conn_.session_, id_);
  }
  conn_.schedule_send();
}

void H2Stream::consume(size_t bytes) {
  if (state_ == State::Closed || bytes == 0) {
    return;
  }
  bytes = std::min(bytes, unconsumed_);
  unconsumed_ -= bytes;
  nghttp2_session_consume(conn_.session_, id_, bytes);
  conn_.schedule_send();
}

void H2Stream::reset() {
  if (state_ == State::Closed) {
    return;
  }
  nghttp2_submit_rst_stream(conn_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
  conn_.schedule_send();
}

void H2Stream::respond(int status, const HeaderList& extra) {
  if (state_ == State::Closed || state_ == State::Open) {
    return;
  }
  answered_ = true;
  std::string code = std::to_string(status);
  static const std::string kStatus = ":status";
  std::vector<nghttp2_nv> nva = {make_nv(kStatus, code)};
  for (const auto& [k, v] : extra) {
    nva.push_back(make_nv(k, v));
  }
  if (status == 200) {
    state_ = State::Open;
    nghttp2_data_provider provider = H2Connection::data_provider(this);
    nghttp2_submit_response(conn_.session_, id_, nva.data(), nva.size(), &provider);
  } else {
    state_ = State::Pending;
    handler_ = nullptr;
    nghttp2_submit_response(conn_.session_, id_, nva.data(), nva.size(), nullptr);
    // Anything the client already sent, or still sends, is dropped and its window given back.
    size_t held = recv_buf_.length();
    recv_buf_.clear();
    consume(held);
    local_eof_ = true;
    // Once the final HEADERS are out, RST_STREAM(NO_ERROR) tells a client still sending to stop
    // (RFC 9113 §8.1); see on_frame_send_cb. Submitting it now would overtake the HEADERS.
    reset_after_response_ = !remote_eof_;
  }
  conn_.schedule_send();
}

void H2Stream::on_data(const uint8_t* data, size_t len) {
  unconsumed_ += len;
  bool accepting = handler_ != nullptr || (state_ != State::Closed && !local_eof_);
  if (!accepting) {
    consume(len);  // a rejected stream: drop and reopen the window
    return;
  }
  recv_buf_.append(data, len);
  if (handler_ != nullptr) {
    handler_->on_tunnel_data(*this, recv_buf_);
  }
}

void H2Stream::on_remote_eof() {
  remote_eof_ = true;
  if (handler_ != nullptr && recv_buf_.empty() && !eof_delivered_) {
    eof_delivered_ = true;
    handler_->on_tunnel_eof(*this);
  }
}

void H2Stream::on_closed(uint32_t error_code) {
  bool clean = error_code == NGHTTP2_NO_ERROR && remote_eof_ && local_eof_;
  state_ = State::Closed;
  if (unconsumed_ > 0 && conn_.state_ != H2Connection::State::Closed) {
    // Bytes still held anywhere no longer count against the stream; give the connection window back.
    nghttp2_session_consume_connection(conn_.session_, unconsumed_);
    unconsumed_ = 0;
    conn_.schedule_send();
  }
  recv_buf_.clear();
  send_buf_.clear();
  if (auto* cb = connect_cb_) {
    connect_cb_ = nullptr;
    cb->on_connect_failed(0);
  }
  if (handler_ != nullptr && drained_ > 0) {
    size_t n = drained_;  // report what left before the close, so the source can reopen its window
    drained_ = 0;
    handler_->on_tunnel_drained(*this, n);
  }
  if (auto* h = handler_) {
    handler_ = nullptr;
    h->on_tunnel_closed(*this, clean);
  }
}

ssize_t H2Stream::read_data(size_t length, uint32_t* flags) {
  if (send_buf_.empty()) {
    if (local_eof_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    data_deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = std::min(length, send_buf_.length());
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == send_buf_.length() && local_eof_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return static_cast<ssize_t>(n);
}

int H2Stream::send_data(const uint8_t* framehd, size_t length, size_t padlen) {
  auto& sock = *conn_.transport_;
  if (sock.output_full()) {
    return NGHTTP2_ERR_WOULDBLOCK;
  }
  sock.append(framehd, 9);
  if (padlen > 0) {
    uint8_t pad_len_byte = static_cast<uint8_t>(padlen - 1);
    sock.append(&pad_len_byte, 1);
  }
  size_t left = length;
  while (left > 0) {
    auto chunk = send_buf_.front();
    size_t k = std::min(left, chunk.size());
    sock.append(chunk.data(), k);
    send_buf_.drain(k);
    left -= k;
  }
  if (padlen > 1) {
    static const uint8_t zeros[256] = {};
    sock.append(zeros, padlen - 1);
  }
  drained_ += length;
  if (handler_ != nullptr) {
    drain_soon_.schedule();
  }
  return 0;
}

void H2Stream::flush_drained() {
  if (state_ == State::Closed || handler_ == nullptr || drained_ == 0) {
    return;
  }
  size_t n = drained_;
  drained_ = 0;
  handler_->on_tunnel_drained(*this, n);
}

// ---------------------------------------------------------------------------------------------
// H2Connection

H2Connection::H2Connection(event::Loop& loop, Role role, std::unique_ptr<net::Transport> transport,
                           const H2Settings& settings, Owner& owner, stats::Block& stats)
    : loop_(loop),
      role_(role),
      settings_(settings),
      owner_(owner),
      stats_(stats),
      transport_(std::move(transport)),
      keepalive_timer_(loop, [this] { keepalive_tick(); }),
      send_soon_(loop, [this] { send_now(); }),
      empty_frames_(settings.limits.max_consecutive_empty_frames),
      premature_resets_(settings.limits) {
  const H2SessionSettings legal = clamp(session_settings());
  settings_.stream_window = legal.stream_window;
  settings_.connection_window = legal.connection_window;
  settings_.max_frame_size = legal.max_frame_size;
  session_ = new_session(role == Role::Server, callbacks(), this, session_settings());
  if (session_ == nullptr) {
    throw std::bad_alloc();
  }
}

H2Connection::~H2Connection() {
  if (session_ != nullptr) {
    nghttp2_session_del(session_);
  }
}

void H2Connection::start() {
  transport_->start(*this);
}

uint32_t H2Connection::remote_max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

void H2Connection::on_transport_connected() {
  state_ = State::Open;
  // The stream limit is not given to nghttp2, which would enforce it with a connection error; it is
  // added to the SETTINGS frame on its way out (send_cb) and enforced per stream (on_begin_headers).
  inject_stream_limit_ = role_ == Role::Server;
  submit_settings(session_, session_settings());
  if (settings_.keepalive_interval.count() > 0) {
    keepalive_timer_.start(settings_.keepalive_interval, settings_.keepalive_interval);
  }
  on_open();
  send_now();
}

void H2Connection::on_transport_data(const uint8_t* data, size_t len) {
  ssize_t rv = nghttp2_session_mem_recv(session_, data, len);
  if (rv < 0) {
    spdlog::debug("hbone: {} HTTP/2 error from {}: {}", role_ == Role::Server ? "downstream" : "upstream",
                  peer_address_.to_string(), nghttp2_strerror(static_cast<int>(rv)));
    count_protocol_error();
    send_now();  // nghttp2 may have queued a GOAWAY explaining why
    if (state_ != State::Closed) {
      goaway_by_hand(fatal_goaway_code(static_cast<int>(rv), NGHTTP2_PROTOCOL_ERROR));
      transport_->flush();
    }
    if (state_ == State::Closed) {
      return;
    }
    transport_->close(true);
    finish(true);
    return;
  }
  schedule_send();
}

void H2Connection::on_transport_writable() {
  schedule_send();
}

void H2Connection::on_transport_closed(net::CloseReason reason, net::HandshakeFailure failure) {
  if (reason == net::CloseReason::HandshakeFailed) {
    on_handshake_failed(failure);
  }
  finish(true);
}

void H2Connection::schedule_send() {
  if (state_ == State::Closed || state_ == State::Handshaking) {
    return;
  }
  send_soon_.schedule();
}

void H2Connection::send_now() {
  if (state_ == State::Closed || state_ == State::Handshaking || in_send_) {
    return;
  }
  // nghttp2 stops at the socket's high watermark; as long as the kernel takes what was staged,
  // go round again. When the kernel is full, on_transport_writable() brings us back.
  for (;;) {
    in_send_ = true;
    int rv = nghttp2_session_send(session_);
    in_send_ = false;
    if (state_ == State::Closed) {
      return;
    }
    if (rv != 0) {
      // A fatal error while framing (an outbound flood): tell the peer why, as after mem_recv.
      goaway_by_hand(fatal_goaway_code(rv, NGHTTP2_INTERNAL_ERROR));
      count_protocol_error();
      transport_->close(true);
      finish(true);
      return;
    }
    bool stopped_at_watermark = transport_->output_full();
    transport_->flush();
    if (state_ == State::Closed) {
      return;
    }
    if (!stopped_at_watermark || transport_->output_pending() >= net::Transport::kOutputLowWatermark) {
      break;
    }
  }
  maybe_close_when_idle();
}

void H2Connection::maybe_close_when_idle() {
  if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0 &&
      transport_->output_pending() == 0) {
    transport_->close(true);
    finish(true);
  }
}

void H2Connection::drain() {
  if (state_ == State::Closed) {
    return;
  }
  if (state_ == State::Handshaking) {
    close();
    return;
  }
  if (state_ == State::Open) {
    state_ = State::Draining;
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    on_closing();
  }
  send_now();
}

void H2Connection::close() {
  if (state_ == State::Closed) {
    return;
  }
  transport_->close(false);
  finish(true);
}

void H2Connection::finish(bool notify_owner) {
  if (state_ == State::Closed) {
    return;
  }
  bool was_open = state_ != State::Handshaking;
  state_ = State::Closed;
  keepalive_timer_.stop();
  if (was_open) {
    on_closing();
  }
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, stream] : streams) {
    if (stream->state_ != H2Stream::State::Closed) {
      stream->on_closed(NGHTTP2_CANCEL);
      on_stream_removed(*stream);
    }
    loop_.defer_delete(std::move(stream));
  }
  if (notify_owner) {
    owner_.on_connection_closed(*this);
  }
}

void H2Connection::keepalive_tick() {
  if (state_ == State::Closed) {
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (ping_outstanding_) {
    if (now - ping_sent_at_ >= settings_.keepalive_timeout) {
      spdlog::info("hbone: closing connection to {}: PING unanswered for {} ms", peer_address_.to_string(),
                   settings_.keepalive_timeout.count());
      if (role_ == Role::Server) {
        stats_.add(stats::Id::downstream_cx_keepalive_timeout);
      }
      close();
    }
    return;
  }
  ping_outstanding_ = true;
  ping_sent_at_ = now;
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
  schedule_send();
}

H2Stream& H2Connection::add_stream(int32_t id) {
  auto stream = std::make_unique<H2Stream>(*this, id);
  auto* raw = stream.get();
  streams_[id] = std::move(stream);
  return *raw;
}

H2Stream* H2Connection::submit_request(const std::vector<nghttp2_nv>& nva) {
  auto stream = std::make_unique<H2Stream>(*this, 0);
  nghttp2_data_provider provider = data_provider(stream.get());
  int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (id < 0) {
    return nullptr;
  }
  stream->id_ = id;
  auto* raw = stream.get();
  streams_[id] = std::move(stream);
  return raw;
}

nghttp2_data_provider H2Connection::data_provider(H2Stream* stream) {
  nghttp2_data_provider provider{};
  provider.source.ptr = stream;
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags,
                              nghttp2_data_source* source, void*) -> ssize_t {
    return static_cast<H2Stream*>(source->ptr)->read_data(length, flags);
  };
  return provider;
}

H2Stream* H2Connection::find_stream(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

// --- nghttp2 trampolines ----------------------------------------------------------------------

ssize_t H2Connection::send_cb(nghttp2_session*, const uint8_t* data, size_t len, int, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (self->transport_->output_full()) {
    return NGHTTP2_ERR_WOULDBLOCK;
  }
  if (self->inject_stream_limit_ &&
      add_max_concurrent_streams(data, len, self->settings_.max_concurrent_streams, self->scratch_)) {
    self->inject_stream_limit_ = false;
    self->transport_->append(self->scratch_.data(), self->scratch_.size());
    return static_cast<ssize_t>(len);
  }
  self->transport_->append(data, len);
  return static_cast<ssize_t>(len);
}

int H2Connection::send_data_cb(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                               nghttp2_data_source* source, void*) {
  return static_cast<H2Stream*>(source->ptr)->send_data(framehd, length, frame->data.padlen);
}

int H2Connection::on_begin_headers_cb(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (self->role_ == Role::Server && frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (self->streams_.size() >= self->settings_.max_concurrent_streams) {
      // Over the advertised limit: a stream error (RFC 9113 §5.1.2); the other tunnels go on.
      self->stats_.add(stats::Id::tunnels_refused_over_limit);
      nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    self->add_stream(frame->hd.stream_id);
  }
  return 0;
}

int H2Connection::on_header_cb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                               const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  H2Stream* s = self->find_stream(frame->hd.stream_id);
  if (s != nullptr && (s->state_ == H2Stream::State::Headers)) {
    s->add_header({reinterpret_cast<const char*>(name), namelen}, {reinterpret_cast<const char*>(value), valuelen});
  }
  return 0;
}

int H2Connection::on_frame_recv_cb(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (self->empty_frames_.on_frame_recv(*frame)) {
    self->terminate(NGHTTP2_ENHANCE_YOUR_CALM, stats::Id::downstream_cx_empty_frames_overflow,
                    "too many consecutive frames with an empty payload");
    return 0;
  }
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      H2Stream* s = self->find_stream(frame->hd.stream_id);
      if (s == nullptr) {
        return 0;
      }
      if (s->state_ == H2Stream::State::Headers) {
        const std::string* status = s->header(":status");
        if (self->role_ == Role::Client && status != nullptr && status->size() == 3 && (*status)[0] == '1') {
          s->headers_.clear();  // an interim response; the final one follows
          s->header_budget_.reset();
          return 0;
        }
        s->state_ = H2Stream::State::Pending;
        s->headers_done_ = true;
        self->on_headers_complete(*s);
      }
      if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 && s->state_ != H2Stream::State::Closed) {
        s->on_remote_eof();
      }
      return 0;
    }
    case NGHTTP2_DATA:
      if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        if (H2Stream* s = self->find_stream(frame->hd.stream_id)) {
          s->on_remote_eof();
        }
      }
      return 0;
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && !self->remote_settings_seen_) {
        self->remote_settings_seen_ = true;
        self->on_remote_settings();
      }
      return 0;
    case NGHTTP2_PING:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
        self->ping_outstanding_ = false;
      }
      return 0;
    case NGHTTP2_RST_STREAM:
      if (H2Stream* s = self->find_stream(frame->hd.stream_id)) {
        s->reset_by_peer_ = true;
      }
      return 0;
    case NGHTTP2_GOAWAY:
      if (self->state_ == State::Open) {
        self->state_ = State::Draining;
        self->on_closing();
      }
      return 0;
    default:
      return 0;
  }
}

void H2Connection::count_protocol_error() {
  if (role_ == Role::Server && !protocol_error_counted_) {
    protocol_error_counted_ = true;
    stats_.add(stats::Id::downstream_cx_protocol_error);
  }
}

int H2Connection::on_frame_send_cb(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    self->goaway_sent_ = true;
  }
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    // nghttp2 detected a connection error (bad frame, flow-control violation, flood, ...).
    spdlog::debug("hbone: GOAWAY({}) to {}", nghttp2_http2_strerror(frame->goaway.error_code),
                  self->peer_address_.to_string());
    self->count_protocol_error();
  }
  if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    H2Stream* s = self->find_stream(frame->hd.stream_id);
    if (s != nullptr && s->reset_after_response_ && !s->remote_eof_) {
      s->reset_after_response_ = false;
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
  }
  return 0;
}

int H2Connection::on_data_chunk_recv_cb(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                                        size_t len, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  H2Stream* s = self->find_stream(stream_id);
  if (s == nullptr) {
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  s->on_data(data, len);
  return 0;
}

int H2Connection::on_stream_close_cb(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
  auto* self = static_cast<H2Connection*>(user);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) {
    return 0;
  }
  auto stream = std::move(it->second);
  self->streams_.erase(it);
  stream->on_closed(error_code);
  self->on_stream_removed(*stream);
  bool premature_flood = self->role_ == Role::Server && self->premature_resets_.on_stream_closed(
                                                            stream->reset_by_peer_, stream->answered_,
                                                            std::chrono::steady_clock::now() - stream->created_at_);
  self->loop_.defer_delete(std::move(stream));
  if (premature_flood) {
    self->terminate(NGHTTP2_ENHANCE_YOUR_CALM, stats::Id::downstream_cx_premature_reset,
                    "most streams were reset before they were answered (rapid reset)");
  }
  return 0;
}

// After a fatal nghttp2 error nghttp2 frames nothing more: the GOAWAY that tells the peer why is
// written by hand, unless one already left.
void H2Connection::goaway_by_hand(uint32_t error_code) {
  if (goaway_sent_) {
    return;
  }
  goaway_sent_ = true;
  auto frame = goaway_frame(nghttp2_session_get_last_proc_stream_id(session_), error_code);
  transport_->append(frame.data(), frame.size());
}

void H2Connection::terminate(uint32_t error_code, stats::Id counter, const char* why) {
  if (state_ == State::Closed || terminated_) {
    return;
  }
  terminated_ = true;
  if (role_ == Role::Server) {
    stats_.add(counter);
    count_protocol_error();
  }
  spdlog::info("hbone: closing the connection {} {}: {}", role_ == Role::Server ? "from" : "to",
               peer_address_.to_string(), why);
  // GOAWAY now; nghttp2 then reads nothing more and wants no writes, and send_now closes.
  nghttp2_session_terminate_session(session_, error_code);
  if (state_ == State::Open) {
    state_ = State::Draining;
    on_closing();
  }
  schedule_send();
}

nghttp2_session_callbacks* H2Connection::callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_send_callback(c, &H2Connection::send_cb);
    nghttp2_session_callbacks_set_send_data_callback(c, &H2Connection::send_data_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, &H2Connection::on_begin_headers_cb);
    nghttp2_session_callbacks_set_on_header_callback(c, &H2Connection::on_header_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, &H2Connection::on_frame_recv_cb);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, &H2Connection::on_frame_send_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, &H2Connection::on_data_chunk_recv_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, &H2Connection::on_stream_close_cb);
    return c;
  }();
  return cbs;
}

}  // namespace wp::hbone
