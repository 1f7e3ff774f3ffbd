#include "support/pod_http.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "waypoint/http/h2c_codec.h"
#include "waypoint/http/http1_codec.h"

namespace wp::testing {

// ---------------------------------------------------------------------------------------------
// Recorder

size_t PodHttpRecorder::request_started(RecordedRequest&& r) {
  size_t index;
  {
    std::lock_guard<std::mutex> lock(pod_.mu_);
    pod_.requests_.push_back(std::move(r));
    index = pod_.requests_.size() - 1;
  }
  pod_.http_requests_++;  // after recording: a test that saw the count finds the request
  return index;
}

void PodHttpRecorder::request_body(size_t index, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(pod_.mu_);
  if (index < pod_.requests_.size()) {
    pod_.requests_[index].body_bytes = bytes;
  }
}

std::optional<int> PodHttpRecorder::take_failure() {
  std::lock_guard<std::mutex> lock(pod_.mu_);
  if (pod_.fail_remaining_ <= 0) {
    return std::nullopt;
  }
  pod_.fail_remaining_--;
  return pod_.fail_status_;
}

void PodHttpRecorder::error() {
  pod_.http_errors_++;
}

namespace {

constexpr size_t kHighWater = 1 << 20;   // tunnel bytes written and not yet handed on: stop producing
constexpr size_t kH2cQueue = 256 << 10;  // h2c: generated body bytes queued per stream
constexpr size_t kChunk = 16384;
constexpr std::string_view kPreface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
constexpr uint32_t kInternalError = 2;  // HTTP/2 INTERNAL_ERROR

std::optional<uint64_t> header_number(const http::HeaderMap& h, std::string_view name) {
  auto v = h.get(name);
  if (!v) {
    return std::nullopt;
  }
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || ptr != v->data() + v->size()) {
    return std::nullopt;
  }
  return n;
}

bool header_flag(const http::HeaderMap& h, std::string_view name) {
  auto v = h.get(name);
  return v && (*v == "1" || *v == "true");
}

// What a request asks for.
struct Plan {
  enum class Kind : uint8_t {
    Echo,   // head at once (after the delay), the body echoed as it arrives
    Fixed,  // head once the request body arrived: status + body_bytes of the pattern
    Reset,  // no answer: the tunnel / stream is reset (after the delay)
  };
  Kind kind = Kind::Echo;
  int status = 200;
  uint64_t body_bytes = 0;
  bool chunked = false;
  bool close = false;
  uint64_t delay_ms = 0;
};

Plan plan_for(const http::HeaderMap& h, PodHttpRecorder& recorder) {
  Plan p;
  if (auto status = recorder.take_failure()) {
    p.kind = Plan::Kind::Fixed;
    p.status = *status;
    return p;
  }
  p.delay_ms = header_number(h, "x-delay-ms").value_or(0);
  p.chunked = header_flag(h, "x-chunked");
  p.close = header_flag(h, "x-close");
  if (header_flag(h, "x-reset")) {
    p.kind = Plan::Kind::Reset;
    return p;
  }
  if (auto s = header_number(h, "x-status")) {
    p.kind = Plan::Kind::Fixed;
    p.status = *s >= 200 && *s <= 999 ? static_cast<int>(*s) : 200;
  }
  if (auto n = header_number(h, "x-body-bytes")) {
    p.kind = Plan::Kind::Fixed;
    p.body_bytes = *n;
  }
  return p;
}

// The request fields a response reflects.
struct Seen {
  std::optional<std::string> request_id, traceparent;
  explicit Seen(const http::HeaderMap& h) {
    if (auto v = h.get("x-request-id")) {
      request_id = std::string(*v);
    }
    if (auto v = h.get("traceparent")) {
      traceparent = std::string(*v);
    }
  }
};

http::ResponseHead make_head(int status, const std::string& pod, const Seen& seen,
                             std::optional<uint64_t> request_body_bytes) {
  http::ResponseHead head;
  head.status = status;
  head.headers.add("x-pod", pod);
  if (request_body_bytes) {
    head.headers.add("x-request-body-bytes", std::to_string(*request_body_bytes));
  }
  if (seen.request_id) {
    head.headers.add("x-seen-request-id", *seen.request_id);
  }
  if (seen.traceparent) {
    head.headers.add("x-seen-traceparent", *seen.traceparent);
  }
  return head;
}

// Appends n pattern bytes starting at body offset `offset`.
void append_pattern(buffer::Buffer& out, uint64_t offset, size_t n) {
  char tmp[kChunk];
  while (n > 0) {
    size_t k = std::min(n, sizeof(tmp));
    for (size_t i = 0; i < k; ++i) {
      tmp[i] = pod_body_byte(offset + i);
    }
    out.append(tmp, k);
    offset += k;
    n -= k;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1: one request at a time (the codec pauses after each message and is resumed once its
// response is complete), so pipelined requests are answered in order. Tunnel bytes are fed to the
// codec, and consumed, only while less than kHighWater of our output waits in the tunnel.

class Http1Server final : public PodHttpServer, private http::Http1ServerCallbacks {
 public:
  Http1Server(event::Loop& loop, PodHttpRecorder& recorder, hbone::Tunnel& tunnel)
      : recorder_(recorder), tunnel_(&tunnel), codec_(*this), timer_(loop, [this] { on_timer(); }) {}

  void on_data(buffer::Buffer& data) override {
    if (state_ != State::Serving) {
      discard(data);
      return;
    }
    in_.move_from(data);
    pump();
  }
  void on_eof() override {
    eof_ = true;
    pump();
  }
  void on_drained() override { pump(); }
  void on_closed() override {
    tunnel_ = nullptr;
    state_ = State::Gone;
    timer_.stop();
  }

 private:
  enum class State : uint8_t {
    Serving,  // reading requests
    Done,     // the tunnel ended (EOF sent or reset): input is discarded
    Gone,     // the tunnel is closed
  };

  struct Request {
    size_t record = 0;
    Plan plan;
    Seen seen;
    std::optional<uint64_t> length;  // the request body's length when known (not chunked)
    uint64_t body = 0;
    bool body_done = false;
    bool delay_done = true;
    bool head_sent = false;
    bool response_done = false;
    uint64_t generated = 0;
    buffer::Buffer held;  // echo bytes that arrived before the response head
    explicit Request(const http::HeaderMap& h) : seen(h) {}
  };

  void discard(buffer::Buffer& data) {
    size_t n = data.length();
    data.clear();
    if (tunnel_ != nullptr) {
      tunnel_->consume(n);
    }
  }

  void pump() {
    if (in_pump_) {
      return;
    }
    in_pump_ = true;
    while (state_ == State::Serving) {
      advance();
      if (state_ != State::Serving) {
        break;
      }
      if (cur_ && cur_->response_done) {
        cur_.reset();
      }
      if (cur_ && (cur_->body_done || (cur_->plan.kind == Plan::Kind::Echo && !cur_->head_sent))) {
        break;  // waiting for the delay or for room to write the response
      }
      if (tunnel_->write_pending() >= kHighWater) {
        break;
      }
      if (codec_.state() == http::CodecState::Paused) {
        codec_.resume();  // the previous response is complete
      }
      if (in_.empty()) {
        if (eof_) {
          // A request cut short is reported through on_error, which ends the tunnel.
          if (codec_.finish() && state_ == State::Serving && !cur_) {
            end_tunnel();
          }
        }
        break;
      }
      std::span<const uint8_t> f = in_.front();
      size_t n = codec_.feed(f.data(), f.size());
      in_.drain(n);
      if (tunnel_ != nullptr) {
        tunnel_->consume(n);
      }
      if (n == 0 && codec_.state() == http::CodecState::Running) {
        break;  // cannot happen: a running codec takes bytes
      }
    }
    if (state_ != State::Serving) {
      discard(in_);
    }
    in_pump_ = false;
  }

  // Moves the current response forward as far as the delay, the request and the tunnel allow.
  void advance() {
    if (!cur_ || state_ != State::Serving) {
      return;
    }
    Request& r = *cur_;
    if (!r.head_sent) {
      if (!r.delay_done) {
        return;
      }
      if (r.plan.kind == Plan::Kind::Reset) {
        tunnel_->reset();
        state_ = State::Done;
        return;
      }
      if (r.plan.kind == Plan::Kind::Fixed && !r.body_done) {
        return;
      }
      send_head();
    }
    buffer::Buffer out;
    if (r.plan.kind == Plan::Kind::Echo) {
      if (!r.held.empty()) {
        buffer::Buffer held = std::move(r.held);
        r.held = buffer::Buffer();
        while (!held.empty()) {
          std::span<const uint8_t> f = held.front();
          codec_.encode_body(f.data(), f.size(), out);
          held.drain(f.size());
        }
      }
      write(out);
      if (r.body_done && !r.response_done) {
        end_response();
      }
      return;
    }
    while (r.generated < r.plan.body_bytes && tunnel_->write_pending() < kHighWater) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, r.plan.body_bytes - r.generated));
      buffer::Buffer chunk;
      append_pattern(chunk, r.generated, n);
      std::span<const uint8_t> f = chunk.front();  // one slice: kChunk fits a large slice
      codec_.encode_body(f.data(), f.size(), out);
      r.generated += n;
      write(out);
    }
    if (r.generated == r.plan.body_bytes && !r.response_done) {
      end_response();
    }
  }

  void send_head() {
    Request& r = *cur_;
    std::optional<uint64_t> after_body;
    if (r.plan.kind == Plan::Kind::Fixed) {
      after_body = r.body;
    }
    http::ResponseHead head = make_head(r.plan.status, recorder_.name(), r.seen, after_body);
    if (!r.plan.chunked) {
      head.content_length = r.plan.kind == Plan::Kind::Fixed ? std::optional<uint64_t>(r.plan.body_bytes) : r.length;
    }
    head.keep_alive = !r.plan.close;
    buffer::Buffer out;
    codec_.encode_head(head, out);
    write(out);
    r.head_sent = true;
  }

  void end_response() {
    buffer::Buffer out;
    codec_.encode_end(out);
    write(out);
    cur_->response_done = true;
    if (codec_.close_after_response()) {
      end_tunnel();
    }
  }

  // What is left in in_ is discarded by pump() (it may be under the parser right now).
  void end_tunnel() {
    tunnel_->write_eof();
    state_ = State::Done;
    timer_.stop();
  }

  void write(buffer::Buffer& out) {
    if (!out.empty() && tunnel_ != nullptr) {
      tunnel_->write(out);
    }
  }

  void on_timer() {
    if (cur_ && state_ == State::Serving) {
      cur_->delay_done = true;
      pump();
    }
  }

  // Http1ServerCallbacks
  void on_head(http::RequestHead&& head) override {
    if (state_ != State::Serving) {
      return;
    }
    cur_.emplace(head.headers);
    Request& r = *cur_;
    r.plan = plan_for(head.headers, recorder_);
    r.length = head.chunked ? std::nullopt : std::optional<uint64_t>(head.content_length.value_or(0));
    r.record = recorder_.request_started(
        RecordedRequest{head.method, head.target, head.authority, std::move(head.headers), 0, false});
    if (head.expect_continue) {
      buffer::Buffer out;
      http::Http1ServerCodec::encode_continue(out);
      write(out);
    }
    if (r.plan.delay_ms > 0) {
      r.delay_done = false;
      timer_.start(std::chrono::milliseconds(r.plan.delay_ms));
    }
    advance();  // an echo's head goes out before its body
  }

  void on_body(buffer::Buffer& data) override {
    if (!cur_ || state_ != State::Serving) {
      data.clear();
      return;
    }
    Request& r = *cur_;
    r.body += data.length();
    if (r.plan.kind != Plan::Kind::Echo) {
      data.clear();
      return;  // read and discarded
    }
    if (!r.head_sent) {
      r.held.move_from(data);
      return;
    }
    buffer::Buffer out;
    codec_.encode_body(data, out);
    write(out);
  }

  void on_trailers(http::HeaderMap&&) override {}

  void on_message_complete() override {
    if (!cur_ || state_ != State::Serving) {
      return;
    }
    cur_->body_done = true;
    recorder_.request_body(cur_->record, cur_->body);
    advance();
  }

  void on_error(const http::CodecError& e) override {
    recorder_.error();
    if (state_ != State::Serving) {
      return;
    }
    if (cur_) {
      recorder_.request_body(cur_->record, cur_->body);
      if (cur_->head_sent) {
        tunnel_->reset();  // a response is under way: nothing else can be said
        state_ = State::Done;
        return;
      }
    }
    cur_.reset();
    timer_.stop();
    http::ResponseHead head;
    head.status = e.status;
    head.headers.add("x-pod", recorder_.name());
    head.content_length = 0;
    head.keep_alive = false;
    buffer::Buffer out;
    codec_.encode_head(head, out);
    codec_.encode_end(out);
    write(out);
    end_tunnel();
  }

  PodHttpRecorder& recorder_;
  hbone::Tunnel* tunnel_;
  http::Http1ServerCodec codec_;
  event::Timer timer_;
  State state_ = State::Serving;
  buffer::Buffer in_;  // received, not yet parsed (nor consumed)
  std::optional<Request> cur_;
  bool eof_ = false;
  bool in_pump_ = false;
};

// ---------------------------------------------------------------------------------------------
// h2c: streams are answered independently. Tunnel bytes are fed at once (the h2c windows bound
// what a client can send); an echoed stream's DATA is consumed (its window reopened) only once its
// echo has been framed, and output is pulled from the codec only while the tunnel has room.

class H2cServer final : public PodHttpServer, private http::H2cServerCallbacks {
 public:
  H2cServer(event::Loop& loop, PodHttpRecorder& recorder, hbone::Tunnel& tunnel)
      : loop_(loop), recorder_(recorder), tunnel_(&tunnel), codec_(*this) {}

