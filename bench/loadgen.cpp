// wp-loadgen: the benchmark load generator, on the project's own libraries.
//
// Two ways in:
//   --mode hbone  C HBONE connections (mTLS HTTP/2) x T CONNECT tunnels each, to --authority; inside
//                 each tunnel HTTP/1.1 keep-alive (one request in flight), h2c (M concurrent
//                 streams) or raw TCP (16 KiB writes as fast as flow control allows).
//   --mode h2     plain mTLS HTTP/2 (no CONNECT), C connections x M concurrent streams: the same
//                 requests, for peers (HAProxy, nghttpx) and for pods' plain ports.
// Closed loop (--rate 0): every slot sends its next request as soon as the previous one is answered.
// Open loop (--rate R): requests are due at t0 + i/R for the whole run; a request waits in a backlog
// when no slot is free, and its latency counts from when it was due (no coordinated omission). Due
// times are kept with a timerfd (nanosecond deadlines, 1 us timer slack), not libuv's ms timers.
// --idle opens the tunnels, prints `established N`, and holds them for --duration.
//
// Results of the measured window (after --warmup): requests/s, latency percentiles (log-linear
// histogram, < 1 % error), errors by kind, response statuses; as a table, and as JSON (--json FILE).
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/histogram.h"
#include "waypoint/event/loop.h"
#include "waypoint/hbone/pool.h"
#include "waypoint/http/h2c_codec.h"
#include "waypoint/net/socket.h"
#include "waypoint/stats/stats.h"
#include "waypoint/tls/context.h"
#include "waypoint/tls/socket.h"

namespace {

using namespace wp;
using wp::bench::Histogram;

struct Options {
  std::string mode = "hbone";   // hbone | h2
  std::string proto = "http1";  // hbone: http1 | h2c | tcp
  std::string target;           // ip:port to connect to
  std::string authority;        // hbone: the CONNECT authority (service VIP:port or pod IP:port)
  std::string identity;         // the server's SPIFFE ID ("" = any in the trust domain)
  std::string cert, key, root, trust_domain = "cluster.local";
  std::string host = "bench";  // Host / :authority of the inner requests
  std::string path = "/";
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> headers;
  int connections = 1, tunnels = 1, streams = 1;
  uint64_t request_bytes = 0;
  int64_t response_bytes = 1024;  // sent as x-body-bytes; -1: not sent
  size_t write_size = 16384;      // tcp
  double duration = 10, warmup = 1, rate = 0;
  bool idle = false;
  std::string json, label;
};

uint64_t now_ns() {
  return uv_hrtime();
}

class Driver;

// A place requests go: an HTTP/1.1 tunnel (1 in flight), an h2c tunnel or plain HTTP/2 connection
// (M in flight), or a TCP tunnel (a byte pump, no requests).
class Lane {
 public:
  virtual ~Lane() = default;
  virtual uint32_t free_slots() const = 0;
  virtual void issue(uint64_t due_ns) = 0;
  bool ready = false;   // established
  bool failed = false;  // could not be established, or lost
};

class Driver {
 public:
  Driver(event::Loop& loop, const Options& o) : loop_(loop), o_(o) {}
  void start_load();
  void dispatch();
  void complete(uint64_t due_ns, int status);
  void error(const std::string& kind) { ++errors_[kind]; }
  void lane_settled();
  void bytes_sent(size_t n) {
    if (running_) {
      tcp_bytes_total_ += n;
      if (measuring(now_ns())) {
        tcp_bytes_ += n;
      }
    }
  }
  bool running() const { return running_; }
  bool measuring(uint64_t t) const { return running_ && t >= measure_start_ && t < measure_end_; }
  void add_lane(std::unique_ptr<Lane> l) { lanes_.push_back(std::move(l)); }
  void finish();
  void report();
  void on_tick();
  size_t settled() const { return settled_; }
  size_t lane_count() const { return lanes_.size(); }

