// wp-bench-pod: a fast fake pod for benchmarks, built on the project's own hbone/, tls/ and http/
// code. One libuv loop on the main thread; nothing is recorded per request (four counters only), and
// response bytes are precomputed per body size or streamed from one static pattern block.
//
//   wp-bench-pod --cert FILE --key FILE --root FILE [--trust-domain cluster.local]
//                --hbone IP:PORT [--plain IP:PORT] [--tcp-port 9000] [--body-bytes 1024]
//                [--name pod] [--max-streams 1000]
//
// --hbone  HBONE server (TLS 1.3 mTLS, HTTP/2 CONNECT). Every CONNECT is answered 200 at once; the
//          authority's port picks what runs inside the tunnel:
//            == --tcp-port  a TCP sink: bytes are counted and discarded, EOF is answered with EOF;
//            otherwise      HTTP: h2c when the tunnel starts with the HTTP/2 client preface, else
//                           HTTP/1.1 (keep-alive, pipelined requests answered in order, bodies framed
//                           by Content-Length or chunked).
// --plain  mTLS HTTP/2 server (ALPN h2, no CONNECT) answering requests the same way (peer proxies).
//
// Every request's body is read and discarded; once the request is complete it is answered 200 with
// content-type: application/octet-stream, x-pod: NAME and N body bytes ('a' + i % 26), where N is
// the request's x-body-bytes (0..64 MiB, else 400) or --body-bytes. Bodies up to kPrecomputeMax are
// written from bytes built once per size; larger ones are streamed with backpressure.
//
// Prints "ready" on stdout once listening. On SIGTERM/SIGINT it closes everything, prints its
// counters on stderr and exits 0.
#include <uv.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "waypoint/buffer/buffer.h"
#include "waypoint/event/loop.h"
#include "waypoint/hbone/server.h"
#include "waypoint/http/h2c_codec.h"
#include "waypoint/http/headers.h"
#include "waypoint/net/socket.h"
#include "waypoint/stats/stats.h"
#include "waypoint/tls/context.h"
#include "waypoint/tls/socket.h"

namespace {

using namespace wp;

constexpr uint64_t kMaxBody = 64ull << 20;
constexpr uint64_t kPrecomputeMax = 256 << 10;  // larger bodies are streamed
constexpr size_t kMaxCachedSizes = 64;          // distinct precomputed sizes; others are streamed
constexpr size_t kBlock = 26 * 630;             // pattern bytes per block: whole periods (16380)
constexpr size_t kHighWater = 1 << 20;          // tunnel output queued: stop producing / reading
constexpr size_t kH2Queue = 256 << 10;          // h2 body bytes queued per stream
constexpr size_t kMaxLine = 64 << 10;           // HTTP/1.1 head or trailer line
constexpr std::string_view kPreface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);

struct Options {
  std::string cert, key, root, trust_domain = "cluster.local", name = "pod";
  net::SockAddr hbone;
  std::optional<net::SockAddr> plain;
  uint16_t tcp_port = 9000;
  uint64_t body_bytes = 1024;
  uint32_t max_streams = 1000;
};

struct Counters {
  uint64_t connections = 0, tunnels = 0, http_requests = 0, tcp_bytes = 0;
};

uint8_t g_pattern[kBlock];  // byte i is 'a' + i % 26; a body is this block repeated

