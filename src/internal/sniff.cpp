#include "waypoint/internal/sniff.h"

#include <cstring>
#include <string_view>

namespace wp::internal {
namespace {

constexpr std::string_view kH2cPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// The methods llhttp accepts on requests that a proxy would carry; Envoy's HTTP inspector uses
// the same idea (a known method, then a request line).
constexpr std::string_view kMethods[] = {
    "GET",       "HEAD",  "POST", "PUT",  "DELETE", "OPTIONS", "TRACE",  "PATCH",  "CONNECT", "PROPFIND",
    "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK",   "UNLOCK",  "SEARCH", "REPORT", "PURGE",
};

bool is_prefix(std::string_view whole, std::string_view part) {
  return part.size() <= whole.size() && whole.substr(0, part.size()) == part;
}

}  // namespace

Sniffed sniff(const uint8_t* data, size_t len) {
  std::string_view in(reinterpret_cast<const char*>(data), len < kMaxSniffBytes ? len : kMaxSniffBytes);
  if (in.empty()) {
    return Sniffed::NeedMore;
  }
  if (is_prefix(kH2cPreface, in)) {
    return in.size() >= kH2cPreface.size() ? Sniffed::H2c : Sniffed::NeedMore;
  }
  if (is_prefix(in, kH2cPreface)) {
    return Sniffed::H2c;
  }
  // HTTP/1: METHOD SP target SP HTTP/ — decided as soon as the method and its SP are seen and the
  // target starts like one ('/' or '*', or an absolute URI the codec will refuse with 400).
  for (std::string_view m : kMethods) {
    if (in.size() <= m.size()) {
      if (is_prefix(m, in)) {
        return Sniffed::NeedMore;
      }
      continue;
    }
    if (is_prefix(in, m) && in[m.size()] == ' ') {
      if (in.size() == m.size() + 1) {
        return Sniffed::NeedMore;
      }
      char c = in[m.size() + 1];
      bool target = c == '/' || c == '*' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      return target ? Sniffed::Http1 : Sniffed::Tcp;
    }
  }
  return Sniffed::Tcp;
}

const char* to_string(Sniffed s) {
  switch (s) {
    case Sniffed::NeedMore:
      return "need-more";
    case Sniffed::Http1:
      return "http/1.1";
    case Sniffed::H2c:
      return "h2c";
    case Sniffed::Tcp:
      return "tcp";
  }
  return "?";
}

}  // namespace wp::internal