  ~H2cServer() override { dying_ = true; }

  void on_data(buffer::Buffer& data) override {
    if (failed_ || eof_sent_) {
      size_t n = data.length();
      data.clear();
      if (tunnel_ != nullptr) {
        tunnel_->consume(n);
      }
      return;
    }
    in_.move_from(data);
    pump();
  }
  void on_eof() override {
    eof_ = true;
    pump();
  }
  void on_drained() override { pump(); }
  void on_closed() override {
    tunnel_ = nullptr;
    for (auto& [id, s] : streams_) {
      s->timer.reset();
    }
  }

 private:
  struct Stream final : event::DeferredDeletable {
    int32_t id = 0;
    size_t record = 0;
    Plan plan;
    Seen seen;
    std::optional<uint64_t> length;  // the request's content-length
    uint64_t received = 0;
    uint64_t consumed = 0;
    uint64_t generated = 0;
    bool body_done = false;
    bool delay_done = true;
    bool head_sent = false;
    bool ended = false;  // END_STREAM (or RST_STREAM) submitted
    bool closed = false;
    buffer::Buffer held;  // echo bytes not yet given to the codec
    std::unique_ptr<event::Timer> timer;
    explicit Stream(const http::HeaderMap& h) : seen(h) {}
  };

  void pump() {
    if (in_pump_ || tunnel_ == nullptr) {
      return;
    }
    in_pump_ = true;
    while (!failed_ && !in_.empty() && tunnel_ != nullptr && tunnel_->write_pending() < kHighWater) {
      std::span<const uint8_t> f = in_.front();
      size_t n = f.size();
      bool ok = codec_.feed(f.data(), n);
      in_.drain(n);
      tunnel_->consume(n);
      drive_all();
      flush();
      if (!ok) {
        failed_ = true;
      }
    }
    drive_all();
    flush();
    if (tunnel_ != nullptr && !eof_sent_ && (failed_ || (eof_ && in_.empty()))) {
      if (!failed_) {
        codec_.finish();
        flush();
      }
      tunnel_->write_eof();
      eof_sent_ = true;
      in_.clear();
    }
    in_pump_ = false;
  }

