// h2c codecs: one nghttp2 session per tunnel, driven with mem_recv / mem_send (no I/O here).
//
// Both roles share H2cEngine; the few places where they differ (what a HEADERS frame means, which
// callbacks to call, how errors are counted) branch on role_. Streams live in streams_ from the
// moment nghttp2 (or submit_request) creates them until nghttp2's stream-close callback; `known`
// says whether the owner has been told about the stream (and so gets on_stream_closed).
#include "waypoint/http/h2c_codec.h"

#include "waypoint/hbone/h2_core.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace wp::http {
namespace {

enum class Role : uint8_t { Server, Client };

std::string_view sv(const uint8_t* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

bool clean(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return false;
    }
  }
  return true;
}

// True when a comma-separated list value contains `token` (case-insensitive).
bool list_has(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (iequals(http::trim_ows(list.substr(0, comma)), token)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool nominated_by_connection(const HeaderMap& fields, std::string_view name) {
  for (const Header& h : fields) {
    if (h.name == "connection" && list_has(h.value, name)) {
      return true;
    }
  }
  return false;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
    return std::nullopt;
  }
  return v;
}

// A header block under construction: nghttp2 copies names and values on submit, so the strings
// only have to outlive the submit call.
class NvList {
 public:
  void add(std::string_view name, std::string_view value) {
    nva_.push_back(hbone::make_nv(name, value));  // credentials NO_INDEX
  }
  void add_owned(std::string_view name, std::string value) {
    owned_.push_back(std::move(value));
    add(name, owned_.back());
  }
  // Every regular field of `fields` that may cross into HTTP/2: no pseudo-headers, no hop-by-hop
  // fields (nor those Connection nominates), no Host (it is :authority), no Content-Length (the
  // head's content_length is authoritative), nothing with CR/LF/NUL. On requests `te: trailers`
  // survives, the one TE value HTTP/2 allows (gRPC needs it).
  void add_fields(const HeaderMap& fields, bool request) {
    const bool has_connection = fields.has("connection");
    for (const Header& h : fields) {
      if (h.name.empty() || h.name[0] == ':' || h.name == "host" || h.name == "content-length" || !clean(h.name) ||
          !clean(h.value)) {
        continue;
      }
      if (is_hop_by_hop(h.name)) {
        if (request && h.name == "te" && list_has(h.value, "trailers") && !te_trailers_) {
          te_trailers_ = true;
          add("te", "trailers");
        }
        continue;
      }
      if (has_connection && nominated_by_connection(fields, h.name)) {
        continue;
      }
      add(h.name, h.value);
    }
  }
  const nghttp2_nv* data() const { return nva_.data(); }
  size_t size() const { return nva_.size(); }

 private:
  std::vector<nghttp2_nv> nva_;
  std::deque<std::string> owned_;  // deque: references stay valid as it grows
  bool te_trailers_ = false;
};

// What the receiving half of a stream expects next.
enum class RecvState : uint8_t { Headers, Body, Trailers, Ended };
// The sending half: nothing submitted yet, a data provider attached, END_STREAM queued.
enum class SendState : uint8_t { Idle, Streaming, Ended };

struct Stream {
  Stream(int32_t id_, size_t max_header_list_bytes) : id(id_), header_budget(max_header_list_bytes) {}
  int32_t id;
  bool known = false;        // server: on_request was called; client: submitted by the owner
  bool local_reset = false;  // the owner reset it: only on_stream_closed is delivered from now on
  // Receiving.
  RecvState recv = RecvState::Headers;
  HeaderMap fields;
  std::string method, path, authority, scheme, status;
  hbone::HeaderBudget header_budget;
  bool header_overflow = false;  // server: answered 431 by the codec itself
  bool reset_after_reply = false;
  size_t unconsumed = 0;  // delivered to the owner and not yet given back with consume()
  // Sending.
  SendState send = SendState::Idle;
  buffer::Buffer queue;
  bool local_end = false;  // END_STREAM once the queue (and trailers) are out
  std::optional<HeaderMap> trailers;
  bool deferred = false;  // the data provider returned NGHTTP2_ERR_DEFERRED
  bool drain_pending = false;
  // Premature-reset accounting (server).
  bool answered = false;    // response headers submitted
  bool peer_reset = false;  // a RST_STREAM arrived for it
  std::chrono::steady_clock::time_point born = std::chrono::steady_clock::now();

  void reset_fields() {
    fields.clear();
    method.clear();
    path.clear();
    authority.clear();
    scheme.clear();
    status.clear();
    header_budget.reset();
  }
};

// One way the session can be: usable, failed (on_error was called), or over (finish()).
enum class SessionState : uint8_t { Open, Failed, Finished };

class H2cEngine {
 public:
  H2cEngine(Role role, H2cServerCallbacks* server_cb, H2cClientCallbacks* client_cb, const H2cSettings& settings);
  ~H2cEngine();
  H2cEngine(const H2cEngine&) = delete;
  H2cEngine& operator=(const H2cEngine&) = delete;

  bool feed(const uint8_t* data, size_t len);
  void finish();
  void output(buffer::Buffer& out);
  bool want_output() const;

  void respond(int32_t id, const ResponseHead& head, bool end_stream);
  int32_t submit_request(const RequestHead& head, bool end_stream);
  void send_body(int32_t id, buffer::Buffer& data, bool end_stream);
  void send_trailers(int32_t id, const HeaderMap& trailers);
  void reset(int32_t id, uint32_t error_code);
  void consume(int32_t id, size_t bytes);
  size_t pending_body(int32_t id) const;
  void goaway();
  size_t active_streams() const { return known_streams_; }
  uint32_t available_streams() const;
  bool usable() const { return state_ == SessionState::Open && !goaway_received_; }

 private:
  Stream* find(int32_t id) const {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  // A stream the owner may still hear about (known, open, not reset by the owner).
  Stream* live(int32_t id) const {
    Stream* s = find(id);
    return s != nullptr && s->known && !s->local_reset ? s : nullptr;
  }
  Stream& add_stream(int32_t id);
  bool recv_bytes(const uint8_t* data, size_t len);
  void flush(buffer::Buffer& out);
  bool fire_drained();
  nghttp2_data_provider provider();
  void resume(Stream& s);
  void fail(const char* reason);
  // Ends the session for abuse: GOAWAY(ENHANCE_YOUR_CALM), reported once with `counter`.
  void terminate(const char* reason, stats::Id counter);
  void report_error(const char* reason, std::optional<stats::Id> counter, bool graceful = false);
  void report_graceful_goaway() { report_error("upstream sent GOAWAY", std::nullopt, true); }
  void close_all(uint32_t error_code);
  void reject_431(Stream& s, bool request_ended);
  void deliver_head(Stream& s, bool end_stream);
  void deliver_trailers(Stream& s);
  void deliver_end(int32_t id);
  void stream_closed(int32_t id, uint32_t error_code);

  // nghttp2 trampolines.
  static nghttp2_session_callbacks* callbacks();
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t flags, void* user);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_data_chunk(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data, size_t len, void* user);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int lib_error, void* user);
  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* user);
  static ssize_t read_data(nghttp2_session*, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source*, void* user);
  // DATA frames are NO_COPY: the header goes to the output and the payload's slices move there.
  static int send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                       nghttp2_data_source*, void* user);

  Role role_;
  H2cServerCallbacks* server_cb_;
  H2cClientCallbacks* client_cb_;
  H2cSettings settings_;
  nghttp2_session* session_ = nullptr;
  SessionState state_ = SessionState::Open;
  bool output_allowed_ = true;  // false after a fatal nghttp2 error: the session must not be driven
  bool error_reported_ = false;
  bool goaway_received_ = false;
  int nghttp2_depth_ = 0;                // >0 while inside mem_recv / mem_send (their callbacks may call us)
  buffer::Buffer staged_;                // framed during feed(), handed over by output()
  buffer::Buffer* flush_out_ = nullptr;  // where flush() is framing to (send_data appends there)
  buffer::Buffer body_;                  // what on_data_chunk hands over
  buffer::Buffer pending_in_;            // fed re-entrantly from a callback, processed after the outer call
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;
  size_t known_streams_ = 0;
  std::vector<int32_t> drained_;
  bool inject_stream_limit_ = false;  // server: our first SETTINGS still to carry the stream limit
  bool terminated_ = false;
  hbone::EmptyFrameGuard empty_frames_;
  hbone::PrematureResetGuard premature_resets_;
  std::vector<uint8_t> scratch_;
};