void append_body(buffer::Buffer& out, uint64_t n) {
  while (n > 0) {
    size_t k = n < kBlock ? static_cast<size_t>(n) : kBlock;
    out.append(g_pattern, k);
    n -= k;
  }
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

// An x-body-bytes value as a response body size; -1 (answered 400) unless 0..64 MiB.
int64_t body_size(std::string_view value) {
  auto n = parse_u64(http::trim_ows(value));
  return n && *n <= kMaxBody ? static_cast<int64_t>(*n) : -1;
}

// HTTP/1.1 response bytes, built once per body size.
class Responses {
 public:
  struct Entry {
    std::string bytes;  // head + body
    size_t head_len = 0;
  };
  explicit Responses(const std::string& name) : name_(name) {
    bad_ = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-pod: " + name_ + "\r\n\r\n";
  }
  std::string head(uint64_t n) const {
    return "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: " + std::to_string(n) +
           "\r\nx-pod: " + name_ + "\r\n\r\n";
  }
  // Head and body of a 200 with n body bytes; nullptr when n is to be streamed.
  const Entry* full(uint64_t n) {
    if (auto it = cache_.find(n); it != cache_.end()) {
      return &it->second;
    }
    if (n > kPrecomputeMax || cache_.size() >= kMaxCachedSizes) {
      return nullptr;
    }
    Entry e;
    e.bytes = head(n);
    e.head_len = e.bytes.size();
    for (uint64_t i = 0; i < n; i += kBlock) {
      e.bytes.append(reinterpret_cast<const char*>(g_pattern), std::min<uint64_t>(kBlock, n - i));
    }
    return &cache_.emplace(n, std::move(e)).first->second;
  }
  const std::string& bad() const { return bad_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_, bad_;
  std::unordered_map<uint64_t, Entry> cache_;
};

// What connections and tunnels share.
struct Shared {
  event::Loop& loop;
  Options opts;
  Responses responses;
  http::H2cSettings h2c;
  Counters counters;
};

// ---------------------------------------------------------------------------------------------
// HTTP/2 server side (h2c inside a tunnel, or HTTP/2 over --plain TLS): the codec does no I/O, the
// owner feeds input and pulls output. Each request is answered on END_STREAM.

class H2Service final : private http::H2cServerCallbacks {
 public:
  explicit H2Service(Shared& sh) : sh_(sh), codec_(*this, sh.h2c) {
    ok_.headers.add("content-type", "application/octet-stream");
    ok_.headers.add("x-pod", sh.responses.name());
    bad_.status = 400;
    bad_.content_length = 0;
    bad_.headers.add("x-pod", sh.responses.name());
  }
  // False once the session failed (the output then holds a GOAWAY where appropriate).
  bool feed(const uint8_t* p, size_t n) { return codec_.feed(p, n) && !failed_; }
  void output(buffer::Buffer& out) { http::collect_output(codec_, out); }
  bool want_output() const { return codec_.want_output(); }
  void finish() { codec_.finish(); }

 private:
  struct Pending {
    int64_t body = 0;   // response body size (-1: 400)
    uint64_t left = 0;  // streamed body bytes not yet queued
    bool answered = false;
  };

  void on_request(int32_t id, http::RequestHead&& head, bool end_stream) override {
    ++sh_.counters.http_requests;
    int64_t n = static_cast<int64_t>(sh_.opts.body_bytes);
    for (const http::Header& h : head.headers) {  // names are lowercase
      if (h.name == "x-body-bytes") {
        n = body_size(h.value);
        break;
      }
    }
    if (end_stream) {
      answer(id, n);  // the on_request_end that follows finds nothing left to do
    } else {
      streams_[id] = Pending{n};
    }
  }
  void on_request_body(int32_t id, buffer::Buffer& data) override {
    codec_.consume(id, data.length());
    data.clear();
  }
  void on_request_trailers(int32_t, http::HeaderMap&&) override {}
  void on_request_end(int32_t id) override {
    if (auto it = streams_.find(id); it != streams_.end() && !it->second.answered) {
      answer(id, it->second.body);
    }
  }
  void on_stream_closed(int32_t id, uint32_t) override { streams_.erase(id); }
  void on_stream_drained(int32_t id) override {
    if (auto it = streams_.find(id); it != streams_.end() && it->second.left > 0) {
      refill(id, it->second);
    }
  }
  void on_error(const http::CodecError&) override { failed_ = true; }

  void answer(int32_t id, int64_t n) {
    if (n < 0) {
      codec_.respond(id, bad_, true);
      streams_.erase(id);
      return;
    }
    ok_.content_length = static_cast<uint64_t>(n);
    codec_.respond(id, ok_, n == 0);
    if (n > 0 && static_cast<uint64_t>(n) <= kH2Queue) {
      append_body(scratch_, static_cast<uint64_t>(n));
      codec_.send_body(id, scratch_, true);
    } else if (n > 0) {
      Pending& p = streams_[id];
      p.answered = true;
      p.left = static_cast<uint64_t>(n);
      refill(id, p);
      return;
    }
    streams_.erase(id);
  }

  // Queues more of a streamed body while the stream's queue is short.
  void refill(int32_t id, Pending& p) {
    while (p.left > 0 && codec_.pending_body(id) < kH2Queue) {
      size_t k = p.left < kBlock ? static_cast<size_t>(p.left) : kBlock;
      scratch_.append(g_pattern, k);
      p.left -= k;
      codec_.send_body(id, scratch_, p.left == 0);
      if (codec_.pending_body(id) == 0) {
        p.left = 0;  // the stream is gone: the codec dropped the bytes
      }
    }
    if (p.left == 0) {
      streams_.erase(id);
    }
  }

  Shared& sh_;
  std::unordered_map<int32_t, Pending> streams_;  // requests not yet complete, streamed answers
  http::ResponseHead ok_, bad_;
  buffer::Buffer scratch_;  // reused: a fresh Buffer costs two allocations
  bool failed_ = false;
  http::H2cServerCodec codec_;  // last: destroyed first, while the members above are intact
};

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 request parser for the well-formed requests of our own clients: finds where each request
// ends (Content-Length or chunked body, trailers) and reads the few fields that matter. Input may be
// split anywhere; only a line cut in two is copied (into line_).

class Http1Parser {
 public:
  struct Request {
    int64_t body = 0;    // response body size (-1: 400)
    bool head = false;   // HEAD: no response body
    bool close = false;  // "connection: close": the tunnel ends after the response
  };
  explicit Http1Parser(uint64_t default_body) : default_body_(default_body) {}

  // Parses p[0, n) and returns how many bytes it used; stops right after a complete request (*done).
  size_t parse(const uint8_t* p, size_t n, bool* done) {
    *done = false;
    size_t i = 0;
    while (i < n && !*done && state_ != State::Failed) {
      if (state_ == State::Body || state_ == State::ChunkData) {  // skipped, not looked at
        uint64_t k = std::min<uint64_t>(left_, n - i);
        i += k;
        left_ -= k;
        if (left_ == 0 && state_ == State::Body) {
          complete(done);
        } else if (left_ == 0) {
          state_ = State::ChunkEnd;
        }
        continue;
      }
      auto* nl = static_cast<const uint8_t*>(std::memchr(p + i, '\n', n - i));
      size_t end = nl != nullptr ? static_cast<size_t>(nl - p) : n;
      if (line_.size() + (end - i) > kMaxLine) {
        state_ = State::Failed;
        break;
      }
      std::string_view piece(reinterpret_cast<const char*>(p + i), end - i);
      if (nl == nullptr) {
        line_.append(piece);  // the rest of the line comes with the next bytes
        return n;
      }
      i = end + 1;
      std::string_view line = line_.empty() ? piece : std::string_view(line_.append(piece));
      if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
      }
      if (!on_line(line, done)) {
        state_ = State::Failed;
      }
      line_.clear();
    }
    return i;
  }

  bool failed() const { return state_ == State::Failed; }
  const Request& request() const { return req_; }

 private:
  enum class State : uint8_t { RequestLine, Headers, Body, ChunkSize, ChunkData, ChunkEnd, Trailers, Failed };

  // One line without its line ending; false when it cannot be understood.
  bool on_line(std::string_view line, bool* done) {
    switch (state_) {
      case State::RequestLine:
        if (!line.empty()) {  // (empty lines between requests are skipped)
          req_ = Request{static_cast<int64_t>(default_body_), line.starts_with("HEAD "), false};
          chunked_ = false;
          left_ = 0;
          state_ = State::Headers;
        }
        return true;
      case State::ChunkSize: {  // hex size [; extensions]
        line = http::trim_ows(line.substr(0, line.find(';')));
        auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), left_, 16);
        state_ = left_ == 0 ? State::Trailers : State::ChunkData;
        return !line.empty() && ec == std::errc() && end == line.data() + line.size();
      }
      case State::ChunkEnd:  // the CRLF after chunk data
        state_ = State::ChunkSize;
        return line.empty();
      case State::Trailers:
        if (line.empty()) {
          complete(done);
        }
        return true;
      default:
        break;
    }
    if (line.empty()) {  // end of the head
      if (chunked_) {
        state_ = State::ChunkSize;
      } else if (left_ > 0) {
        state_ = State::Body;
      } else {
        complete(done);
      }
      return true;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return false;
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = http::trim_ows(line.substr(colon + 1));
    if (http::iequals(name, "content-length")) {
      auto n = parse_u64(value);
      left_ = n.value_or(0);
      return n.has_value();
    }
    if (http::iequals(name, "transfer-encoding")) {
      chunked_ = value.size() >= 7 && http::iequals(value.substr(value.size() - 7), "chunked");
    } else if (http::iequals(name, "x-body-bytes")) {
      req_.body = body_size(value);
    } else if (http::iequals(name, "connection")) {
      req_.close = http::iequals(value, "close");
    }
    return true;
  }

  void complete(bool* done) {
    state_ = State::RequestLine;
    *done = true;
  }

  uint64_t default_body_;
  State state_ = State::RequestLine;
  std::string line_;   // the start of a line split across calls
  uint64_t left_ = 0;  // body or chunk bytes still to skip
  bool chunked_ = false;
  Request req_;
};

