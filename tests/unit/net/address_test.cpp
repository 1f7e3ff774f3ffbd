#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include "waypoint/net/address.h"

#include <netinet/in.h>
#include <sys/socket.h>

using wp::net::IpAddr;
using wp::net::SockAddr;

TEST_CASE("SockAddr::parse accepts exactly IPv4:port and [IPv6]:port", "[net]") {
  struct Case {
    const char* text;
    const char* canonical;  // nullptr: must be rejected
  };
  const Case cases[] = {
      {"10.0.0.1:80", "10.0.0.1:80"},
      {"127.0.1.1:15008", "127.0.1.1:15008"},
      {"[::1]:443", "[::1]:443"},
      {"[2001:db8::1]:9080", "[2001:db8::1]:9080"},
      {"10.0.0.1:65535", "10.0.0.1:65535"},
      {"10.0.0.1", nullptr},
      {"10.0.0.1:", nullptr},
      {"10.0.0.1:0", nullptr},
      {"10.0.0.1:65536", nullptr},
      {"10.0.0.1:+80", nullptr},
      {"10.0.0.1:80 ", nullptr},
      {" 10.0.0.1:80", nullptr},
      {"10.0.0.1:8a", nullptr},
      {"example.com:80", nullptr},
      {"localhost:80", nullptr},
      {"::1:80", nullptr},
      {"[::1]", nullptr},
      {"[::1]80", nullptr},
      {"[10.0.0.1]:80", nullptr},
      {"[::1:80", nullptr},
      {"10.0.0.256:80", nullptr},
      {"010.0.0.1:80", nullptr},
      {":80", nullptr},
      {"", nullptr},
      {"1.2.3.4:000080", nullptr},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto a = SockAddr::parse(c.text);
    if (c.canonical == nullptr) {
      CHECK_FALSE(a.has_value());
    } else {
      REQUIRE(a.has_value());
      CHECK(a->to_string() == c.canonical);
    }
  }
  CHECK(SockAddr::parse("0.0.0.0:0", true).has_value());
  CHECK_FALSE(SockAddr::parse("0.0.0.0:0").has_value());
}

TEST_CASE("IpAddr equality and hashing distinguish families and bytes", "[net]") {
  auto a = *IpAddr::parse("10.0.0.1");
  auto b = *IpAddr::parse("10.0.0.1");
  auto c = *IpAddr::parse("10.0.0.2");
  auto v6 = *IpAddr::parse("::ffff:10.0.0.1");
  CHECK(a == b);
  CHECK(a.hash() == b.hash());
  CHECK_FALSE(a == c);
  CHECK_FALSE(a == v6);
  CHECK(IpAddr::v4(0x7f000001).to_string() == "127.0.0.1");
}

TEST_CASE("IPv4 formatting matches inet_ntop for every octet value and position", "[net]") {
  for (uint32_t v = 0; v < 256; ++v) {
    for (int shift : {0, 8, 16, 24}) {
      uint32_t host = (v << shift) | (shift == 0 ? 0x0a000000u : 1u);
      in_addr in{htonl(host)};
      char want[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &in, want, sizeof(want));
      INFO(want);
      CHECK(IpAddr::v4(host).to_string() == want);
    }
  }
  CHECK(IpAddr::v4(0xffffffffu).to_string() == "255.255.255.255");
  CHECK(IpAddr::v4(0).to_string() == "0.0.0.0");
}

TEST_CASE("SockAddr round-trips through sockaddr_storage", "[net]") {
  for (const char* text : {"127.0.0.1:15008", "[::1]:15008"}) {
    auto a = *SockAddr::parse(text);
    sockaddr_storage ss;
    a.to_sockaddr(&ss);
    auto back = SockAddr::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    REQUIRE(back.has_value());
    CHECK(*back == a);
  }
}