H2cEngine::H2cEngine(Role role, H2cServerCallbacks* server_cb, H2cClientCallbacks* client_cb,
                     const H2cSettings& settings)
    : role_(role),
      server_cb_(server_cb),
      client_cb_(client_cb),
      settings_(settings),
      empty_frames_(settings.limits.max_consecutive_empty_frames),
      premature_resets_(settings.limits) {
  // Values the protocol cannot carry are clamped rather than sent (RFC 9113 §6.5.2).
  const hbone::H2SessionSettings wanted{settings_.initial_window_size, settings_.connection_window_size,
                                        settings_.max_frame_size, settings_.max_header_list_bytes};
  const hbone::H2SessionSettings legal = hbone::clamp(wanted);
  settings_.initial_window_size = legal.stream_window;
  settings_.connection_window_size = legal.connection_window;
  settings_.max_frame_size = legal.max_frame_size;
  session_ = hbone::new_session(role_ == Role::Server, callbacks(), this, legal);
  if (session_ == nullptr) {
    throw std::bad_alloc();
  }
  // The stream limit is not nghttp2's to enforce (it would end the session over one stream): it is
  // added to our SETTINGS frame on its way out and enforced per stream with REFUSED_STREAM.
  inject_stream_limit_ = role_ == Role::Server;
  hbone::submit_settings(session_, legal);
}