class Pod;

// ---------------------------------------------------------------------------------------------
// One CONNECT tunnel: a TCP sink, or HTTP/1.1 or h2c (sniffed from the first bytes).

class PodTunnel final : public hbone::TunnelHandler, public event::DeferredDeletable {
 public:
  PodTunnel(Pod& pod, Shared& sh, hbone::Tunnel& tunnel, bool tcp_sink)
      : pod_(pod),
        sh_(sh),
        tunnel_(&tunnel),
        mode_(tcp_sink ? Mode::TcpSink : Mode::Sniff),
        parser_(sh.opts.body_bytes) {}

  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override {
    if (mode_ == Mode::TcpSink || mode_ == Mode::Done) {
      size_t n = data.length();
      sh_.counters.tcp_bytes += mode_ == Mode::TcpSink ? n : 0;
      data.clear();
      t.consume(n);
      return;
    }
    in_.move_from(data);
    if (mode_ == Mode::Sniff) {
      uint8_t head[kPreface.size()];
      size_t n = in_.copy_out(head, sizeof(head));
      if (std::memcmp(head, kPreface.data(), n) != 0) {
        mode_ = Mode::Http1;
      } else if (n == kPreface.size()) {
        mode_ = Mode::H2c;
        h2_ = std::make_unique<H2Service>(sh_);
      }
    }
    pump();
  }
  void on_tunnel_eof(hbone::Tunnel& t) override {
    eof_ = true;
    if (mode_ == Mode::TcpSink) {
      t.write_eof();
      return;
    }
    if (mode_ == Mode::Sniff) {
      mode_ = Mode::Http1;  // too short for a preface
    }
    pump();
  }
  void on_tunnel_drained(hbone::Tunnel&, size_t) override { pump(); }
  void on_tunnel_closed(hbone::Tunnel&, bool) override;