  void flush() {
    // Several rounds: callbacks during output() may queue more (a drained stream generates).
    for (int i = 0; i < 8 && tunnel_ != nullptr; ++i) {
      if (!failed_ && tunnel_->write_pending() >= kHighWater) {
        return;
      }
      buffer::Buffer out;
      codec_.output(out);
      drive_all();
      if (out.empty() && !codec_.want_output()) {
        return;
      }
      tunnel_->write(out);
    }
  }

  void drive_all() {
    std::vector<Stream*> all;
    all.reserve(streams_.size());
    for (auto& [id, s] : streams_) {
      all.push_back(s.get());
    }
    for (Stream* s : all) {
      drive(*s);
    }
  }

  void drive(Stream& s) {
    if (s.closed || failed_) {
      return;
    }
    if (!s.head_sent) {
      if (!s.delay_done) {
        return;
      }
      if (s.plan.kind == Plan::Kind::Reset) {
        s.head_sent = true;
        s.ended = true;
        codec_.reset(s.id, kInternalError);
        return;
      }
      if (s.plan.kind == Plan::Kind::Fixed && !s.body_done) {
        return;
      }
      std::optional<uint64_t> after_body;
      if (s.plan.kind == Plan::Kind::Fixed) {
        after_body = s.received;
      }
      http::ResponseHead head = make_head(s.plan.status, recorder_.name(), s.seen, after_body);
      bool end_stream;
      if (s.plan.kind == Plan::Kind::Fixed) {
        head.content_length = s.plan.body_bytes;
        end_stream = s.plan.body_bytes == 0;
      } else {
        head.content_length = s.length;
        if (!head.content_length && s.body_done) {
          head.content_length = s.received;  // all of it is held
        }
        end_stream = s.body_done && s.received == 0;
      }
      s.head_sent = true;
      s.ended = end_stream;
      codec_.respond(s.id, head, end_stream);
      if (s.ended) {
        return;
      }
    }
    if (s.plan.kind == Plan::Kind::Echo) {
      if (!s.ended && (!s.held.empty() || s.body_done)) {
        s.ended = s.body_done;
        buffer::Buffer b = std::move(s.held);
        s.held = buffer::Buffer();
        codec_.send_body(s.id, b, s.ended);
      }
      if (!s.closed) {
        // Echoed bytes that were framed: reopen the client's window for that many.
        uint64_t framed = s.received - s.held.length() - codec_.pending_body(s.id);
        if (framed > s.consumed) {
          codec_.consume(s.id, static_cast<size_t>(framed - s.consumed));
          s.consumed = framed;
        }
      }
      return;
    }
    while (!s.ended && s.generated < s.plan.body_bytes && !s.closed && codec_.pending_body(s.id) < kH2cQueue) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, s.plan.body_bytes - s.generated));
      buffer::Buffer b;
      append_pattern(b, s.generated, n);
      s.generated += n;
      s.ended = s.generated == s.plan.body_bytes;
      codec_.send_body(s.id, b, s.ended);
    }
  }

  Stream* find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  // H2cServerCallbacks
  void on_request(int32_t id, http::RequestHead&& head, bool) override {
    if (dying_) {
      return;
    }
    auto s = std::make_unique<Stream>(head.headers);
    s->id = id;
    s->plan = plan_for(head.headers, recorder_);
    s->length = head.content_length;
    s->record = recorder_.request_started(
        RecordedRequest{head.method, head.target, head.authority, std::move(head.headers), 0, true});
    if (s->plan.delay_ms > 0) {
      s->delay_done = false;
      Stream* raw = s.get();
      s->timer = std::make_unique<event::Timer>(loop_, [this, raw] {
        raw->delay_done = true;
        drive(*raw);
        flush();
      });
      s->timer->start(std::chrono::milliseconds(s->plan.delay_ms));
    }
    streams_[id] = std::move(s);
  }

  void on_request_body(int32_t id, buffer::Buffer& data) override {
    const size_t len = data.length();
    Stream* s = find(id);
    if (s == nullptr || dying_) {
      data.clear();
      return;
    }
    s->received += len;
    if (s->plan.kind == Plan::Kind::Echo && !s->ended) {
      s->held.move_from(data);
    } else {
      data.clear();
      codec_.consume(id, len);  // read and discarded
      s->consumed += len;
    }
  }

  void on_request_trailers(int32_t, http::HeaderMap&&) override {}

  void on_request_end(int32_t id) override {
    Stream* s = find(id);
    if (s == nullptr || dying_) {
      return;
    }
    s->body_done = true;
    recorder_.request_body(s->record, s->received);
  }

  void on_stream_closed(int32_t id, uint32_t) override {
    auto it = streams_.find(id);
    if (it == streams_.end() || dying_) {
      return;
    }
    Stream& s = *it->second;
    s.closed = true;
    if (!s.body_done) {
      recorder_.request_body(s.record, s.received);
    }
    if (s.timer) {
      s.timer->stop();  // destroyed with the stream, never from its own callback
    }
    loop_.defer_delete(std::move(it->second));  // drive_all may hold a pointer to it
    streams_.erase(it);
  }

  void on_stream_drained(int32_t id) override {
    if (Stream* s = find(id); s != nullptr && !dying_) {
      drive(*s);
    }
  }

  void on_error(const http::CodecError&) override {
    if (dying_) {
      return;
    }
    recorder_.error();
    failed_ = true;  // pump() flushes the GOAWAY and ends the tunnel
  }

  event::Loop& loop_;
  PodHttpRecorder& recorder_;
  hbone::Tunnel* tunnel_;
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;  // before codec_: outlives it
  http::H2cServerCodec codec_;
  buffer::Buffer in_;
  bool eof_ = false;
  bool eof_sent_ = false;
  bool failed_ = false;
  bool in_pump_ = false;
  bool dying_ = false;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Session: protocol detection