H2cEngine::~H2cEngine() {
  server_cb_ = nullptr;  // nghttp2_session_del calls no callbacks, but be explicit about it
  client_cb_ = nullptr;
  nghttp2_session_del(session_);
}

Stream& H2cEngine::add_stream(int32_t id) {
  auto& slot = streams_[id];
  slot = std::make_unique<Stream>(id, settings_.max_header_list_bytes);
  return *slot;
}

// --- input ------------------------------------------------------------------------------------

bool H2cEngine::feed(const uint8_t* data, size_t len) {
  if (state_ != SessionState::Open) {
    return false;
  }
  if (nghttp2_depth_ > 0) {
    pending_in_.append(data, len);  // from a callback: nghttp2 is not re-entrant
    return true;
  }
  bool ok = recv_bytes(data, len);
  while (ok && !pending_in_.empty()) {
    buffer::Buffer in = std::move(pending_in_);
    pending_in_ = buffer::Buffer();
    while (ok && !in.empty()) {
      auto chunk = in.front();
      ok = recv_bytes(chunk.data(), chunk.size());
      in.drain(chunk.size());
    }
  }
  // Frame what the input provoked now (SETTINGS ACK, WINDOW_UPDATE, replies submitted from
  // callbacks). This is also where a connection error nghttp2 found surfaces: it answers with a
  // GOAWAY rather than failing mem_recv, and on_frame_send sees it go.
  flush(staged_);
  return state_ == SessionState::Open;
}

bool H2cEngine::recv_bytes(const uint8_t* data, size_t len) {
  ++nghttp2_depth_;
  ssize_t rv = nghttp2_session_mem_recv(session_, data, len);
  --nghttp2_depth_;
  if (rv < 0) {
    const int err = static_cast<int>(rv);
    if (err == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
      // Not HTTP/2 at all. The session itself is intact: say why in a GOAWAY.
      nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
      fail("invalid HTTP/2 connection preface");
    } else {
      output_allowed_ = false;  // fatal (flood, memory): nghttp2 must not be driven any more
      // nghttp2 can frame nothing more, so the GOAWAY that says why is written by hand.
      auto frame = hbone::goaway_frame(nghttp2_session_get_last_proc_stream_id(session_),
                                       hbone::fatal_goaway_code(err, NGHTTP2_PROTOCOL_ERROR));
      staged_.append(frame.data(), frame.size());
      fail(nghttp2_strerror(err));
    }
    return false;
  }
  return state_ == SessionState::Open;
}

void H2cEngine::finish() {
  if (state_ != SessionState::Open) {
    return;
  }
  state_ = SessionState::Finished;
  output_allowed_ = false;
  pending_in_.clear();
  close_all(NGHTTP2_CANCEL);
}

// --- output -----------------------------------------------------------------------------------

void H2cEngine::output(buffer::Buffer& out) {
  if (nghttp2_depth_ > 0) {
    return;  // called from a callback: want_output() stays true, the owner calls again
  }
  if (!staged_.empty()) {
    out.move_from(staged_);
  }
  flush(out);
}

bool H2cEngine::want_output() const {
  if (!staged_.empty()) {
    return true;
  }
  return output_allowed_ && nghttp2_session_want_write(session_) != 0;
}

int H2cEngine::send_data(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                         nghttp2_data_source*, void* user) {
  auto* self = static_cast<H2cEngine*>(user);
  Stream* s = self->find(frame->hd.stream_id);
  if (self->flush_out_ == nullptr || s == nullptr || s->queue.length() < length) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;  // cannot happen: read_data counted these bytes
  }
  buffer::Buffer& out = *self->flush_out_;
  out.append(framehd, 9);
  const size_t padlen = frame->data.padlen;
  if (padlen > 0) {
    const auto pad_len_byte = static_cast<uint8_t>(padlen - 1);
    out.append(&pad_len_byte, 1);
  }
  out.move(s->queue, length);
  if (padlen > 1) {
    static const uint8_t zeros[256] = {};
    out.append(zeros, padlen - 1);
  }
  if (length > 0 && s->known && !s->drain_pending) {
    s->drain_pending = true;
    self->drained_.push_back(s->id);
  }
  return 0;
}

