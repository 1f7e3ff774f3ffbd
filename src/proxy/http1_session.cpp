#include <spdlog/spdlog.h>

#include "waypoint/proxy/session.h"

namespace wp::proxy {

Http1Session::Http1Session(WorkerContext& worker, TunnelInfo info, hbone::Tunnel& tunnel, buffer::Buffer initial,
                           bool eof, Done done)
    : w_(worker),
      info_(std::move(info)),
      tunnel_(&tunnel),
      codec_(*this),
      timer_(worker.loop, [this] { on_timer(); }),
      done_(std::move(done)),
      start_(worker.loop,
             [this] {
               started_ = true;
               parse();
             }),
      resume_(worker.loop, [this] {
        codec_.resume();
        const bool next_bytes = !in_.empty();
        parse();
        // Between requests: the next one's head has its deadline once a byte of it is here, else
        // the tunnel is idle (decided only now: inside the codec's callbacks the bytes of the
        // request just answered are still in in_).
        if (current_ == nullptr && !closing_ && tunnel_ != nullptr && wait_ == Wait::None) {
          wait_for(next_bytes ? Wait::Head : Wait::Idle);
        }
      }) {
  in_.move_from(initial);
  wait_for(Wait::Head);      // a tunnel on an HTTP chain is opened to carry a request
  tunnel.set_handler(this);  // may deliver buffered bytes at once: they wait in in_ until started
  // Parse on the next turn: the owner has not stored this session yet.
  eof_ = eof;
  start_.schedule();
}

Http1Session::~Http1Session() {
  current_.reset();
  if (tunnel_ != nullptr) {
    tunnel_->set_handler(nullptr);
    tunnel_->reset();
  }
}

void Http1Session::abort() {
  if (tunnel_ != nullptr) {
    close_tunnel(true);
  }
}

void Http1Session::wait_for(Wait what) {
  using std::chrono::milliseconds;
  const config::HttpSettings& http = info_.snapshot->bootstrap.http;
  wait_ = what;
  switch (what) {
    case Wait::None:
      timer_.stop();
      break;
    case Wait::Head: {
      auto deadline = http.request_headers_timeout;
      if (!head_timer_used_) {
        // The first request's head is due requestHeadersTimeout after the tunnel opened (sniffing
        // its first bytes took part of that).
        head_timer_used_ = true;
        auto spent = std::chrono::duration_cast<milliseconds>(w_.loop.now() - info_.opened);
        deadline = spent >= deadline ? milliseconds(0) : deadline - spent;
      }
      timer_.start(deadline);
      break;
    }
    case Wait::Idle:
      timer_.start(http.idle_timeout);
      break;
    case Wait::Linger:
      timer_.start(milliseconds(2'000));
      break;
  }
}

void Http1Session::on_timer() {
  Wait what = wait_;
  wait_ = Wait::None;
  if (tunnel_ == nullptr) {
    return;
  }
  switch (what) {
    case Wait::Head: {
      if (current_ != nullptr) {
        return;
      }
      CodecError e;
      e.status = 408;
      e.reason = "request header timeout";
      e.counter = stats::Id::downstream_rq_header_timeout;
      on_error(e);
      return;
    }
    case Wait::Idle:
      w_.stats.add(stats::Id::downstream_http_idle_timeout);
      close_tunnel(false);
      return;
    case Wait::Linger:
      close_tunnel(true);  // we ended our side; the client did not end its own
      return;
    case Wait::None:
      return;
  }
}

void Http1Session::on_tunnel_data(hbone::Tunnel&, buffer::Buffer& data) {
  if (wait_ == Wait::Idle && !data.empty()) {
    wait_for(Wait::Head);  // the first bytes of the next request: its head has a deadline now
  }
  in_.move_from(data);
  if (started_) {
    parse();
  }
}

void Http1Session::parse() {
  while (!in_.empty() && tunnel_ != nullptr) {
    CodecState st = codec_.state();
    if (st == CodecState::Paused || st == CodecState::Error) {
      return;
    }
    if (st == CodecState::Closed || closing_) {
      size_t n = in_.length();
      in_.clear();
      tunnel_->consume(n);  // after a "connection: close" message: discarded
      return;
    }
    body_delivered_ = 0;
    size_t n = codec_.feed(in_);  // drains what it parsed; body slices leave by on_body
    if (tunnel_ == nullptr) {
      return;
    }
    size_t framing = n > body_delivered_ ? n - body_delivered_ : 0;
    if (framing > 0) {
      tunnel_->consume(framing);
    }
    if (n == 0 && codec_.state() == CodecState::Running) {
      return;
    }
  }
  if (eof_ && in_.empty() && tunnel_ != nullptr && codec_.state() == CodecState::Running) {
    if (codec_.finish() && current_ == nullptr && !closing_) {
      close_tunnel(false);  // the client is done and nothing is in flight
    }
  }
}

void Http1Session::on_head(RequestHead&& head) {
  wait_for(Wait::None);
  request_done_ = false;
  response_done_ = false;
  current_ =
      std::make_unique<ActiveRequest>(w_, info_, *this, "HTTP/1.1", [this](ActiveRequest& r) { request_finished(r); });
  bool body = head.chunked || (head.content_length && *head.content_length > 0);
  current_->on_request_head(std::move(head), !body);
}

void Http1Session::on_body(buffer::Buffer& data) {
  const size_t len = data.length();
  body_delivered_ += len;
  if (current_ != nullptr) {
    current_->on_request_body(data);
  } else {
    data.clear();
    if (tunnel_ != nullptr) {
      tunnel_->consume(len);
    }
  }
}

void Http1Session::on_trailers(HeaderMap&& trailers) {
  if (current_ != nullptr) {
    current_->on_request_trailers(std::move(trailers));
  }
}

void Http1Session::on_message_complete() {
  request_done_ = true;
  if (current_ != nullptr) {
    current_->on_request_end();
  }
  if (response_done_) {
    response_done();
  }
}

void Http1Session::on_error(const CodecError& error) {
  if (error.counter) {
    w_.stats.add(*error.counter);
  }
  spdlog::debug("{}: bad request from {}: {} ({})", info_.chain, info_.source_principal, error.reason, error.status);
  if (current_ != nullptr && !response_done_) {
    // The body went wrong after the head was accepted: the request answers (or aborts) itself,
    // and the connection ends with it.
    closing_ = true;
    current_->on_request_error(error.status, error.reason);
    close_tunnel(false);
    return;
  }
  accesslog::TunnelRecord r;
  r.start = std::chrono::system_clock::now();
  r.protocol = "HTTP/1.1";
  r.chain = info_.chain;
  r.source_principal = info_.source_principal;
  r.source_address = info_.source_ip.to_string();
  r.destination = info_.destination.to_string();
  r.response_code = error.status;
  r.response_flags = "DPE";  // downstream protocol error
  w_.log.log(r);
  w_.stats.add(stats::Id::downstream_rq_total);
  w_.stats.add(error.status >= 500 ? stats::Id::downstream_rq_5xx : stats::Id::downstream_rq_4xx);
  ResponseHead head;
  head.status = error.status;
  head.keep_alive = false;
  std::string_view body = error.reason;
  head.headers.add("content-type", "text/plain");
  head.content_length = body.size();
  buffer::Buffer out;
  codec_.encode_head(head, out);
  codec_.encode_body(reinterpret_cast<const uint8_t*>(body.data()), body.size(), out);
  codec_.encode_end(out);
  if (tunnel_ != nullptr) {
    tunnel_->write(out);
  }
  close_tunnel(false);
}

void Http1Session::request_finished(ActiveRequest& r) {
  response_done_ = true;
  if ((!request_done_ && r.close_connection()) || codec_.close_after_response() || close_after_ || eof_) {
    closing_ = true;
  }
  if (request_done_ || closing_) {
    response_done();
  }
}

void Http1Session::response_done() {
  if (current_ != nullptr) {
    w_.loop.defer_delete(std::move(current_));
  }
  if (closing_) {
    close_tunnel(false);
    return;
  }
  wait_for(Wait::None);  // Idle or Head: resume_ decides, once the parsed bytes have left in_
  // Resume and parse pipelined requests already received after the current callbacks: this may run
  // inside the codec's own on_message_complete (a local reply), where resume() would be undone by
  // the pause that follows.
  resume_.schedule();
}

void Http1Session::on_tunnel_eof(hbone::Tunnel&) {
  eof_ = true;
  if (started_) {
    parse();
  }
}

void Http1Session::on_tunnel_drained(hbone::Tunnel&, size_t) {
  if (current_ != nullptr) {
    current_->on_downstream_drained();
  }
}

void Http1Session::on_tunnel_closed(hbone::Tunnel&, bool) {
  tunnel_ = nullptr;
  if (current_ != nullptr) {
    current_->on_downstream_reset();
    if (current_ != nullptr) {
      w_.loop.defer_delete(std::move(current_));
    }
  }
  maybe_done();
}

void Http1Session::close_tunnel(bool reset) {
  closing_ = true;
  if (tunnel_ == nullptr) {
    maybe_done();
    return;
  }
  if (reset) {
    hbone::Tunnel* t = tunnel_;
    tunnel_ = nullptr;
    t->set_handler(nullptr);
    t->reset();
    if (current_ != nullptr) {
      current_->on_downstream_reset();
      if (current_ != nullptr) {
        w_.loop.defer_delete(std::move(current_));
      }
    }
    maybe_done();
    return;
  }
  tunnel_->write_eof();  // the stream closes once the client ends its side too
  if (wait_ != Wait::Linger) {
    wait_for(Wait::Linger);  // ... or is reset if it does not
  }
}

void Http1Session::maybe_done() {
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

// ---- DownstreamStream -----------------------------------------------------------------------------

void Http1Session::send_head(ResponseHead& head, bool end_stream) {
  if (tunnel_ == nullptr) {
    return;
  }
  if (!head.keep_alive) {
    close_after_ = true;
  }
  buffer::Buffer out;
  codec_.encode_head(head, out);
  if (end_stream) {
    codec_.encode_end(out);
  }
  tunnel_->write(out);
}

void Http1Session::send_body(buffer::Buffer& data, bool end_stream) {
  if (tunnel_ == nullptr) {
    data.clear();
    return;
  }
  buffer::Buffer out;
  codec_.encode_body(data, out);
  if (end_stream) {
    codec_.encode_end(out);
  }
  if (!out.empty()) {
    tunnel_->write(out);
  }
}

void Http1Session::send_trailers(const HeaderMap& trailers) {
  if (tunnel_ == nullptr) {
    return;
  }
  buffer::Buffer out;
  codec_.encode_end(out, &trailers);
  tunnel_->write(out);
}

void Http1Session::send_continue() {
  if (tunnel_ == nullptr) {
    return;
  }
  buffer::Buffer out;
  Http1ServerCodec::encode_continue(out);
  tunnel_->write(out);
}

void Http1Session::consume(size_t request_body_bytes) {
  if (tunnel_ != nullptr) {
    tunnel_->consume(request_body_bytes);
  }
}

size_t Http1Session::send_pending() const {
  return tunnel_ != nullptr ? tunnel_->write_pending() : 0;
}

}  // namespace wp::proxy