  event::Loop& loop_;
  const Options& o_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  size_t settled_ = 0;
  bool running_ = false, finished_ = false;
  uint64_t t0_ = 0, measure_start_ = 0, measure_end_ = 0;
  Histogram hist_;
  std::map<std::string, uint64_t> errors_;
  std::map<int, uint64_t> statuses_;
  uint64_t completed_ = 0, tcp_bytes_ = 0;
  uint64_t requests_total_ = 0, tcp_bytes_total_ = 0;  // warm-up included (for CPU per request)
  uint64_t backlog_peak_ = 0;
  // Open loop.
  std::deque<uint64_t> backlog_;
  uint64_t next_index_ = 0;
  int tfd_ = -1;
  uv_poll_t* tpoll_ = nullptr;
  size_t rr_ = 0;
  rusage ru_start_{};
  std::unique_ptr<event::Timer> end_timer_;
  std::function<void()> on_finished;
};

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 response reader: status line and fields up to the blank line, then a Content-Length or
// chunked body (read and dropped).
class Http1Reader {
 public:
  enum class Result { More, Done, Error };
  Result feed(const uint8_t*& p, const uint8_t* end) {
    while (p < end) {
      switch (state_) {
        case State::Head: {
          const uint8_t* stop = end;
          size_t old = head_.size();
          head_.append(reinterpret_cast<const char*>(p), static_cast<size_t>(stop - p));
          size_t from = old >= 3 ? old - 3 : 0;
          size_t blank = head_.find("\r\n\r\n", from);
          if (blank == std::string::npos) {
            p = stop;
            if (head_.size() > 65536) {
              return Result::Error;
            }
            return Result::More;
          }
          p += blank + 4 - old;
          if (!parse_head(blank)) {
            return Result::Error;
          }
          head_.clear();
          if (state_ == State::Head) {
            return Result::Done;  // no body
          }
          break;
        }
        case State::Body: {
          size_t n = static_cast<size_t>(std::min<uint64_t>(left_, static_cast<uint64_t>(end - p)));
          p += n;
          left_ -= n;
          if (left_ == 0) {
            state_ = State::Head;
            return Result::Done;
          }
          break;
        }
        case State::ChunkSize: {
          uint8_t c = *p++;
          if (c == '\n') {
            if (chunk_ == 0) {
              state_ = State::Trailer;
              line_len_ = 0;
            } else {
              left_ = chunk_;
              state_ = State::ChunkData;
            }
          } else if (c == ';' || c == '\r') {
            in_ext_ = true;
          } else if (!in_ext_) {
            int d = std::isdigit(c)                                      ? c - '0'
                    : (std::tolower(c) >= 'a' && std::tolower(c) <= 'f') ? std::tolower(c) - 'a' + 10
                                                                         : -1;
            if (d < 0 || chunk_ > (1ull << 40)) {
              return Result::Error;
            }
            chunk_ = chunk_ * 16 + static_cast<uint64_t>(d);
          }
          break;
        }
        case State::ChunkData: {
          size_t n = static_cast<size_t>(std::min<uint64_t>(left_, static_cast<uint64_t>(end - p)));
          p += n;
          left_ -= n;
          if (left_ == 0) {
            state_ = State::ChunkCrlf;
            left_ = 2;
          }
          break;
        }
        case State::ChunkCrlf: {
          ++p;
          if (--left_ == 0) {
            state_ = State::ChunkSize;
            chunk_ = 0;
            in_ext_ = false;
          }
          break;
        }
        case State::Trailer: {
          uint8_t c = *p++;
          if (c == '\n') {
            if (line_len_ == 0) {
              state_ = State::Head;
              return Result::Done;
            }
            line_len_ = 0;
          } else if (c != '\r') {
            ++line_len_;
          }
          break;
        }
      }
    }
    return Result::More;
  }
  int status() const { return status_; }

 private:
  enum class State { Head, Body, ChunkSize, ChunkData, ChunkCrlf, Trailer };
  bool parse_head(size_t blank) {
    if (head_.size() < 12 || head_.compare(0, 5, "HTTP/") != 0) {
      return false;
    }
    status_ = std::atoi(head_.c_str() + 9);
    bool chunked = false;
    std::optional<uint64_t> length;
    size_t pos = head_.find("\r\n") + 2;
    while (pos < blank) {
      size_t eol = head_.find("\r\n", pos);
      std::string_view line(head_.data() + pos, eol - pos);
      size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string_view name = line.substr(0, colon);
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') {
          value.remove_prefix(1);
        }
        auto is = [&](const char* want) {
          return name.size() == std::strlen(want) &&
                 std::equal(name.begin(), name.end(), want, [](char a, char b) { return std::tolower(a) == b; });
        };
        if (is("content-length")) {
          length = std::strtoull(std::string(value).c_str(), nullptr, 10);
        } else if (is("transfer-encoding")) {
          chunked = value.find("chunked") != std::string_view::npos;
        }
      }
      pos = eol + 2;
    }
    if (status_ == 204 || status_ == 304 || (status_ >= 100 && status_ < 200)) {
      state_ = State::Head;
    } else if (chunked) {
      state_ = State::ChunkSize;
      chunk_ = 0;
      in_ext_ = false;
    } else if (length) {
      left_ = *length;
      state_ = left_ > 0 ? State::Body : State::Head;
    } else {
      return false;  // close-delimited: not for a keep-alive benchmark
    }
    return true;
  }
  State state_ = State::Head;
  std::string head_;
  int status_ = 0;
  uint64_t left_ = 0, chunk_ = 0;
  bool in_ext_ = false;
  size_t line_len_ = 0;
};