 private:
  enum class Mode : uint8_t { Sniff, TcpSink, Http1, H2c, Done };

  bool backlogged() const { return tunnel_->write_pending() + out_.length() >= kHighWater; }

  void pump() {
    if (tunnel_ == nullptr) {
      return;
    }
    if (mode_ == Mode::Http1) {
      pump_http1();
    } else if (mode_ == Mode::H2c) {
      pump_h2c();
    }
    if (!out_.empty()) {
      tunnel_->write(out_);
    }
    if (used_ > 0) {
      tunnel_->consume(used_);  // parsed and discarded: reopen the window
      used_ = 0;
    }
  }

  void pump_http1() {
    while (mode_ == Mode::Http1) {
      if (left_ > 0) {  // a streamed body: more while the tunnel has room
        while (left_ > 0 && !backlogged()) {
          size_t k = left_ < kBlock ? static_cast<size_t>(left_) : kBlock;
          out_.append(g_pattern, k);
          left_ -= k;
        }
        if (left_ > 0) {
          return;  // on_tunnel_drained brings us back
        }
        if (close_after_) {
          end();
          return;
        }
      }
      if (in_.empty() || backlogged()) {
        break;
      }
      std::span<const uint8_t> f = in_.front();
      bool done = false;
      size_t n = parser_.parse(f.data(), f.size(), &done);
      in_.drain(n);
      used_ += n;
      if (parser_.failed()) {
        out_.append(sh_.responses.bad().data(), sh_.responses.bad().size());
        end();
        return;
      }
      if (done) {
        answer(parser_.request());
      }
    }
    if (mode_ == Mode::Http1 && eof_ && in_.empty() && left_ == 0) {
      end();
    }
  }

