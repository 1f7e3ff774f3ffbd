#include "waypoint/http/http1_codec.h"

#include <charconv>
#include <string>

#include "http1_impl.h"

namespace wp::http {
namespace detail {
namespace {

void put(buffer::Buffer& out, std::string_view s) {
  out.append(s.data(), s.size());
}

void put_number(buffer::Buffer& out, uint64_t v, int base = 10) {
  char tmp[24];
  auto [end, ec] = std::to_chars(tmp, tmp + sizeof(tmp), v, base);
  out.append(tmp, static_cast<size_t>(end - tmp));
}

bool clean(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return false;
    }
  }
  return true;
}

bool nominated_by_connection(const HeaderMap& fields, std::string_view name) {
  for (const Header& h : fields) {
    if (h.name != "connection") {
      continue;
    }
    std::string_view list = h.value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view t = list.substr(0, comma);
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) {
        t.remove_prefix(1);
      }
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) {
        t.remove_suffix(1);
      }
      if (!t.empty() && iequals(t, name)) {
        return true;
      }
      if (comma == std::string_view::npos) {
        break;
      }
      list.remove_prefix(comma + 1);
    }
  }
  return false;
}

}  // namespace

void append_fields(const HeaderMap& fields, buffer::Buffer& out, bool keep_trailer_field, std::string_view skip) {
  const bool has_connection = fields.has("connection");
  for (const Header& h : fields) {
    if (is_hop_by_hop(h.name) || h.name == "content-length" || h.name == skip ||
        (!keep_trailer_field && h.name == "trailer") || h.name.empty() || !clean(h.name) || !clean(h.value)) {
      continue;
    }
    if (has_connection && nominated_by_connection(fields, h.name)) {
      continue;
    }
    put(out, h.name);
    put(out, ": ");
    put(out, h.value);
    put(out, "\r\n");
  }
}

void BodyEncoder::start(Mode mode, uint64_t length) {
  mode_ = mode;
  length_ = length;
  written_ = 0;
}

bool BodyEncoder::body(const uint8_t* data, size_t len, buffer::Buffer& out) {
  switch (mode_) {
    case Mode::Idle:
    case Mode::None:
      return len == 0;
    case Mode::Length:
      if (len > length_ - written_) {
        return false;
      }
      written_ += len;
      out.append(data, len);
      return true;
    case Mode::Chunked:
      if (len == 0) {
        return true;  // an empty chunk would end the body
      }
      put_number(out, len, 16);
      put(out, "\r\n");
      out.append(data, len);
      put(out, "\r\n");
      return true;
    case Mode::Close:
      out.append(data, len);
      return true;
  }
  return false;
}

bool BodyEncoder::body(buffer::Buffer& data, buffer::Buffer& out) {
  const size_t len = data.length();
  bool ok = true;
  switch (mode_) {
    case Mode::Idle:
    case Mode::None:
      ok = len == 0;
      break;
    case Mode::Length:
      if (len > length_ - written_) {
        ok = false;
        break;
      }
      written_ += len;
      out.move(data, len);
      break;
    case Mode::Chunked:
      if (len == 0) {
        break;  // an empty chunk would end the body
      }
      put_number(out, len, 16);
      put(out, "\r\n");
      out.move(data, len);
      put(out, "\r\n");
      break;
    case Mode::Close:
      out.move(data, len);
      break;
  }
  data.clear();  // refused bytes are dropped, as the pointer form drops them
  return ok;
}