void H2cEngine::flush(buffer::Buffer& out) {
  if (nghttp2_depth_ > 0) {
    return;
  }
  flush_out_ = &out;
  // Callbacks fired after a round (drained streams) may queue more frames: go round again.
  while (output_allowed_) {
    for (;;) {
      const uint8_t* p = nullptr;
      ++nghttp2_depth_;
      ssize_t n = nghttp2_session_mem_send(session_, &p);
      --nghttp2_depth_;
      if (n < 0) {
        flush_out_ = nullptr;
        output_allowed_ = false;
        fail(nghttp2_strerror(static_cast<int>(n)));
        return;
      }
      if (n == 0) {
        break;
      }
      if (inject_stream_limit_ &&
          hbone::add_max_concurrent_streams(p, static_cast<size_t>(n), settings_.max_concurrent_streams, scratch_)) {
        inject_stream_limit_ = false;
        out.append(scratch_.data(), scratch_.size());
        continue;
      }
      out.append(p, static_cast<size_t>(n));
    }
    if (!fire_drained()) {
      break;
    }
  }
  flush_out_ = nullptr;
}

bool H2cEngine::fire_drained() {
  if (drained_.empty()) {
    return false;
  }
  std::vector<int32_t> ids;
  ids.swap(drained_);
  for (int32_t id : ids) {
    Stream* s = live(id);
    if (s == nullptr || !s->drain_pending) {
      continue;
    }
    s->drain_pending = false;
    if (role_ == Role::Server) {
      server_cb_->on_stream_drained(id);
    } else {
      client_cb_->on_stream_drained(id);
    }
  }
  return true;
}

// --- errors -----------------------------------------------------------------------------------

void H2cEngine::report_error(const char* reason, std::optional<stats::Id> counter, bool graceful) {
  if (error_reported_) {
    return;
  }
  error_reported_ = true;
  CodecError e;
  e.reason = reason;
  e.counter = counter;
  e.graceful = graceful;
  if (role_ == Role::Server) {
    e.status = 400;
    e.source = ErrorSource::Downstream;
    server_cb_->on_error(e);
  } else {
    e.status = 502;
    e.source = ErrorSource::Upstream;
    client_cb_->on_error(e);
  }
}

void H2cEngine::terminate(const char* reason, stats::Id counter) {
  if (terminated_ || state_ != SessionState::Open) {
    return;
  }
  terminated_ = true;
  report_error(reason, counter);  // first, so that fail() on the GOAWAY's way out says nothing more
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
}

void H2cEngine::fail(const char* reason) {
  if (state_ != SessionState::Open) {
    return;
  }
  state_ = SessionState::Failed;
  pending_in_.clear();
  report_error(reason,
               role_ == Role::Server ? stats::Id::downstream_h2c_protocol_error : stats::Id::upstream_rs_malformed);
  close_all(NGHTTP2_PROTOCOL_ERROR);
}

// Every stream the owner knows is lost with the session; nghttp2 will not report them any more.
void H2cEngine::close_all(uint32_t error_code) {
  std::vector<int32_t> ids;
  for (const auto& [id, s] : streams_) {
    if (s->known) {
      ids.push_back(id);
    }
  }
  std::sort(ids.begin(), ids.end());
  streams_.clear();
  known_streams_ = 0;
  drained_.clear();
  for (int32_t id : ids) {
    if (role_ == Role::Server) {
      server_cb_->on_stream_closed(id, error_code);
    } else {
      client_cb_->on_stream_closed(id, error_code);
    }
  }
}

// --- sending ----------------------------------------------------------------------------------

nghttp2_data_provider H2cEngine::provider() {
  nghttp2_data_provider p{};
  p.source.ptr = nullptr;  // streams are looked up by id: they may be created after submit
  p.read_callback = &H2cEngine::read_data;
  return p;
}

void H2cEngine::resume(Stream& s) {
  if (s.send == SendState::Streaming && s.deferred) {
    s.deferred = false;
    nghttp2_session_resume_data(session_, s.id);
  }
}

void H2cEngine::respond(int32_t id, const ResponseHead& head, bool end_stream) {
  Stream* s = live(id);
  if (state_ != SessionState::Open || s == nullptr || s->send != SendState::Idle) {
    return;
  }
  s->answered = true;
  std::string status = std::to_string(head.status);
  NvList nv;
  nv.add(":status", status);
  nv.add_fields(head.headers, false);
  if (head.status >= 100 && head.status < 200) {
    if (head.status != 101 && !end_stream) {  // 101 has no meaning in HTTP/2
      nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, id, nullptr, nv.data(), nv.size(), nullptr);
    }
    return;
  }
  if (head.content_length && head.status != 204 && head.status != 304) {
    nv.add_owned("content-length", std::to_string(*head.content_length));
  }
  if (end_stream && s->queue.empty() && !s->trailers) {
    s->send = SendState::Ended;
    nghttp2_submit_response(session_, id, nv.data(), nv.size(), nullptr);
    return;
  }
  s->local_end = s->local_end || end_stream;
  s->send = SendState::Streaming;
  nghttp2_data_provider p = provider();
  nghttp2_submit_response(session_, id, nv.data(), nv.size(), &p);
}