  void answer(const Http1Parser::Request& r) {
    ++sh_.counters.http_requests;
    if (r.body < 0) {
      out_.append(sh_.responses.bad().data(), sh_.responses.bad().size());
    } else if (const Responses::Entry* e = sh_.responses.full(static_cast<uint64_t>(r.body))) {
      out_.append(e->bytes.data(), r.head ? e->head_len : e->bytes.size());
    } else {
      std::string head = sh_.responses.head(static_cast<uint64_t>(r.body));
      out_.append(head.data(), head.size());
      left_ = r.head ? 0 : static_cast<uint64_t>(r.body);
    }
    if (r.close) {
      close_after_ = true;
      if (left_ == 0) {
        end();
      }
    }
  }

  void pump_h2c() {
    bool ok = true;
    while (ok && !in_.empty() && !backlogged()) {
      std::span<const uint8_t> f = in_.front();
      ok = h2_->feed(f.data(), f.size());
      in_.drain(f.size());
      used_ += f.size();
      h2_->output(out_);
    }
    if (!ok) {
      h2_->output(out_);  // the GOAWAY
      end();
      return;
    }
    if (!backlogged()) {
      h2_->output(out_);  // streamed bodies go on as the tunnel drains
    }
    if (eof_ && in_.empty() && !backlogged() && !h2_->want_output()) {
      h2_->finish();  // the client is done and every answer that can go out went out
      end();
    }
  }

  // Our half of the tunnel ends after what is in out_; later input is discarded.
  void end() {
    if (!out_.empty()) {
      tunnel_->write(out_);
    }
    tunnel_->write_eof();
    mode_ = Mode::Done;
    used_ += in_.length();
    in_.clear();
  }

  Pod& pod_;
  Shared& sh_;
  hbone::Tunnel* tunnel_;  // nullptr once closed
  Mode mode_;
  bool eof_ = false;
  bool close_after_ = false;  // HTTP/1.1: the connection ends after the current response
  buffer::Buffer in_;         // received, not yet parsed (nor consumed)
  buffer::Buffer out_;        // staged for one tunnel write per pump
  size_t used_ = 0;           // parsed bytes to consume()
  uint64_t left_ = 0;         // HTTP/1.1: streamed body bytes still to write
  Http1Parser parser_;
  std::unique_ptr<H2Service> h2_;
};

// ---------------------------------------------------------------------------------------------
// One --plain connection: HTTP/2 over mutual TLS, no CONNECT.

class PlainConn final : public net::TransportCallbacks, public event::DeferredDeletable {
 public:
  PlainConn(Pod& pod, Shared& sh, int fd, const tls::ContextPtr& tls)
      : pod_(pod),
        sh_(sh),
        socket_(sh.loop, fd, tls, "", std::chrono::seconds(10)),
        h2_(sh),
        pump_soon_(sh.loop, [this] { pump(); }) {}
  void start() { socket_.start(*this); }
  void close() {
    if (!closed_) {
      socket_.close(false);
      done();
    }
  }

 private:
  void on_transport_connected() override { pump(); }
  void on_transport_data(const uint8_t* data, size_t len) override {
    if (!failed_ && !h2_.feed(data, len)) {
      failed_ = true;
    }
    pump_soon_.schedule();  // one flush per loop iteration, after every read
  }
  void on_transport_writable() override { pump(); }
  void on_transport_closed(net::CloseReason, net::HandshakeFailure) override { done(); }

  void pump() {
    if (closed_) {
      return;
    }
    while (h2_.want_output() && !socket_.output_full()) {
      h2_.output(out_);
      if (out_.empty()) {
        break;
      }
      out_.for_each([this](const uint8_t* p, size_t n) { socket_.append(p, n); });
      out_.clear();
    }
    if (failed_) {
      socket_.close(true);  // sends what is staged (the GOAWAY), then close_notify
      done();
      return;
    }
    socket_.flush();  // may report the socket closed: nothing may follow
  }