bool BodyEncoder::end(buffer::Buffer& out, const HeaderMap* trailers) {
  bool ok = true;
  if (mode_ == Mode::Chunked) {
    put(out, "0\r\n");
    if (trailers != nullptr) {
      // Trailers never carry framing or routing fields.
      for (const Header& h : *trailers) {
        if (is_hop_by_hop(h.name) || h.name == "content-length" || h.name == "host" || h.name == "trailer" ||
            h.name.empty() || !clean(h.name) || !clean(h.value)) {
          continue;
        }
        put(out, h.name);
        put(out, ": ");
        put(out, h.value);
        put(out, "\r\n");
      }
    }
    put(out, "\r\n");
  } else if (mode_ == Mode::Length) {
    ok = written_ == length_;
  }
  mode_ = Mode::Idle;
  return ok;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Server

Http1ServerCodec::Http1ServerCodec(Http1ServerCallbacks& callbacks, const Http1Limits& limits)
    : parser_(std::make_unique<detail::Http1Parser>(detail::Role::Request, limits, &callbacks, nullptr)),
      encoder_(std::make_unique<detail::BodyEncoder>()) {}

Http1ServerCodec::~Http1ServerCodec() = default;

size_t Http1ServerCodec::feed(const uint8_t* data, size_t len) {
  return parser_->feed(data, len);
}

size_t Http1ServerCodec::feed(buffer::Buffer& in) {
  return parser_->feed(in);
}
void Http1ServerCodec::resume() {
  parser_->resume();
}
bool Http1ServerCodec::finish() {
  return parser_->finish();
}
CodecState Http1ServerCodec::state() const {
  return parser_->state();
}

void Http1ServerCodec::encode_continue(buffer::Buffer& out) {
  detail::put(out, "HTTP/1.1 100 Continue\r\n\r\n");
}

void Http1ServerCodec::encode_head(const ResponseHead& head, buffer::Buffer& out) {
  using Mode = detail::BodyEncoder::Mode;
  // The request being answered; a local reply after a parse error has none and closes.
  detail::PendingRequest req;
  const bool have_request = !parser_->pending_requests().empty();
  if (have_request) {
    req = parser_->pending_requests().front();
  }
  const int status = head.status;
  const bool informational = status >= 100 && status < 200;
  bool keep_alive = have_request && req.keep_alive && head.keep_alive && state() != CodecState::Error;
  Mode mode;
  if (informational || req.head_method || status == 204 || status == 304) {
    mode = Mode::None;
  } else if (head.content_length) {
    mode = Mode::Length;
  } else if (req.version == Version::Http11) {
    mode = Mode::Chunked;
  } else {
    mode = Mode::Close;
    keep_alive = false;
  }

  detail::put(out, "HTTP/1.1 ");
  detail::put_number(out, static_cast<uint64_t>(status));
  detail::put(out, " ");
  detail::put(out, !head.reason.empty() && detail::clean(head.reason) ? std::string_view(head.reason)
                                                                      : std::string_view(reason_phrase(status)));
  detail::put(out, "\r\n");
  detail::append_fields(head.headers, out, mode == Mode::Chunked, "");
  if (informational) {
    detail::put(out, "\r\n");
    return;  // the final response follows; nothing is popped
  }
  if (head.content_length && (mode == Mode::Length || (mode == Mode::None && status != 204))) {
    // For HEAD and 304 a known length is metadata about the representation.
    detail::put(out, "content-length: ");
    detail::put_number(out, *head.content_length);
    detail::put(out, "\r\n");
  } else if (mode == Mode::Chunked) {
    detail::put(out, "transfer-encoding: chunked\r\n");
  }
  if (!keep_alive) {
    detail::put(out, "connection: close\r\n");
  } else if (req.version == Version::Http10) {
    detail::put(out, "connection: keep-alive\r\n");
  }
  detail::put(out, "\r\n");
  encoder_->start(mode, head.content_length.value_or(0));
  close_after_ = !keep_alive;
  if (have_request) {
    parser_->pending_requests().pop_front();
  }
}

bool Http1ServerCodec::encode_body(const uint8_t* data, size_t len, buffer::Buffer& out) {
  return encoder_->body(data, len, out);
}

bool Http1ServerCodec::encode_body(buffer::Buffer& data, buffer::Buffer& out) {
  return encoder_->body(data, out);
}

bool Http1ServerCodec::encode_end(buffer::Buffer& out, const HeaderMap* trailers) {
  return encoder_->end(out, trailers);
}

bool Http1ServerCodec::close_after_response() const {
  return close_after_;
}

// ---------------------------------------------------------------------------------------------
// Client

Http1ClientCodec::Http1ClientCodec(Http1ClientCallbacks& callbacks, const Http1Limits& limits)
    : parser_(std::make_unique<detail::Http1Parser>(detail::Role::Response, limits, nullptr, &callbacks)),
      encoder_(std::make_unique<detail::BodyEncoder>()) {}

Http1ClientCodec::~Http1ClientCodec() = default;

size_t Http1ClientCodec::feed(const uint8_t* data, size_t len) {
  return parser_->feed(data, len);
}

size_t Http1ClientCodec::feed(buffer::Buffer& in) {
  return parser_->feed(in);
}
bool Http1ClientCodec::finish() {
  return parser_->finish();
}
CodecState Http1ClientCodec::state() const {
  return parser_->state();
}

void Http1ClientCodec::encode_head(const RequestHead& head, buffer::Buffer& out) {
  using Mode = detail::BodyEncoder::Mode;
  Mode mode = Mode::None;
  if (head.content_length) {
    mode = Mode::Length;
  } else if (head.chunked) {
    mode = Mode::Chunked;
  }
  detail::put(out, head.method);
  detail::put(out, " ");
  detail::put(out, head.target.empty() ? std::string_view("/") : std::string_view(head.target));
  detail::put(out, " HTTP/1.1\r\n");
  std::string_view authority = head.authority;
  if (authority.empty()) {
    authority = head.headers.get("host").value_or("");
  }
  if (!authority.empty() && detail::clean(authority)) {
    detail::put(out, "host: ");
    detail::put(out, authority);
    detail::put(out, "\r\n");
  }
  detail::append_fields(head.headers, out, mode == Mode::Chunked, "host");
  if (mode == Mode::Length) {
    detail::put(out, "content-length: ");
    detail::put_number(out, *head.content_length);
    detail::put(out, "\r\n");
  } else if (mode == Mode::Chunked) {
    detail::put(out, "transfer-encoding: chunked\r\n");
  }
  if (!head.keep_alive) {
    detail::put(out, "connection: close\r\n");
  }
  detail::put(out, "\r\n");
  encoder_->start(mode, head.content_length.value_or(0));
  parser_->expect_response(head.method == "HEAD");
}

bool Http1ClientCodec::encode_body(const uint8_t* data, size_t len, buffer::Buffer& out) {
  return encoder_->body(data, len, out);
}

bool Http1ClientCodec::encode_body(buffer::Buffer& data, buffer::Buffer& out) {
  return encoder_->body(data, out);
}

bool Http1ClientCodec::encode_end(buffer::Buffer& out, const HeaderMap* trailers) {
  return encoder_->end(out, trailers);
}

}  // namespace wp::http
