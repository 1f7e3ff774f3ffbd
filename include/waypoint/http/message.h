#pragma once
// The HTTP message model shared by the HTTP/1.1 and h2c codecs, and the error a codec reports.
#include <cstdint>
#include <optional>
#include <string>

#include "waypoint/http/headers.h"
#include "waypoint/stats/stats.h"

namespace wp::http {

enum class Version : uint8_t { Http10, Http11 };

struct RequestHead {
  std::string method;     // as sent, e.g. "GET" (llhttp only lets known methods through)
  std::string target;     // origin-form path + query as sent ("/a?b"), or "*" for OPTIONS
  std::string authority;  // the Host header's value
  Version version = Version::Http11;
  HeaderMap headers;  // every field as received (Host, Content-Length, Connection... included)
  // Framing. On parse: what the message said. On serialize: what the encoder must use
  // (content_length wins; else chunked if set; else no body). Header fields of the same names are
  // ignored when serializing.
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;
  bool expect_continue = false;  // "Expect: 100-continue" on an HTTP/1.1 request
};

struct ResponseHead {
  int status = 200;
  std::string reason;  // as received; serialization writes a standard phrase when empty
  Version version = Version::Http11;
  HeaderMap headers;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = true;
};

// Where a codec error came from (the side that sent the bad bytes).
enum class ErrorSource : uint8_t { Downstream, Upstream };

struct CodecError {
  int status = 400;                  // the local reply to send (downstream) or 502 (upstream)
  const char* reason = "";           // static text, for logs and the local reply body
  std::optional<stats::Id> counter;  // the counter to bump
  bool graceful = false;             // not an error: the peer's graceful GOAWAY (no new streams; the open ones finish)
  const char* counter_name() const { return counter ? stats::info(*counter).name : ""; }
  ErrorSource source = ErrorSource::Downstream;
};

// The standard reason phrase of a status code ("" when unknown).
const char* reason_phrase(int status);

}  // namespace wp::http