  void done();

  Pod& pod_;
  Shared& sh_;
  tls::Socket socket_;
  H2Service h2_;
  buffer::Buffer out_;
  bool failed_ = false, closed_ = false;
  event::Deferred pump_soon_;
};

// ---------------------------------------------------------------------------------------------
// The pod: listeners, HBONE connections, tunnels and plain connections, and shutdown.

class Pod final : public hbone::H2Connection::Owner, public hbone::ConnectHandler {
 public:
  explicit Pod(const Options& o) : sh_{loop_, o, Responses(o.name), {}, {}} {
    config::TlsFiles files{o.cert, o.key, o.root};
    tls_ = tls::Context::make(tls::Context::Role::Server, files, o.trust_domain);
    settings_.max_concurrent_streams = o.max_streams;
    settings_.keepalive_interval = std::chrono::milliseconds(0);  // no PINGs: less work
    sh_.h2c.max_concurrent_streams = o.max_streams;
    sh_.h2c.initial_window_size = 4u << 20;
    sh_.h2c.connection_window_size = 16u << 20;
    sh_.responses.full(o.body_bytes);  // the common size is built before the first request
  }

  bool listen(std::string* err) {
    net::ListenOptions lo;
    int fd = net::listen_tcp(sh_.opts.hbone, lo, err);
    if (fd < 0) {
      return false;
    }
    hbone_ = std::make_unique<net::Acceptor>(loop_, fd, [this](int cfd, const net::SockAddr& peer) {
      ++sh_.counters.connections;
      auto c = std::make_unique<hbone::HboneServerConnection>(loop_, cfd, peer, tls_, settings_, *this, stats_, *this);
      auto* raw = c.get();
      conns_.emplace(raw, std::move(c));
      raw->start();
    });
    if (sh_.opts.plain) {
      fd = net::listen_tcp(*sh_.opts.plain, lo, err);
      if (fd < 0) {
        return false;
      }
      plain_ = std::make_unique<net::Acceptor>(loop_, fd, [this](int cfd, const net::SockAddr&) {
        ++sh_.counters.connections;
        auto c = std::make_unique<PlainConn>(*this, sh_, cfd, tls_);
        auto* raw = c.get();
        plains_.emplace(raw, std::move(c));
        raw->start();
      });
    }
    for (int signum : {SIGTERM, SIGINT}) {
      auto* h = new uv_signal_t;
      uv_signal_init(loop_.uv(), h);
      h->data = this;
      uv_signal_start(
          h, [](uv_signal_t* s, int) { static_cast<Pod*>(s->data)->shutdown(); }, signum);
      signals_.push_back(h);
    }
    return true;
  }

  void run() { loop_.run(); }
  const Counters& counters() const { return sh_.counters; }

  void tunnel_closed(PodTunnel& t) { release(tunnels_, &t); }
  void plain_closed(PlainConn& c) { release(plains_, &c); }

 private:
  void on_connection_closed(hbone::H2Connection& c) override { release(conns_, &c); }

  void on_connect_request(const hbone::InboundConnect& req) override {
    ++sh_.counters.tunnels;
    hbone::H2Stream& stream = req.stream;
    stream.respond(200);
    auto t = std::make_unique<PodTunnel>(*this, sh_, stream, req.destination.port() == sh_.opts.tcp_port);
    auto* raw = t.get();
    tunnels_.emplace(raw, std::move(t));
    stream.set_handler(raw);  // delivers what already arrived
  }

  // Drops `key` from `map`, deleting its object after the current callbacks.
  template <class Map, class Key>
  void release(Map& map, Key* key) {
    auto it = map.find(key);
    if (it != map.end()) {
      loop_.defer_delete(std::move(it->second));
      map.erase(it);
    }
  }

  void shutdown() {
    hbone_.reset();
    plain_.reset();
    for (auto* h : signals_) {
      event::close_and_delete(h);
    }
    signals_.clear();
    close_all(conns_);  // tunnels close with their connection
    close_all(plains_);
    loop_.stop();
  }