PodHttpSession::PodHttpSession(event::Loop& loop, PodHttpRecorder& recorder, hbone::Tunnel& tunnel)
    : loop_(loop), recorder_(recorder), tunnel_(&tunnel) {}

PodHttpSession::~PodHttpSession() = default;

void PodHttpSession::start(bool h2c) {
  if (h2c) {
    server_ = std::make_unique<H2cServer>(loop_, recorder_, *tunnel_);
  } else {
    server_ = std::make_unique<Http1Server>(loop_, recorder_, *tunnel_);
  }
  if (!sniffed_.empty()) {
    server_->on_data(sniffed_);
  }
}

void PodHttpSession::on_data(buffer::Buffer& data) {
  if (server_) {
    server_->on_data(data);
    return;
  }
  if (tunnel_ == nullptr) {
    data.clear();
    return;
  }
  sniffed_.move_from(data);
  char head[kPreface.size()];
  size_t n = sniffed_.copy_out(head, sizeof(head));
  if (std::string_view(head, n) != kPreface.substr(0, n)) {
    start(false);
  } else if (n == kPreface.size()) {
    start(true);
  }
}

void PodHttpSession::on_eof() {
  if (tunnel_ == nullptr) {
    return;
  }
  if (!server_) {
    start(false);  // too short for a preface: HTTP/1.1 decides what it was
  }
  server_->on_eof();
}

void PodHttpSession::on_drained() {
  if (server_) {
    server_->on_drained();
  }
}

void PodHttpSession::on_closed() {
  tunnel_ = nullptr;
  if (server_) {
    server_->on_closed();
  }
}

}  // namespace wp::testing