int32_t H2cEngine::submit_request(const RequestHead& head, bool end_stream) {
  if (available_streams() == 0) {
    return -1;
  }
  NvList nv;
  nv.add(":method", head.method);
  std::string_view authority = head.authority;
  if (authority.empty()) {
    authority = head.headers.get("host").value_or(std::string_view());
  }
  const bool connect = head.method == "CONNECT";
  if (!connect) {
    nv.add(":scheme", settings_.scheme);
  }
  if (!authority.empty()) {
    nv.add(":authority", authority);
  }
  if (!connect) {
    nv.add(":path", head.target.empty() ? std::string_view("/") : std::string_view(head.target));
  }
  nv.add_fields(head.headers, true);
  if (head.content_length) {
    nv.add_owned("content-length", std::to_string(*head.content_length));
  }
  int32_t id;
  if (end_stream) {
    id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), nullptr, nullptr);
  } else {
    nghttp2_data_provider p = provider();
    id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), &p, nullptr);
  }
  if (id < 0) {
    return -1;
  }
  Stream& s = add_stream(id);
  s.known = true;
  ++known_streams_;
  s.send = end_stream ? SendState::Ended : SendState::Streaming;
  return id;
}

void H2cEngine::send_body(int32_t id, buffer::Buffer& data, bool end_stream) {
  Stream* s = live(id);
  if (state_ != SessionState::Open || s == nullptr || s->send == SendState::Ended || s->local_end) {
    data.clear();
    return;
  }
  s->queue.move_from(data);
  s->local_end = end_stream;
  resume(*s);
}

void H2cEngine::send_trailers(int32_t id, const HeaderMap& trailers) {
  Stream* s = live(id);
  if (state_ != SessionState::Open || s == nullptr || s->send == SendState::Ended || s->local_end) {
    return;
  }
  s->local_end = true;
  HeaderMap kept;
  for (const Header& h : trailers) {
    if (!h.name.empty() && h.name[0] != ':' && !is_hop_by_hop(h.name) && h.name != "content-length" && clean(h.name) &&
        clean(h.value)) {
      kept.add(h.name, h.value);
    }
  }
  if (!kept.empty()) {  // no fields left: an empty DATA frame with END_STREAM ends the stream
    s->trailers = std::move(kept);
  }
  resume(*s);
}

void H2cEngine::reset(int32_t id, uint32_t error_code) {
  Stream* s = find(id);
  if (state_ != SessionState::Open || s == nullptr || !s->known || s->local_reset) {
    return;
  }
  s->local_reset = true;
  s->queue.clear();
  s->trailers.reset();
  if (s->unconsumed > 0) {  // the owner will not pass these on
    nghttp2_session_consume(session_, id, s->unconsumed);
    s->unconsumed = 0;
  }
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, error_code);
}

void H2cEngine::consume(int32_t id, size_t bytes) {
  Stream* s = find(id);
  if (state_ != SessionState::Open || s == nullptr || bytes == 0) {
    return;  // a closed stream's bytes were given back to the connection when it closed
  }
  bytes = std::min(bytes, s->unconsumed);
  if (bytes == 0) {
    return;
  }
  s->unconsumed -= bytes;
  nghttp2_session_consume(session_, id, bytes);
}

size_t H2cEngine::pending_body(int32_t id) const {
  Stream* s = find(id);
  return s == nullptr ? 0 : s->queue.length();
}

void H2cEngine::goaway() {
  if (state_ != SessionState::Open) {
    return;
  }
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
}

uint32_t H2cEngine::available_streams() const {
  if (!usable() || nghttp2_session_get_next_stream_id(session_) > static_cast<uint32_t>(INT32_MAX)) {
    return 0;
  }
  uint32_t limit = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return limit > known_streams_ ? static_cast<uint32_t>(limit - known_streams_) : 0;
}

ssize_t H2cEngine::read_data(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                             nghttp2_data_source*, void* user) {
  auto* self = static_cast<H2cEngine*>(user);
  Stream* s = self->find(id);
  if (s == nullptr || s->local_reset) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets the stream
  }
  size_t n = std::min(length, s->queue.length());
  if (n > 0) {
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;  // the payload leaves the queue in send_data
  }
  if (n == s->queue.length() && s->local_end) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    s->send = SendState::Ended;
    if (s->trailers) {
      // The stream ends with the trailing HEADERS instead of this DATA frame.
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      NvList nv;
      nv.add_fields(*s->trailers, false);
      nghttp2_submit_trailer(session, id, nv.data(), nv.size());
      s->trailers.reset();
    }
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

// --- receiving --------------------------------------------------------------------------------

void H2cEngine::reject_431(Stream& s, bool request_ended) {
  // Answered here: the owner never hears of this stream, so nothing is counted.
  s.reset_fields();
  s.answered = true;
  s.send = SendState::Ended;
  s.recv = request_ended ? RecvState::Ended : RecvState::Body;
  s.reset_after_reply = !request_ended;
  NvList nv;
  nv.add(":status", "431");
  nv.add("content-length", "0");
  nghttp2_submit_response(session_, s.id, nv.data(), nv.size(), nullptr);
}