// The request bytes of one HTTP/1.1 request, built once.
std::string http1_request(const Options& o) {
  std::string r = o.method + " " + o.path + " HTTP/1.1\r\nhost: " + o.host + "\r\n";
  for (auto& [n, v] : o.headers) {
    r += n + ": " + v + "\r\n";
  }
  if (o.response_bytes >= 0) {
    r += "x-body-bytes: " + std::to_string(o.response_bytes) + "\r\n";
  }
  if (o.request_bytes > 0 || o.method == "POST" || o.method == "PUT") {
    r += "content-length: " + std::to_string(o.request_bytes) + "\r\n";
  }
  r += "\r\n";
  r.append(o.request_bytes, 'x');
  return r;
}

http::RequestHead h2_request(const Options& o) {
  http::RequestHead h;
  h.method = o.method;
  h.target = o.path;
  h.authority = o.host;
  for (auto& [n, v] : o.headers) {
    h.headers.add(n, v);
  }
  if (o.response_bytes >= 0) {
    h.headers.add("x-body-bytes", std::to_string(o.response_bytes));
  }
  if (o.request_bytes > 0) {
    h.content_length = o.request_bytes;
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// Lanes inside HBONE tunnels.
class TunnelLane : public Lane, public hbone::TunnelCallbacks, public hbone::TunnelHandler {
 public:
  TunnelLane(Driver& d) : d_(d) {}
  void open(hbone::Pool& pool, const net::SockAddr& target, const Options& o) {
    hbone::UpstreamTarget t{target, o.identity, o.authority, {}};
    request_ = pool.open(std::move(t), *this);
  }
  void on_upstream_ready(hbone::Tunnel& tunnel) override {
    stream_ = &tunnel;
    tunnel.set_handler(this);
    ready = true;
    on_ready();
    d_.lane_settled();
  }
  void on_upstream_failed(hbone::UpstreamFailure f, int status) override {
    failed = true;
    d_.error(status != 0 ? "connect_refused_" + std::to_string(status) : std::string("connect_") + to_string(f));
    d_.lane_settled();
  }
  void on_tunnel_eof(hbone::Tunnel&) override {}
  void on_tunnel_closed(hbone::Tunnel&, bool clean) override {
    stream_ = nullptr;
    if (!d_.finished_) {
      d_.error(clean ? "tunnel_closed" : "tunnel_reset");
    }
    failed = true;
    ready = false;
  }
  virtual void on_ready() {}

 protected:
  void write(const std::string& s) {
    buffer::Buffer b;
    b.append(s.data(), s.size());
    stream_->write(b);
  }
  Driver& d_;
  hbone::Tunnel* stream_ = nullptr;
  std::unique_ptr<hbone::TunnelRequest> request_;
};

class Http1Lane final : public TunnelLane {
 public:
  Http1Lane(Driver& d, const std::string& request) : TunnelLane(d), request_bytes_(request) {}
  uint32_t free_slots() const override { return ready && !busy_ ? 1 : 0; }
  void issue(uint64_t due) override {
    busy_ = true;
    due_ = due;
    write(request_bytes_);
  }
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override {
    size_t n = data.length();
    bool bad = false;
    data.for_each([&](const uint8_t* p, size_t len) {
      const uint8_t* end = p + len;
      while (!bad && p < end) {
        auto r = reader_.feed(p, end);
        if (r == Http1Reader::Result::Error) {
          bad = true;
        } else if (r == Http1Reader::Result::Done) {
          if (!busy_) {
            bad = true;  // a response nobody asked for
            break;
          }
          busy_ = false;
          d_.complete(due_, reader_.status());
        }
      }
    });
    data.clear();
    t.consume(n);
    if (bad) {
      d_.error("http1_protocol");
      failed = true;
      ready = false;
      stream_->reset();
      return;
    }
    d_.dispatch();
  }
  void on_tunnel_drained(hbone::Tunnel&, size_t) override {}

 private:
  const std::string& request_bytes_;
  Http1Reader reader_;
  bool busy_ = false;
  uint64_t due_ = 0;
};

class TcpLane final : public TunnelLane {
 public:
  TcpLane(Driver& d, size_t write_size) : TunnelLane(d), chunk_(write_size, 'x') {}
  uint32_t free_slots() const override { return 0; }
  void issue(uint64_t) override {}
  void pump() {
    if (stream_ == nullptr || !d_.running() || d_.finished_) {
      return;
    }
    while (stream_->write_pending() < 4 * chunk_.size() + 65536) {
      write(chunk_);
    }
  }
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override {
    size_t n = data.length();
    data.clear();
    t.consume(n);
  }
  void on_tunnel_drained(hbone::Tunnel&, size_t bytes) override {
    d_.bytes_sent(bytes);
    pump();
  }

 private:
  std::string chunk_;
};

// h2c requests over a byte stream: a tunnel (inner h2c) or a TLS socket (plain HTTP/2).
class H2Requester : public http::H2cClientCallbacks {
 public:
  H2Requester(Driver& d, const Options& o, const http::RequestHead& head, const char* scheme)
      : d_(d), o_(o), head_(head), codec_(*this, settings(scheme)), body_(o.request_bytes, 'x') {}
  static http::H2cSettings settings(const char* scheme) {
    http::H2cSettings s;
    s.scheme = scheme;
    s.initial_window_size = 4u << 20;
    s.connection_window_size = 16u << 20;
    return s;
  }
  uint32_t capacity() const {
    if (!codec_.usable()) {
      return 0;
    }
    uint32_t in_flight = static_cast<uint32_t>(due_.size());
    uint32_t limit = std::min<uint32_t>(static_cast<uint32_t>(o_.streams), in_flight + codec_.available_streams());
    return limit > in_flight ? limit - in_flight : 0;
  }
  void submit(uint64_t due) {
    int32_t id = codec_.submit_request(head_, o_.request_bytes == 0);
    if (id < 0) {
      d_.error("h2_submit");
      return;
    }
    if (o_.request_bytes > 0) {
      buffer::Buffer b;
      b.append(body_.data(), body_.size());
      codec_.send_body(id, b, true);
    }
    due_.push_back({id, due});
  }
  void on_response(int32_t stream, http::ResponseHead&& head) override {
    if (auto* e = find(stream)) {
      e->status = head.status;
    }
  }
  void on_response_body(int32_t stream, buffer::Buffer& data) override {
    codec_.consume(stream, data.length());
    data.clear();
  }
  void on_response_trailers(int32_t, http::HeaderMap&&) override {}
  void on_response_end(int32_t stream) override {
    if (auto* e = find(stream)) {
      uint64_t due = e->due;
      int status = e->status;
      erase(stream);
      d_.complete(due, status);
    }
  }
  void on_stream_closed(int32_t stream, uint32_t code) override {
    if (find(stream) != nullptr) {
      erase(stream);
      if (!d_.finished_) {
        d_.error(code == 7 ? "h2_refused_stream" : "h2_stream_reset");
      }
    }
  }
  void on_error(const http::CodecError& e) override {
    if (!d_.finished_) {
      d_.error(std::string("h2_session: ") + e.reason);
    }
  }
  void output(buffer::Buffer& out) { http::collect_output(codec_, out); }
  http::H2cClientCodec& codec() { return codec_; }

 private:
  struct InFlight {
    int32_t id;
    uint64_t due;
    int status = 0;
  };
  InFlight* find(int32_t id) {
    for (auto& e : due_) {
      if (e.id == id) {
        return &e;
      }
    }
    return nullptr;
  }
  void erase(int32_t id) {
    for (size_t i = 0; i < due_.size(); ++i) {
      if (due_[i].id == id) {
        due_[i] = due_.back();
        due_.pop_back();
        return;
      }
    }
  }
  Driver& d_;
  const Options& o_;
  const http::RequestHead& head_;
  http::H2cClientCodec codec_;
  std::string body_;
  std::vector<InFlight> due_;
};

class H2cLane final : public TunnelLane {
 public:
  H2cLane(Driver& d, const Options& o, const http::RequestHead& head) : TunnelLane(d), req_(d, o, head, "http") {}
  uint32_t free_slots() const override { return ready ? req_.capacity() : 0; }
  void issue(uint64_t due) override {
    req_.submit(due);
    flush();
  }
  void on_ready() override { flush(); }  // the client preface and SETTINGS
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override {
    size_t n = data.length();
    bool ok = true;
    data.for_each([&](const uint8_t* p, size_t len) { ok = ok && req_.codec().feed(p, len); });
    data.clear();
    t.consume(n);
    flush();
    if (!ok) {
      failed = true;
      ready = false;
      return;
    }
    d_.dispatch();
  }
  void on_tunnel_drained(hbone::Tunnel&, size_t) override { flush(); }
  void flush() {
    if (stream_ == nullptr) {
      return;
    }
    buffer::Buffer out;
    req_.output(out);
    if (!out.empty()) {
      stream_->write(out);
    }
  }

 private:
  H2Requester req_;
};

// Plain mTLS HTTP/2: a TLS socket with the h2c codec on top (scheme https).
class PlainH2Lane final : public Lane, public net::TransportCallbacks {
 public:
  PlainH2Lane(Driver& d, const Options& o, const http::RequestHead& head) : d_(d), req_(d, o, head, "https") {}
  void open(event::Loop& loop, const net::SockAddr& target, const tls::ContextPtr& ctx, const Options& o) {
    int fd = net::connect_tcp(target);
    if (fd < 0) {
      failed = true;
      d_.error("connect_failed");
      d_.lane_settled();
      return;
    }
    sock_ = std::make_unique<tls::Socket>(loop, fd, ctx, o.identity, std::chrono::seconds(10));
    sock_->start(*this);
  }
  uint32_t free_slots() const override { return ready ? req_.capacity() : 0; }
  void issue(uint64_t due) override {
    req_.submit(due);
    flush();
  }
  void on_transport_connected() override {
    ready = true;
    flush();
    d_.lane_settled();
  }
  void on_transport_data(const uint8_t* data, size_t len) override {
    if (!req_.codec().feed(data, len)) {
      failed = true;
      ready = false;
    }
    flush();
    d_.dispatch();
  }
  void on_transport_writable() override { flush(); }
  void on_transport_closed(net::CloseReason, net::HandshakeFailure f) override {
    bool was_ready = ready;
    failed = true;
    ready = false;
    if (!d_.finished_) {
      d_.error(was_ready ? "connection_closed" : std::string("handshake_") + net::to_string(f));
    }
    if (!was_ready) {
      d_.lane_settled();
    }
  }
  void flush() {
    if (sock_ == nullptr || failed) {
      return;
    }
    out_.clear();
    req_.output(out_);
    out_.for_each([&](const uint8_t* p, size_t n) { sock_->append(p, n); });
    out_.clear();
    sock_->flush();
  }
  void close() {
    if (sock_) {
      sock_->close(false);
    }
  }

 private:
  Driver& d_;
  H2Requester req_;
  std::unique_ptr<tls::Socket> sock_;
  buffer::Buffer out_;
};

// ---------------------------------------------------------------------------------------------
void Driver::lane_settled() {
  ++settled_;
}

void Driver::start_load() {
  getrusage(RUSAGE_SELF, &ru_start_);
  t0_ = now_ns();
  measure_start_ = t0_ + static_cast<uint64_t>(o_.warmup * 1e9);
  measure_end_ = measure_start_ + static_cast<uint64_t>(o_.duration * 1e9);
  running_ = true;
  end_timer_ = std::make_unique<event::Timer>(loop_, [this] { finish(); });
  end_timer_->start(std::chrono::milliseconds(static_cast<int64_t>((o_.warmup + o_.duration) * 1000)) +
                    std::chrono::milliseconds(1));
  if (o_.proto == "tcp" && o_.mode == "hbone") {
    for (auto& l : lanes_) {
      if (l->ready) {
        static_cast<TcpLane*>(l.get())->pump();
      }
    }
    return;
  }
  if (o_.rate > 0) {
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    tfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    tpoll_ = new uv_poll_t;
    uv_poll_init(loop_.uv(), tpoll_, tfd_);
    tpoll_->data = this;
    uv_poll_start(tpoll_, UV_READABLE, [](uv_poll_t* h, int, int) {
      uint64_t expirations;
      (void)!read(static_cast<Driver*>(h->data)->tfd_, &expirations, sizeof(expirations));
      static_cast<Driver*>(h->data)->on_tick();
    });
    on_tick();
    return;
  }
  dispatch();
}

// Open loop: move every request now due into the backlog, send what free slots allow, and set the
// timer for the next due time.
void Driver::on_tick() {
  if (!running_ || finished_) {
    return;
  }
  uint64_t now = now_ns();
  const double interval = 1e9 / o_.rate;
  auto due = [&](uint64_t i) { return t0_ + static_cast<uint64_t>(static_cast<double>(i) * interval); };
  while (due(next_index_) <= now) {
    if (backlog_.size() < 1'000'000) {
      backlog_.push_back(due(next_index_));
    } else {
      error("backlog_overflow");
    }
    ++next_index_;
  }
  backlog_peak_ = std::max<uint64_t>(backlog_peak_, backlog_.size());
  dispatch();
  itimerspec its{};
  uint64_t next = due(next_index_);
  its.it_value.tv_sec = static_cast<time_t>(next / 1'000'000'000ull);
  its.it_value.tv_nsec = static_cast<long>(next % 1'000'000'000ull);
  timerfd_settime(tfd_, TFD_TIMER_ABSTIME, &its, nullptr);
}

void Driver::dispatch() {
  if (!running_ || finished_ || lanes_.empty()) {
    return;
  }
  const bool open_loop = o_.rate > 0;
  if (open_loop && backlog_.empty()) {
    return;
  }
  // Round robin over the lanes, so load spreads over every connection.
  size_t idle_rounds = 0;
  while (idle_rounds < lanes_.size()) {
    Lane& l = *lanes_[rr_];
    rr_ = (rr_ + 1) % lanes_.size();
    uint32_t n = l.free_slots();
    if (n == 0) {
      ++idle_rounds;
      continue;
    }
    idle_rounds = 0;
    if (open_loop) {
      l.issue(backlog_.front());
      backlog_.pop_front();
      if (backlog_.empty()) {
        return;
      }
    } else {
      for (uint32_t i = 0; i < n; ++i) {
        l.issue(now_ns());
      }
    }
  }
}

void Driver::complete(uint64_t due, int status) {
  uint64_t t = now_ns();
  if (running_ && status >= 200 && status < 300) {
    ++requests_total_;
  }
  if (!measuring(t)) {
    return;
  }
  ++statuses_[status];
  if (status >= 200 && status < 300) {
    ++completed_;
    hist_.record(t > due ? t - due : 0);
  } else {
    error("status_" + std::to_string(status));
  }
}

void Driver::finish() {
  if (finished_) {
    return;
  }
  finished_ = true;
  running_ = false;
  if (tpoll_ != nullptr) {
    uv_poll_stop(tpoll_);
    event::close_and_delete(tpoll_);
    tpoll_ = nullptr;
    ::close(tfd_);
  }
  report();
  if (on_finished) {
    on_finished();
  }
}

std::string json_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      r += '\\';
    }
    r += c;
  }
  return r;
}

void Driver::report() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
  double cpu = secs(ru.ru_utime) + secs(ru.ru_stime) - secs(ru_start_.ru_utime) - secs(ru_start_.ru_stime);
  size_t lanes_ready = 0;
  for (auto& l : lanes_) {
    lanes_ready += l->ready ? 1 : 0;
  }
  const double us = 1e-3;
  double rps = static_cast<double>(completed_) / o_.duration;
  double mbps = static_cast<double>(tcp_bytes_) / o_.duration / 1e6;
  uint64_t errors = 0;
  for (auto& [k, v] : errors_) {
    errors += v;
  }
  std::printf(
      "%-28s %s/%s  %d conn x %d %s x %d streams  %s\n", o_.label.empty() ? "load" : o_.label.c_str(), o_.mode.c_str(),
      o_.proto.c_str(), o_.connections, o_.tunnels, o_.mode == "hbone" ? "tunnels" : "", o_.streams,
      o_.rate > 0 ? ("open loop " + std::to_string(static_cast<int>(o_.rate)) + " req/s").c_str() : "closed loop");
  if (o_.proto == "tcp" && o_.mode == "hbone") {
    std::printf("  throughput %.1f MB/s over %.1f s, %zu/%zu tunnels up, errors %lu\n", mbps, o_.duration, lanes_ready,
                lanes_.size(), static_cast<unsigned long>(errors));
  } else {
    std::printf("  %.0f req/s  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  errors %lu\n", rps,
                hist_.percentile(50) * us / 1000, hist_.percentile(90) * us / 1000, hist_.percentile(99) * us / 1000,
                hist_.percentile(99.9) * us / 1000, hist_.max() * us / 1000, static_cast<unsigned long>(errors));
  }
  for (auto& [k, v] : errors_) {
    std::printf("  error %s: %lu\n", k.c_str(), static_cast<unsigned long>(v));
  }
  std::fflush(stdout);
  if (o_.json.empty()) {
    return;
  }
  FILE* f = std::fopen(o_.json.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "wp-loadgen: cannot write %s\n", o_.json.c_str());
    return;
  }
  std::fprintf(f,
               "{\"label\":\"%s\",\"mode\":\"%s\",\"proto\":\"%s\",\"connections\":%d,\"tunnels\":%d,\"streams\":%d,"
               "\"rate\":%.1f,\"duration_s\":%.3f,\"warmup_s\":%.3f,\"request_bytes\":%lu,\"response_bytes\":%ld,"
               "\"lanes\":%zu,\"lanes_ready\":%zu,\"requests\":%lu,\"requests_total\":%lu,\"rps\":%.1f,\"tcp_bytes\":%"
               "lu,\"tcp_bytes_total\":%lu,\"mb_per_s\":%.2f,"
               "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f,\"mean\":%.1f},"
               "\"backlog_peak\":%lu,\"loadgen_cpu_s\":%.3f,\"errors_total\":%lu,\"errors\":{",
               json_escape(o_.label).c_str(), o_.mode.c_str(), o_.proto.c_str(), o_.connections, o_.tunnels, o_.streams,
               o_.rate, o_.duration, o_.warmup, static_cast<unsigned long>(o_.request_bytes),
               static_cast<long>(o_.response_bytes), lanes_.size(), lanes_ready, static_cast<unsigned long>(completed_),
               static_cast<unsigned long>(requests_total_), rps, static_cast<unsigned long>(tcp_bytes_),
               static_cast<unsigned long>(tcp_bytes_total_), mbps, hist_.percentile(50) * us, hist_.percentile(90) * us,
               hist_.percentile(99) * us, hist_.percentile(99.9) * us, static_cast<double>(hist_.max()) * us,
               hist_.mean() * us, static_cast<unsigned long>(backlog_peak_), cpu, static_cast<unsigned long>(errors));
  bool first = true;
  for (auto& [k, v] : errors_) {
    std::fprintf(f, "%s\"%s\":%lu", first ? "" : ",", json_escape(k).c_str(), static_cast<unsigned long>(v));
    first = false;
  }
  std::fprintf(f, "},\"statuses\":{");
  first = true;
  for (auto& [k, v] : statuses_) {
    std::fprintf(f, "%s\"%d\":%lu", first ? "" : ",", k, static_cast<unsigned long>(v));
    first = false;
  }
  std::fprintf(f, "}}\n");
  std::fclose(f);
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "wp-loadgen: %s\n"
               "usage: wp-loadgen --target IP:PORT --cert F --key F --root F [--identity SPIFFE_ID]\n"
               "  [--mode hbone|h2] [--proto http1|h2c|tcp] [--authority IP:PORT] [--host H] [--path P]\n"
               "  [--method M] [-H 'name: value']... [--connections C] [--tunnels T] [--streams M]\n"
               "  [--request-bytes N] [--response-bytes N|-1] [--write-size N] [--duration S] [--warmup S]\n"
               "  [--rate R] [--idle] [--json FILE] [--label NAME] [--trust-domain D]\n",
               msg);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage((a + " needs a value").c_str());
      }
      return argv[++i];
    };
    if (a == "--mode") {
      o.mode = next();
    } else if (a == "--proto") {
      o.proto = next();
    } else if (a == "--target") {
      o.target = next();
    } else if (a == "--authority") {
      o.authority = next();
    } else if (a == "--identity") {
      o.identity = next();
    } else if (a == "--cert") {
      o.cert = next();
    } else if (a == "--key") {
      o.key = next();
    } else if (a == "--root") {
      o.root = next();
    } else if (a == "--trust-domain") {
      o.trust_domain = next();
    } else if (a == "--host") {
      o.host = next();
    } else if (a == "--path") {
      o.path = next();
    } else if (a == "--method") {
      o.method = next();
    } else if (a == "-H" || a == "--header") {
      std::string h = next();
      auto colon = h.find(':');
      if (colon == std::string::npos || colon == 0) {
        usage("--header wants 'name: value'");
      }
      std::string v = h.substr(colon + 1);
      v.erase(0, v.find_first_not_of(' '));
      std::string n = h.substr(0, colon);
      std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
      o.headers.emplace_back(n, v);
    } else if (a == "--connections" || a == "-c") {
      o.connections = std::atoi(next().c_str());
    } else if (a == "--tunnels") {
      o.tunnels = std::atoi(next().c_str());
    } else if (a == "--streams") {
      o.streams = std::atoi(next().c_str());
    } else if (a == "--request-bytes") {
      o.request_bytes = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--response-bytes") {
      o.response_bytes = std::strtoll(next().c_str(), nullptr, 10);
    } else if (a == "--write-size") {
      o.write_size = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--duration") {
      o.duration = std::atof(next().c_str());
    } else if (a == "--warmup") {
      o.warmup = std::atof(next().c_str());
    } else if (a == "--rate") {
      o.rate = std::atof(next().c_str());
    } else if (a == "--idle") {
      o.idle = true;
    } else if (a == "--json") {
      o.json = next();
    } else if (a == "--label") {
      o.label = next();
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  if (o.target.empty() || o.cert.empty() || o.key.empty() || o.root.empty()) {
    usage("--target, --cert, --key and --root are required");
  }
  if (o.mode != "hbone" && o.mode != "h2") {
    usage("--mode is hbone or h2");
  }
  if (o.mode == "hbone" && o.authority.empty()) {
    usage("--mode hbone needs --authority");
  }
  if (o.proto != "http1" && o.proto != "h2c" && o.proto != "tcp") {
    usage("--proto is http1, h2c or tcp");
  }
  if (o.connections < 1 || o.tunnels < 1 || o.streams < 1 || o.duration <= 0 || o.warmup < 0 || o.rate < 0 ||
      o.write_size == 0) {
    usage("counts and durations must be positive");
  }
  if (o.mode == "hbone" && o.proto == "http1") {
    o.streams = 1;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  Options o = parse(argc, argv);
  auto target = net::SockAddr::parse(o.target);
  if (!target) {
    usage("--target is not IP:PORT");
  }
  tls::ContextPtr ctx;
  try {
    ctx = tls::Context::make(tls::Context::Role::Client, config::TlsFiles{o.cert, o.key, o.root}, o.trust_domain);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wp-loadgen: %s\n", e.what());
    return 1;
  }
  event::Loop loop;
  stats::Block stats;
  Driver d(loop, o);
  const std::string request1 = http1_request(o);
  const http::RequestHead head2 = h2_request(o);

  // One pool per downstream connection: a pool keeps one connection while its tunnels fit the
  // stream limit, so C pools give C connections of T tunnels.
  std::vector<std::unique_ptr<hbone::Pool>> pools;
  std::vector<PlainH2Lane*> plain;
  if (o.mode == "hbone") {
    hbone::PoolSettings ps;
    ps.max_streams_per_connection = static_cast<uint32_t>(o.tunnels);
    ps.h2.keepalive_interval = std::chrono::milliseconds(0);
    ps.h2.max_concurrent_streams = static_cast<uint32_t>(std::max(o.tunnels, 100));
    ps.connect_timeout = std::chrono::seconds(30);
    for (int c = 0; c < o.connections; ++c) {
      pools.push_back(std::make_unique<hbone::Pool>(loop, ctx, ps, stats));
      for (int t = 0; t < o.tunnels; ++t) {
        std::unique_ptr<TunnelLane> lane;
        if (o.proto == "http1") {
          lane = std::make_unique<Http1Lane>(d, request1);
        } else if (o.proto == "h2c") {
          lane = std::make_unique<H2cLane>(d, o, head2);
        } else {
          lane = std::make_unique<TcpLane>(d, o.write_size);
        }
        lane->open(*pools.back(), *target, o);
        d.add_lane(std::move(lane));
      }
    }
  } else {
    for (int c = 0; c < o.connections; ++c) {
      auto lane = std::make_unique<PlainH2Lane>(d, o, head2);
      plain.push_back(lane.get());
      lane->open(loop, *target, ctx, o);
      d.add_lane(std::move(lane));
    }
  }

  // Set-up: wait until every lane is established or failed (at most 60 s).
  bool stop = false;
  uv_signal_t sig_term, sig_int;
  auto on_signal = [](uv_signal_t* h, int) { *static_cast<bool*>(h->data) = true; };
  uv_signal_init(loop.uv(), &sig_term);
  uv_signal_init(loop.uv(), &sig_int);
  sig_term.data = sig_int.data = &stop;
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  event::Timer tick(loop, [] {});
  tick.start(std::chrono::milliseconds(20), std::chrono::milliseconds(20));
  const uint64_t setup_deadline = now_ns() + 60'000'000'000ull;
  const uint64_t setup_start = now_ns();
  while (!stop && d.settled() < d.lane_count() && now_ns() < setup_deadline) {
    uv_run(loop.uv(), UV_RUN_ONCE);
  }
  size_t ready = 0;
  for (auto& l : d.lanes_) {
    ready += l->ready ? 1 : 0;
  }
  std::fprintf(stderr, "wp-loadgen: %zu/%zu %s established in %.3f s\n", ready, d.lane_count(),
               o.mode == "hbone" ? "tunnels" : "connections", static_cast<double>(now_ns() - setup_start) / 1e9);
  int rc = 0;
  if (ready == 0) {
    for (auto& [k, v] : d.errors_) {
      std::fprintf(stderr, "  error %s: %lu\n", k.c_str(), static_cast<unsigned long>(v));
    }
    rc = 1;
  } else if (o.idle) {
    std::printf("established %zu\n", ready);
    std::fflush(stdout);
    const uint64_t until = now_ns() + static_cast<uint64_t>(o.duration * 1e9);
    while (!stop && now_ns() < until) {
      uv_run(loop.uv(), UV_RUN_ONCE);
    }
    size_t still = 0;
    for (auto& l : d.lanes_) {
      still += l->ready ? 1 : 0;
    }
    std::printf("held %zu\n", still);
    rc = still == ready ? 0 : 1;
  } else {
    bool done = false;
    d.on_finished = [&] { done = true; };
    d.start_load();
    while (!stop && !done) {
      uv_run(loop.uv(), UV_RUN_ONCE);
    }
    if (!done) {
      d.finish();
    }
  }
  // Teardown: close everything, let the close callbacks run.
  d.finished_ = true;
  tick.stop();
  uv_signal_stop(&sig_term);
  uv_signal_stop(&sig_int);
  uv_close(reinterpret_cast<uv_handle_t*>(&sig_term), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sig_int), nullptr);
  for (auto* p : plain) {
    p->close();
  }
  for (auto& p : pools) {
    p->close_all();
  }
  uv_run(loop.uv(), UV_RUN_NOWAIT);
  d.lanes_.clear();
  pools.clear();
  uv_run(loop.uv(), UV_RUN_NOWAIT);
  return rc;
}
