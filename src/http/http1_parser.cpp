#include <charconv>

#include "http1_impl.h"

namespace wp::http::detail {
namespace {

// The counter for the side being parsed: downstream requests or upstream responses.
#define WP_COUNTER(suffix) \
  (role_ == Role::Request ? stats::Id::downstream_rq_##suffix : stats::Id::upstream_rs_##suffix)

// Calls f(token) for each element of a comma-separated list (elements trimmed, may be empty).
template <class F>
void for_each_token(std::string_view list, F&& f) {
  while (true) {
    size_t comma = list.find(',');
    f(trim_ows(list.substr(0, comma)));
    if (comma == std::string_view::npos) {
      return;
    }
    list.remove_prefix(comma + 1);
  }
}

bool parse_length(std::string_view v, uint64_t& out) {
  if (v.empty() || v.size() > 19) {
    return false;
  }
  for (char c : v) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && ptr == v.data() + v.size();
}

// host = uri-host [ ":" port ]; reg-name / IPv4 / "[" IPv6 "]" characters only.
bool valid_host(std::string_view h) {
  if (h.empty()) {
    return false;
  }
  for (char c : h) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("-._~!$&'()*+,;=:[]%").find(c) != std::string_view::npos;
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace

Http1Parser::Http1Parser(Role role, const Http1Limits& limits, Http1ServerCallbacks* server,
                         Http1ClientCallbacks* client)
    : role_(role),
      limits_(limits),
      server_(server),
      client_(client),
      scanner_(limits.max_head_bytes, limits.max_headers,
               role == Role::Request ? limits.max_url_bytes : static_cast<size_t>(-1)) {
  init_settings();
  llhttp_init(&parser_, role == Role::Request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
  scanner_.begin_head();
}

void Http1Parser::init_settings() {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = [](llhttp_t* p) { return self(p).on_message_begin(); };
  settings_.on_url = [](llhttp_t* p, const char* at, size_t len) {
    Http1Parser& s = self(p);
    if (s.url_.size() + len > s.limits_.max_url_bytes) {
      return s.fail_cb(s.make(414, "request target too long", stats::Id::downstream_rq_url_overflow));
    }
    s.url_.append(at, len);
    return 0;
  };
  settings_.on_status = [](llhttp_t* p, const char* at, size_t len) {
    self(p).reason_.append(at, len);  // bounded by the scanner's head limit
    return 0;
  };
  settings_.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
    self(p).field_.append(at, len);
    return 0;
  };
  settings_.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
    self(p).value_.append(at, len);
    return 0;
  };
  settings_.on_header_value_complete = [](llhttp_t* p) { return self(p).on_header_value_complete(); };
  settings_.on_headers_complete = [](llhttp_t* p) { return self(p).on_headers_complete(); };
  settings_.on_body = [](llhttp_t* p, const char* at, size_t len) {
    Http1Parser& s = self(p);
    const auto* data = reinterpret_cast<const uint8_t*>(at);
    if (s.input_ != nullptr && data == s.input_front_ && len == s.input_size_ && s.moved_ == 0) {
      // The whole slice is body: it changes hands. llhttp is at the slice's end now and does not
      // read these bytes again (it only compares its position with the end).
      s.body_.move(*s.input_, len);
      s.moved_ = len;
    } else {
      s.body_.append(data, len);
    }
    if (s.server_ != nullptr) {
      s.server_->on_body(s.body_);
    } else {
      s.client_->on_body(s.body_);
    }
    s.body_.clear();  // a callback that kept nothing leaves nothing behind
    return 0;
  };
  settings_.on_message_complete = [](llhttp_t* p) { return self(p).on_message_complete(); };
}

CodecError Http1Parser::make(int status, const char* reason, stats::Id counter) const {
  CodecError e;
  if (role_ == Role::Request) {
    e.status = status;
    e.source = ErrorSource::Downstream;
  } else {
    e.status = 502;
    e.source = ErrorSource::Upstream;
  }
  e.reason = reason;
  e.counter = counter;
  return e;
}

int Http1Parser::fail_cb(const CodecError& e) {
  if (!pending_error_) {
    pending_error_ = e;
  }
  return HPE_USER;
}

void Http1Parser::fail(const CodecError& e) {
  if (state_ == CodecState::Error) {
    return;
  }
  state_ = CodecState::Error;
  pending_error_.reset();
  if (server_ != nullptr) {
    server_->on_error(e);
  } else {
    client_->on_error(e);
  }
}

CodecError Http1Parser::scan_error(ScanError e) const {
  stats::Id malformed = WP_COUNTER(malformed);
  switch (e) {
    case ScanError::BadStartLine:
      return make(400, "invalid character in the start line", malformed);
    case ScanError::BareCr:
      return make(400, "bare CR", malformed);
    case ScanError::BareLf:
      return make(400, "bare LF (lines must end with CRLF)", malformed);
    case ScanError::ObsFold:
      return make(400, "obsolete line folding", malformed);
    case ScanError::EmptyFieldName:
      return make(400, "empty header name", malformed);
    case ScanError::FieldNameSpace:
      return make(400, "whitespace in or after a header name", malformed);
    case ScanError::BadFieldName:
      return make(400, "invalid header name", malformed);
    case ScanError::BadFieldValue:
      return make(400, "invalid character in a header value", malformed);
    case ScanError::HeadTooLarge:
      return make(431, scanner_.in_trailers() ? "trailers too large" : "headers too large",
                  WP_COUNTER(header_bytes_overflow));
    case ScanError::TooManyFields:
      return make(431, scanner_.in_trailers() ? "too many trailers" : "too many headers",
                  WP_COUNTER(header_count_overflow));
    case ScanError::TargetTooLong:
      return make(414, "request target too long", WP_COUNTER(url_overflow));
    case ScanError::BadChunkSize:
      return make(400, "invalid chunk size", malformed);
    case ScanError::BadChunkExt:
      return make(400, "invalid chunk extension", malformed);
    case ScanError::ChunkDataNoCrlf:
      return make(400, "chunk data not followed by CRLF", malformed);
    case ScanError::None:
      break;
  }
  return make(400, "malformed message", malformed);
}

CodecError Http1Parser::llhttp_error(llhttp_errno_t e) const {
  switch (e) {
    case HPE_UNEXPECTED_CONTENT_LENGTH:
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_INVALID_TRANSFER_ENCODING:
      return make(400, "ambiguous message framing", WP_COUNTER(framing_rejected));
    case HPE_INVALID_VERSION:
      return make(400, "unsupported HTTP version", WP_COUNTER(unsupported_version));
    case HPE_INVALID_URL:
      return make(400, "invalid request target", WP_COUNTER(malformed));
    case HPE_INVALID_METHOD:
      return make(400, "invalid method", WP_COUNTER(malformed));
    default:
      return make(400, "malformed message", WP_COUNTER(malformed));
  }
}

size_t Http1Parser::feed(buffer::Buffer& in) {
  auto front = in.front();
  if (front.empty()) {
    return 0;
  }
  input_ = &in;
  input_front_ = front.data();
  input_size_ = front.size();
  moved_ = 0;
  size_t n = feed(front.data(), front.size());
  input_ = nullptr;
  in.drain(n > moved_ ? n - moved_ : 0);
  return n;
}

size_t Http1Parser::feed(const uint8_t* data, size_t len) {
  if (state_ == CodecState::Closed) {
    return len;
  }
  if (state_ != CodecState::Running) {
    return 0;
  }
  size_t pos = 0;
  while (pos < len && state_ == CodecState::Running) {
    size_t n = len - pos;
    bool section_done = false;
    const Phase scanned_phase = phase_;
    if (phase_ == Phase::Head || phase_ == Phase::Chunked) {
      RawScanner::Result r = scanner_.scan(data + pos, n);
      if (r.error != ScanError::None) {
        // llhttp still gets the bytes before the bad one, so that the first error in byte order
        // wins whatever the split (a byte-by-byte feed would have shown llhttp those bytes too).
        // Those bytes cannot complete a head: the scanner accepted no head end in them.
        const char* begin = reinterpret_cast<const char*>(data + pos);
        llhttp_errno_t err = r.consumed > 0 ? llhttp_execute(&parser_, begin, r.consumed) : HPE_OK;
        if (err != HPE_OK && state_ == CodecState::Running) {
          fail(pending_error_ ? *pending_error_ : llhttp_error(err));
          return pos + static_cast<size_t>(llhttp_get_error_pos(&parser_) - begin);
        }
        fail(scan_error(r.error));
        return pos + r.consumed;
      }
      n = r.consumed;
      section_done = r.done;
    }
    const char* begin = reinterpret_cast<const char*>(data + pos);
    llhttp_errno_t err = llhttp_execute(&parser_, begin, n);
    if (err == HPE_OK) {
      pos += n;
      if (section_done && phase_ == scanned_phase) {
        // The scanner saw the head or the body end but llhttp did not: never loop on that.
        fail(make(400, "malformed message", WP_COUNTER(malformed)));
        return pos;
      }
      continue;
    }
    if (err == HPE_PAUSED) {
      // Paused by on_message_complete: error_pos is just past the message.
      pos += static_cast<size_t>(llhttp_get_error_pos(&parser_) - begin);
      llhttp_resume(&parser_);
      if (!message_keep_alive_) {
        state_ = CodecState::Closed;  // what follows a closing message is never parsed
        return len;
      }
      if (role_ == Role::Request) {
        state_ = CodecState::Paused;
        return pos;
      }
      continue;
    }
    if (pending_error_) {
      fail(*pending_error_);
    } else {
      fail(llhttp_error(err));
    }
    return pos + static_cast<size_t>(llhttp_get_error_pos(&parser_) - begin);
  }
  return pos;
}

void Http1Parser::resume() {
  if (state_ == CodecState::Paused) {
    state_ = CodecState::Running;
  }
}

bool Http1Parser::finish() {
  if (state_ == CodecState::Error) {
    return false;
  }
  if (state_ != CodecState::Running || !in_message_) {
    return true;
  }
  if (phase_ == Phase::Eof) {
    finishing_ = true;
    llhttp_errno_t err = llhttp_finish(&parser_);
    finishing_ = false;
    if (err == HPE_OK) {
      state_ = CodecState::Closed;
      return true;
    }
  }
  fail(make(400, "connection closed in the middle of a message", WP_COUNTER(incomplete)));
  return false;
}

int Http1Parser::on_message_begin() {
  in_message_ = true;
  url_.clear();
  reason_.clear();
  field_.clear();
  value_.clear();
  headers_.clear();
  informational_ = false;
  return 0;
}

int Http1Parser::on_header_value_complete() {
  std::string_view value = trim_ows(value_);
  if (scanner_.in_trailers()) {
    // Framing and routing fields must not arrive late.
    if (iequals(field_, "content-length") || iequals(field_, "transfer-encoding") || iequals(field_, "host")) {
      return fail_cb(make(400, "forbidden field in trailers", WP_COUNTER(framing_rejected)));
    }
  }
  headers_.add(field_, value);
  field_.clear();
  value_.clear();
  return 0;
}

int Http1Parser::check_framing(const HeaderMap& h, Version v, std::optional<uint64_t>& content_length, bool& chunked) {
  stats::Id framing = WP_COUNTER(framing_rejected);
  size_t cl = h.count("content-length");
  size_t te = h.count("transfer-encoding");
  if (cl > 1) {
    return fail_cb(make(400, "duplicate Content-Length", framing));
  }
  if (cl == 1) {
    uint64_t n = 0;
    if (!parse_length(*h.get("content-length"), n)) {
      return fail_cb(make(400, "invalid Content-Length", framing));
    }
    content_length = n;
  }
  if (te == 0) {
    return 0;
  }
  if (cl > 0) {
    return fail_cb(make(400, "Content-Length with Transfer-Encoding", framing));
  }
  if (v == Version::Http10) {
    return fail_cb(make(400, "Transfer-Encoding on HTTP/1.0", framing));
  }
  if (te > 1) {
    return fail_cb(make(400, "more than one Transfer-Encoding field", framing));
  }
  // Exactly "chunked" (case-insensitive) is accepted. A list whose last coding is not chunked,
  // with chunked twice or with an empty element cannot be framed: 400. A well-formed list ending
  // in chunked with other codings (gzip, identity...) is refused too (400, as Envoy does): a proxy
  // that forwarded it would have to decode codings it does not implement.
  size_t tokens = 0;
  size_t chunked_at = 0;
  size_t chunked_count = 0;
  bool empty = false;
  for_each_token(*h.get("transfer-encoding"), [&](std::string_view t) {
    ++tokens;
    if (t.empty()) {
      empty = true;
    } else if (iequals(t, "chunked")) {
      ++chunked_count;
      chunked_at = tokens;
    }
  });
  if (empty || chunked_count != 1 || chunked_at != tokens) {
    return fail_cb(make(400, "Transfer-Encoding without chunked as the only final coding", framing));
  }
  if (tokens != 1) {
    return fail_cb(make(400, "unsupported transfer coding", WP_COUNTER(not_implemented)));
  }
  chunked = true;
  return 0;
}

int Http1Parser::on_headers_complete() {
  if (!field_.empty()) {
    // A field line without a value callback (cannot happen with the scanner in front).
    return fail_cb(make(400, "invalid header line", WP_COUNTER(malformed)));
  }
  return role_ == Role::Request ? on_request_head() : on_response_head();
}

int Http1Parser::on_request_head() {
  if (parser_.http_major != 1 || parser_.http_minor > 1) {
    return fail_cb(make(400, "unsupported HTTP version", stats::Id::downstream_rq_unsupported_version));
  }
  RequestHead head;
  head.version = parser_.http_minor == 0 ? Version::Http10 : Version::Http11;
  head.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  if (parser_.method == HTTP_CONNECT) {
    return fail_cb(make(501, "CONNECT is not supported inside a tunnel", stats::Id::downstream_rq_not_implemented));
  }
  if (!(url_.starts_with('/') || (url_ == "*" && parser_.method == HTTP_OPTIONS))) {
    return fail_cb(make(400, "request target not in origin-form", stats::Id::downstream_rq_malformed));
  }
  size_t hosts = headers_.count("host");
  if (hosts > 1) {
    return fail_cb(make(400, "duplicate Host", stats::Id::downstream_rq_bad_host));
  }
  if (hosts == 0 && head.version == Version::Http11) {
    return fail_cb(make(400, "missing Host", stats::Id::downstream_rq_bad_host));
  }
  if (hosts == 1) {
    std::string_view host = *headers_.get("host");
    if (!valid_host(host)) {
      return fail_cb(make(400, "invalid Host", stats::Id::downstream_rq_bad_host));
    }
    head.authority = host;
  }
  if (int rc = check_framing(headers_, head.version, head.content_length, head.chunked); rc != 0) {
    return rc;
  }
  bool close = false;
  bool keep_alive_token = false;
  for (std::string_view c : headers_.get_all("connection")) {
    for_each_token(c, [&](std::string_view t) {
      close = close || iequals(t, "close");
      keep_alive_token = keep_alive_token || iequals(t, "keep-alive");
    });
  }
  head.keep_alive = head.version == Version::Http11 ? !close : (keep_alive_token && !close);
  if (auto expect = headers_.get("expect"); expect && head.version == Version::Http11) {
    if (!iequals(trim_ows(*expect), "100-continue") || headers_.count("expect") > 1) {
      return fail_cb(make(417, "unsupported expectation", stats::Id::downstream_rq_expectation_failed));
    }
    head.expect_continue = true;
  }
  // Upgrade is not offered: the request is handled as plain HTTP and Upgrade is dropped as a
  // hop-by-hop field when re-serialized, so llhttp must not switch protocols either.
  parser_.upgrade = 0;
  head.target = std::move(url_);
  head.headers = std::move(headers_);
  message_keep_alive_ = head.keep_alive;

  if (head.chunked) {
    phase_ = Phase::Chunked;
    scanner_.begin_chunked();
  } else if (head.content_length.value_or(0) > 0) {
    phase_ = Phase::Identity;
  } else {
    phase_ = Phase::Head;
  }
  pending_.push_back(PendingRequest{head.method == "HEAD", head.version, head.keep_alive});
  server_->on_head(std::move(head));
  return 0;
}

int Http1Parser::on_response_head() {
  if (parser_.http_major != 1 || parser_.http_minor > 1) {
    return fail_cb(make(502, "unsupported HTTP version", stats::Id::upstream_rs_unsupported_version));
  }
  if (expected_.empty()) {
    return fail_cb(make(502, "response without a request", stats::Id::upstream_rs_unexpected));
  }
  ResponseHead head;
  head.version = parser_.http_minor == 0 ? Version::Http10 : Version::Http11;
  head.status = parser_.status_code;
  if (head.status < 100 || head.status > 999) {
    // llhttp 8.1 lets "HTTP/1.1 20" or "099" through; taken as interim (< 200) they would make the
    // next bytes a response of their own (a desync). Found by tests/fuzz/http1_client_fuzz.cpp.
    return fail_cb(make(502, "bad status code", stats::Id::upstream_rs_malformed));
  }
  if (head.status == 101) {
    return fail_cb(make(502, "unexpected protocol switch", stats::Id::upstream_rs_unexpected));
  }
  if (int rc = check_framing(headers_, head.version, head.content_length, head.chunked); rc != 0) {
    return rc;
  }
  informational_ = head.status < 200;
  const bool no_body = expected_.front() || informational_ || head.status == 204 || head.status == 304;
  bool close = false;
  bool keep_alive_token = false;
  for (std::string_view c : headers_.get_all("connection")) {
    for_each_token(c, [&](std::string_view t) {
      close = close || iequals(t, "close");
      keep_alive_token = keep_alive_token || iequals(t, "keep-alive");
    });
  }
  head.keep_alive = head.version == Version::Http11 ? !close : (keep_alive_token && !close);
  if (no_body) {
    phase_ = Phase::Head;
  } else if (head.chunked) {
    phase_ = Phase::Chunked;
    scanner_.begin_chunked();
  } else if (head.content_length) {
    phase_ = head.content_length > 0 ? Phase::Identity : Phase::Head;
  } else {
    phase_ = Phase::Eof;  // close-delimited
    head.keep_alive = false;
  }
  head.reason = std::move(reason_);
  head.headers = std::move(headers_);
  message_keep_alive_ = informational_ || head.keep_alive;
  client_->on_head(std::move(head));
  // 1 tells llhttp to skip the body (HEAD, 1xx, 204, 304 whatever their framing fields say).
  return no_body ? 1 : 0;
}

int Http1Parser::on_message_complete() {
  in_message_ = false;
  if (scanner_.in_trailers() && !headers_.empty()) {
    HeaderMap trailers = std::move(headers_);
    headers_.clear();
    if (server_ != nullptr) {
      server_->on_trailers(std::move(trailers));
    } else {
      client_->on_trailers(std::move(trailers));
    }
  }
  phase_ = Phase::Head;
  scanner_.begin_head();
  if (informational_) {
    informational_ = false;
  } else {
    if (role_ == Role::Response && !expected_.empty()) {
      expected_.pop_front();
    }
    if (server_ != nullptr) {
      server_->on_message_complete();
    } else {
      client_->on_message_complete();
    }
  }
  return finishing_ ? 0 : HPE_PAUSED;
}

#undef WP_COUNTER

}  // namespace wp::http::detail
