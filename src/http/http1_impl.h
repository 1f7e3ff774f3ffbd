#pragma once
// Private pieces of the HTTP/1.1 codecs: the llhttp-driven parser shared by both roles and the
// body framing encoder.
#include <llhttp.h>

#include <deque>
#include <optional>
#include <string>

#include "http1_scanner.h"
#include "waypoint/buffer/buffer.h"
#include "waypoint/http/http1_codec.h"

namespace wp::http::detail {

enum class Role : uint8_t { Request, Response };

// What the server remembers of each parsed request until its response is encoded.
struct PendingRequest {
  bool head_method = false;
  Version version = Version::Http11;
  bool keep_alive = true;
};

class Http1Parser {
 public:
  Http1Parser(Role role, const Http1Limits& limits, Http1ServerCallbacks* server, Http1ClientCallbacks* client);
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  size_t feed(const uint8_t* data, size_t len);
  // Parses the front slice of `in` and drains what it consumed from `in`; a body that fills that
  // whole slice leaves by the slice (moved into on_body's buffer, not copied). Returns the bytes
  // consumed.
  size_t feed(buffer::Buffer& in);
  void resume();
  bool finish();
  CodecState state() const { return state_; }

  // Server: requests parsed and not yet answered, oldest first.
  std::deque<PendingRequest>& pending_requests() { return pending_; }
  // Client: a request was sent; its response is expected (HEAD responses have no body).
  void expect_response(bool head_method) { expected_.push_back(head_method); }

 private:
  enum class Phase : uint8_t { Head, Chunked, Identity, Eof };

  static Http1Parser& self(llhttp_t* p) { return *static_cast<Http1Parser*>(p->data); }
  void init_settings();
  int fail_cb(const CodecError& e);  // remembers e; returns the llhttp error to stop with
  void fail(const CodecError& e);
  CodecError scan_error(ScanError e) const;
  CodecError llhttp_error(llhttp_errno_t e) const;
  CodecError make(int status, const char* reason, stats::Id counter) const;

  int on_message_begin();
  int on_header_value_complete();
  int on_headers_complete();
  int on_request_head();
  int on_response_head();
  int on_message_complete();
  int check_framing(const HeaderMap& h, Version v, std::optional<uint64_t>& content_length, bool& chunked);

  Role role_;
  Http1Limits limits_;
  Http1ServerCallbacks* server_;
  Http1ClientCallbacks* client_;
  llhttp_t parser_{};
  llhttp_settings_t settings_{};
  RawScanner scanner_;
  Phase phase_ = Phase::Head;
  CodecState state_ = CodecState::Running;
  std::optional<CodecError> pending_error_;
  bool in_message_ = false;
  bool finishing_ = false;
  bool message_keep_alive_ = true;
  bool informational_ = false;

  std::string url_;
  std::string reason_;
  std::string field_;
  std::string value_;
  HeaderMap headers_;

  std::deque<PendingRequest> pending_;
  std::deque<bool> expected_;
  // feed(Buffer&): the buffer whose front slice is being parsed, that slice, and the body bytes
  // taken from it by slice during this feed.
  buffer::Buffer* input_ = nullptr;
  const uint8_t* input_front_ = nullptr;
  size_t input_size_ = 0;
  size_t moved_ = 0;
  buffer::Buffer body_;  // what on_body hands over
};

// Writes body bytes with the framing chosen for the message being encoded.
class BodyEncoder {
 public:
  enum class Mode : uint8_t { Idle, None, Length, Chunked, Close };

  void start(Mode mode, uint64_t length = 0);
  bool body(const uint8_t* data, size_t len, buffer::Buffer& out);
  bool body(buffer::Buffer& data, buffer::Buffer& out);  // takes all of data, moving its slices
  // Returns false when fewer bytes than announced were written; the encoder is Idle afterwards.
  bool end(buffer::Buffer& out, const HeaderMap* trailers);
  Mode mode() const { return mode_; }

 private:
  Mode mode_ = Mode::Idle;
  uint64_t length_ = 0;
  uint64_t written_ = 0;
};

// Appends `fields` as "name: value\r\n" lines, minus hop-by-hop fields, the fields the message's
// Connection header nominates, framing fields, `skip`, and anything with CR/LF/NUL in it.
void append_fields(const HeaderMap& fields, buffer::Buffer& out, bool keep_trailer_field, std::string_view skip);

}  // namespace wp::http::detail