  template <class Map>
  static void close_all(Map& map) {
    std::vector<typename Map::key_type> all;
    for (auto& [p, c] : map) {
      all.push_back(p);
    }
    for (auto* p : all) {
      p->close();  // removes p from map
    }
  }

  event::Loop loop_;  // first: outlives everything below
  Shared sh_;
  tls::ContextPtr tls_;
  stats::Block stats_;
  hbone::H2Settings settings_;
  std::unique_ptr<net::Acceptor> hbone_, plain_;
  std::vector<uv_signal_t*> signals_;
  std::unordered_map<hbone::H2Connection*, std::unique_ptr<hbone::HboneServerConnection>> conns_;
  std::unordered_map<PodTunnel*, std::unique_ptr<PodTunnel>> tunnels_;
  std::unordered_map<PlainConn*, std::unique_ptr<PlainConn>> plains_;
};

void PodTunnel::on_tunnel_closed(hbone::Tunnel&, bool) {
  tunnel_ = nullptr;
  pod_.tunnel_closed(*this);
}

void PlainConn::done() {
  if (!closed_) {
    closed_ = true;
    pod_.plain_closed(*this);
  }
}

// ---------------------------------------------------------------------------------------------

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "wp-bench-pod: %s\n"
               "usage: wp-bench-pod --cert FILE --key FILE --root FILE [--trust-domain TD] --hbone IP:PORT\n"
               "                    [--plain IP:PORT] [--tcp-port N] [--body-bytes N] [--name NAME]\n"
               "                    [--max-streams N]\n",
               why);
  std::exit(2);
}

uint64_t number(std::string_view v, uint64_t max) {
  auto n = parse_u64(v);
  if (!n || *n > max) {
    usage("bad number");
  }
  return *n;
}

net::SockAddr address(std::string_view v) {
  auto a = net::SockAddr::parse(v);
  if (!a) {
    usage("bad IP:PORT");
  }
  return *a;
}

Options parse_args(int argc, char** argv) {
  Options o;
  using V = std::string_view;
  const std::unordered_map<V, std::function<void(V)>> options = {
      {"--cert", [&](V v) { o.cert = v; }},
      {"--key", [&](V v) { o.key = v; }},
      {"--root", [&](V v) { o.root = v; }},
      {"--trust-domain", [&](V v) { o.trust_domain = v; }},
      {"--hbone", [&](V v) { o.hbone = address(v); }},
      {"--plain", [&](V v) { o.plain = address(v); }},
      {"--tcp-port", [&](V v) { o.tcp_port = static_cast<uint16_t>(number(v, 65535)); }},
      {"--body-bytes", [&](V v) { o.body_bytes = number(v, kMaxBody); }},
      {"--name", [&](V v) { o.name = v; }},
      {"--max-streams",
       [&](V v) { o.max_streams = static_cast<uint32_t>(std::max<uint64_t>(1, number(v, 1u << 31))); }},
  };
  for (int i = 1; i < argc; i += 2) {
    auto it = options.find(argv[i]);
    if (it == options.end() || i + 1 >= argc) {
      usage(it == options.end() ? "unknown option" : "missing value");
    }
    it->second(argv[i + 1]);
  }
  if (o.cert.empty() || o.key.empty() || o.root.empty() || o.hbone.port() == 0) {
    usage("--cert, --key, --root and --hbone are required");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts = parse_args(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  for (size_t i = 0; i < kBlock; ++i) {
    g_pattern[i] = static_cast<uint8_t>('a' + i % 26);
  }
  Counters c;
  try {
    Pod pod(opts);
    std::string err;
    if (!pod.listen(&err)) {
      std::fprintf(stderr, "wp-bench-pod: %s\n", err.c_str());
      return 1;
    }
    std::printf("ready\n");
    std::fflush(stdout);
    pod.run();
    c = pod.counters();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wp-bench-pod: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "wp-bench-pod: connections %llu tunnels %llu http_requests %llu tcp_bytes_received %llu\n",
               static_cast<unsigned long long>(c.connections), static_cast<unsigned long long>(c.tunnels),
               static_cast<unsigned long long>(c.http_requests), static_cast<unsigned long long>(c.tcp_bytes));
  return 0;
}