void H2cEngine::deliver_head(Stream& s, bool end_stream) {
  const int32_t id = s.id;
  s.recv = end_stream ? RecvState::Ended : RecvState::Body;
  if (!s.known) {  // server: the owner hears of the stream now
    s.known = true;
    ++known_streams_;
  }
  if (role_ == Role::Server) {
    RequestHead head;
    head.method = std::move(s.method);
    head.authority = std::move(s.authority);
    if (head.authority.empty()) {
      head.authority = std::string(s.fields.get("host").value_or(std::string_view()));
    }
    head.target = head.method == "CONNECT" ? head.authority : std::move(s.path);
    if (auto cl = s.fields.get("content-length")) {
      head.content_length = parse_u64(*cl);  // nghttp2 has validated it
    }
    if (auto expect = s.fields.get("expect")) {
      head.expect_continue = iequals(http::trim_ows(*expect), "100-continue");
    }
    head.headers = std::move(s.fields);
    s.reset_fields();
    server_cb_->on_request(id, std::move(head), end_stream);
  } else {
    ResponseHead head;
    head.status = static_cast<int>(parse_u64(s.status).value_or(0));
    if (head.status < 100 || head.status > 999) {
      // nghttp2 accepts :status 000-099; no such response exists (RFC 9110 §15). The stream is
      // reset, and the owner hears of it as a reset. Found by tests/fuzz/h2c_client_fuzz.cpp.
      s.reset_fields();
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    if (auto cl = s.fields.get("content-length")) {
      head.content_length = parse_u64(*cl);
    }
    head.headers = std::move(s.fields);
    s.reset_fields();
    client_cb_->on_response(id, std::move(head));
  }
  if (end_stream) {
    deliver_end(id);
  }
}

void H2cEngine::deliver_trailers(Stream& s) {
  const int32_t id = s.id;
  s.recv = RecvState::Ended;  // trailers always carry END_STREAM (nghttp2 checks)
  HeaderMap trailers = std::move(s.fields);
  s.reset_fields();
  if (role_ == Role::Server) {
    server_cb_->on_request_trailers(id, std::move(trailers));
  } else {
    client_cb_->on_response_trailers(id, std::move(trailers));
  }
  deliver_end(id);
}

void H2cEngine::deliver_end(int32_t id) {
  if (live(id) == nullptr) {
    return;  // reset or lost from inside the previous callback
  }
  if (role_ == Role::Server) {
    server_cb_->on_request_end(id);
  } else {
    client_cb_->on_response_end(id);
  }
}

void H2cEngine::stream_closed(int32_t id, uint32_t error_code) {
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return;
  }
  std::unique_ptr<Stream> s = std::move(it->second);
  streams_.erase(it);
  if (s->unconsumed > 0) {
    // Bytes the owner still holds no longer count against the stream; reopen the connection window.
    nghttp2_session_consume_connection(session_, s->unconsumed);
  }
  if (role_ == Role::Server && state_ == SessionState::Open &&
      premature_resets_.on_stream_closed(s->peer_reset, s->answered, std::chrono::steady_clock::now() - s->born)) {
    terminate("most streams were reset before they were answered (rapid reset)", stats::Id::inner_h2c_premature_reset);
  }
  if (!s->known) {
    return;
  }
  --known_streams_;
  if (role_ == Role::Server) {
    server_cb_->on_stream_closed(id, error_code);
  } else {
    client_cb_->on_stream_closed(id, error_code);
    if (usable()) {
      client_cb_->on_capacity();
    }
  }
}

// --- nghttp2 callbacks ------------------------------------------------------------------------

int H2cEngine::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2cEngine*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || self->state_ != SessionState::Open) {
    return 0;
  }
  const int32_t id = frame->hd.stream_id;
  if (self->role_ == Role::Server && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (self->streams_.size() >= self->settings_.max_concurrent_streams) {
      // Over the advertised limit: a stream error (RFC 9113 §5.1.2), the session goes on.
      nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
      self->server_cb_->on_stream_refused(id);
      return 0;
    }
    self->add_stream(id);
    return 0;
  }
  Stream* s = self->find(id);
  if (s == nullptr) {
    return 0;
  }
  if (s->recv == RecvState::Body) {
    s->recv = RecvState::Trailers;
    s->reset_fields();
  }
  return 0;
}

