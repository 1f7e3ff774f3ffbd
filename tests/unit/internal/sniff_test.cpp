#include <catch2/catch.hpp>

#include <string>

#include "waypoint/internal/sniff.h"

using wp::internal::sniff;
using wp::internal::Sniffed;

namespace {
Sniffed of(const std::string& s) {
  return sniff(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
}  // namespace

TEST_CASE("sniff: the h2c preface, whole or in pieces", "[internal][sniff]") {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  CHECK(of(preface) == Sniffed::H2c);
  CHECK(of(preface + "\x00\x00\x12\x04") == Sniffed::H2c);
  for (size_t n = 1; n < preface.size(); ++n) {
    INFO(n);
    CHECK(of(preface.substr(0, n)) == Sniffed::NeedMore);
  }
  CHECK(of("PRI * HTTP/2.0\r\n\r\nXX") == Sniffed::Tcp);
}

TEST_CASE("sniff: HTTP/1 request lines by method, decided once the target starts", "[internal][sniff]") {
  CHECK(of("GET / HTTP/1.1\r\n") == Sniffed::Http1);
  CHECK(of("POST /x") == Sniffed::Http1);
  CHECK(of("OPTIONS * HTTP/1.1\r\n") == Sniffed::Http1);
  CHECK(of("DELETE /a") == Sniffed::Http1);
  CHECK(of("PATCH /") == Sniffed::Http1);
  CHECK(of("G") == Sniffed::NeedMore);
  CHECK(of("GE") == Sniffed::NeedMore);
  CHECK(of("GET") == Sniffed::NeedMore);
  CHECK(of("GET ") == Sniffed::NeedMore);
  CHECK(of("P") == Sniffed::NeedMore);  // POST, PUT, PATCH, PRI...
  CHECK(of("GET  /") == Sniffed::Tcp);  // two spaces: not a request line
  CHECK(of("GETX /") == Sniffed::Tcp);
  CHECK(of("get / HTTP/1.1") == Sniffed::Tcp);  // methods are case-sensitive
}

TEST_CASE("sniff: anything else is TCP as soon as it cannot be HTTP", "[internal][sniff]") {
  CHECK(of("direct") == Sniffed::Tcp);
  CHECK(of("\x16\x03\x01\x02\x00") == Sniffed::Tcp);  // a TLS ClientHello
  CHECK(of("SSH-2.0-OpenSSH") == Sniffed::Tcp);
  CHECK(of("") == Sniffed::NeedMore);
}