int H2cEngine::on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                         const uint8_t* value, size_t valuelen, uint8_t, void* user) {
  auto* self = static_cast<H2cEngine*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS) {
    return 0;
  }
  Stream* s = self->find(frame->hd.stream_id);
  if (s == nullptr || s->header_overflow || s->local_reset ||
      (s->recv != RecvState::Headers && s->recv != RecvState::Trailers)) {
    return 0;
  }
  if (!s->header_budget.add(namelen, valuelen)) {
    if (self->role_ == Role::Server && s->recv == RecvState::Headers) {
      s->header_overflow = true;  // answered 431 once the block is complete
      s->reset_fields();
      return 0;
    }
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets the stream (INTERNAL_ERROR)
  }
  std::string_view n = sv(name, namelen);
  std::string_view v = sv(value, valuelen);
  if (!n.empty() && n[0] == ':') {
    // nghttp2's HTTP messaging checks let only known pseudo-headers through, once each, first.
    if (n == ":method") {
      s->method.assign(v);
    } else if (n == ":path") {
      s->path.assign(v);
    } else if (n == ":authority") {
      s->authority.assign(v);
    } else if (n == ":scheme") {
      s->scheme.assign(v);
    } else if (n == ":status") {
      s->status.assign(v);
    }
    return 0;
  }
  if (n == "cookie") {
    // HTTP/2 may split cookies into several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
    if (auto prev = s->fields.get("cookie")) {
      std::string joined(*prev);
      joined.append("; ").append(v);
      s->fields.set("cookie", joined);
      return 0;
    }
  }
  s->fields.add(n, v);
  return 0;
}

int H2cEngine::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2cEngine*>(user);
  if (self->state_ != SessionState::Open) {
    return 0;
  }
  const int32_t id = frame->hd.stream_id;
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (self->role_ == Role::Server && self->empty_frames_.on_frame_recv(*frame)) {
    self->terminate("too many consecutive frames with an empty payload", stats::Id::inner_h2c_empty_frames_overflow);
    return 0;
  }
  switch (frame->hd.type) {
    case NGHTTP2_RST_STREAM:
      if (Stream* s = self->find(id)) {
        s->peer_reset = true;
      }
      return 0;
    case NGHTTP2_HEADERS: {
      Stream* s = self->find(id);
      if (s == nullptr || s->local_reset) {
        return 0;
      }
      if (s->recv == RecvState::Headers) {
        if (self->role_ == Role::Server) {
          if (s->header_overflow) {
            self->reject_431(*s, end_stream);
            return 0;
          }
        } else if (s->status.size() == 3 && s->status[0] == '1') {
          s->reset_fields();  // an interim response: the final one follows
          return 0;
        }
        self->deliver_head(*s, end_stream);
      } else if (s->recv == RecvState::Trailers) {
        if (s->known) {
          self->deliver_trailers(*s);
        } else {
          s->recv = RecvState::Ended;
        }
      }
      return 0;
    }
    case NGHTTP2_DATA:
      if (end_stream) {
        if (Stream* s = self->find(id)) {
          s->recv = RecvState::Ended;
          self->deliver_end(id);
        }
      }
      return 0;
    case NGHTTP2_SETTINGS:
      if (self->role_ == Role::Client && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
        self->client_cb_->on_capacity();
      }
      return 0;
    case NGHTTP2_GOAWAY:
      if (self->role_ == Role::Client) {
        self->goaway_received_ = true;
        // Streams up to last_stream_id still complete; later ones close with REFUSED_STREAM.
        if (frame->goaway.error_code == NGHTTP2_NO_ERROR) {
          self->report_graceful_goaway();
        } else {
          self->report_error("upstream sent GOAWAY", stats::Id::upstream_rs_malformed);
        }
      } else if (frame->goaway.error_code != NGHTTP2_NO_ERROR) {
        self->report_error(nghttp2_http2_strerror(frame->goaway.error_code), stats::Id::downstream_h2c_protocol_error);
      }
      return 0;
    default:
      return 0;
  }
}

int H2cEngine::on_data_chunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len,
                             void* user) {
  auto* self = static_cast<H2cEngine*>(user);
  Stream* s = self->live(id);
  if (s == nullptr || self->state_ != SessionState::Open) {
    nghttp2_session_consume(session, id, len);  // nobody will pass these on
    return 0;
  }
  s->unconsumed += len;
  // DATA payloads lie between frame headers in the fed bytes: copied once into slices here, and
  // moved from then on.
  buffer::Buffer& body = self->body_;
  body.append(data, len);
  if (self->role_ == Role::Server) {
    self->server_cb_->on_request_body(id, body);
  } else {
    self->client_cb_->on_response_body(id, body);
  }
  body.clear();
  return 0;
}

int H2cEngine::on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* self = static_cast<H2cEngine*>(user);
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    // nghttp2 found a connection error in what the peer sent (bad frame, flow control, flood...).
    self->fail(nghttp2_http2_strerror(frame->goaway.error_code));
    return 0;
  }
  if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    Stream* s = self->find(frame->hd.stream_id);
    if (s != nullptr && s->reset_after_reply && s->recv != RecvState::Ended) {
      // The 431 is out; tell a client still sending its body to stop (RFC 9113 §8.1).
      s->reset_after_reply = false;
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    }
  }
  return 0;
}

int H2cEngine::on_frame_not_send(nghttp2_session* session, const nghttp2_frame* frame, int, void* user) {
  // A response HEADERS that could not go (e.g. over the header block limit) would leave the stream
  // hanging; nghttp2 closes failed request HEADERS itself (REFUSED_STREAM).
  auto* self = static_cast<H2cEngine*>(user);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat != NGHTTP2_HCAT_REQUEST &&
      self->find(frame->hd.stream_id) != nullptr) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_INTERNAL_ERROR);
  }
  return 0;
}

int H2cEngine::on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* user) {
  static_cast<H2cEngine*>(user)->stream_closed(id, error_code);
  return 0;
}

nghttp2_session_callbacks* H2cEngine::callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, &H2cEngine::on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(c, &H2cEngine::on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, &H2cEngine::on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, &H2cEngine::on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, &H2cEngine::on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(c, &H2cEngine::on_frame_not_send);
    nghttp2_session_callbacks_set_send_data_callback(c, &H2cEngine::send_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, &H2cEngine::on_stream_close);
    return c;
  }();
  return cbs;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public faces

struct H2cServerCodec::Impl : H2cEngine {
  Impl(H2cServerCallbacks& cb, const H2cSettings& settings) : H2cEngine(Role::Server, &cb, nullptr, settings) {}
};

H2cServerCodec::H2cServerCodec(H2cServerCallbacks& callbacks, const H2cSettings& settings)
    : impl_(std::make_unique<Impl>(callbacks, settings)) {}
H2cServerCodec::~H2cServerCodec() = default;

bool H2cServerCodec::feed(const uint8_t* data, size_t len) {
  return impl_->feed(data, len);
}
void H2cServerCodec::finish() {
  impl_->finish();
}
void H2cServerCodec::respond(int32_t stream, const ResponseHead& head, bool end_stream) {
  impl_->respond(stream, head, end_stream);
}
void H2cServerCodec::send_body(int32_t stream, buffer::Buffer& data, bool end_stream) {
  impl_->send_body(stream, data, end_stream);
}
void H2cServerCodec::send_trailers(int32_t stream, const HeaderMap& trailers) {
  impl_->send_trailers(stream, trailers);
}
void H2cServerCodec::reset(int32_t stream, uint32_t error_code) {
  impl_->reset(stream, error_code);
}
void H2cServerCodec::consume(int32_t stream, size_t bytes) {
  impl_->consume(stream, bytes);
}
size_t H2cServerCodec::pending_body(int32_t stream) const {
  return impl_->pending_body(stream);
}
void H2cServerCodec::goaway() {
  impl_->goaway();
}
void H2cServerCodec::output(buffer::Buffer& out) {
  impl_->output(out);
}
bool H2cServerCodec::want_output() const {
  return impl_->want_output();
}
size_t H2cServerCodec::active_streams() const {
  return impl_->active_streams();
}

struct H2cClientCodec::Impl : H2cEngine {
  Impl(H2cClientCallbacks& cb, const H2cSettings& settings) : H2cEngine(Role::Client, nullptr, &cb, settings) {}
};

H2cClientCodec::H2cClientCodec(H2cClientCallbacks& callbacks, const H2cSettings& settings)
    : impl_(std::make_unique<Impl>(callbacks, settings)) {}
H2cClientCodec::~H2cClientCodec() = default;

bool H2cClientCodec::feed(const uint8_t* data, size_t len) {
  return impl_->feed(data, len);
}
void H2cClientCodec::finish() {
  impl_->finish();
}
int32_t H2cClientCodec::submit_request(const RequestHead& head, bool end_stream) {
  return impl_->submit_request(head, end_stream);
}
void H2cClientCodec::send_body(int32_t stream, buffer::Buffer& data, bool end_stream) {
  impl_->send_body(stream, data, end_stream);
}
void H2cClientCodec::send_trailers(int32_t stream, const HeaderMap& trailers) {
  impl_->send_trailers(stream, trailers);
}
void H2cClientCodec::reset(int32_t stream, uint32_t error_code) {
  impl_->reset(stream, error_code);
}
void H2cClientCodec::consume(int32_t stream, size_t bytes) {
  impl_->consume(stream, bytes);
}
size_t H2cClientCodec::pending_body(int32_t stream) const {
  return impl_->pending_body(stream);
}
void H2cClientCodec::output(buffer::Buffer& out) {
  impl_->output(out);
}
bool H2cClientCodec::want_output() const {
  return impl_->want_output();
}
size_t H2cClientCodec::active_streams() const {
  return impl_->active_streams();
}
uint32_t H2cClientCodec::available_streams() const {
  return impl_->available_streams();
}
bool H2cClientCodec::usable() const {
  return impl_->usable();
}

}  // namespace wp::http
