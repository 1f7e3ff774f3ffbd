#include <catch2/catch.hpp>

#include "waypoint/hbone/server.h"

using wp::hbone::parse_forwarded_for;

TEST_CASE("parse_forwarded_for reads the first for= of a Forwarded header", "[hbone]") {
  struct Case {
    const char* header;
    const char* ip;  // nullptr: no address
  };
  const Case cases[] = {
      {"for=10.1.2.3", "10.1.2.3"},
      {"for=\"10.1.2.3\"", "10.1.2.3"},
      {"for=\"10.1.2.3:5555\"", "10.1.2.3"},
      {"for=\"[2001:db8::7]:443\"", "2001:db8::7"},
      {"for=\"[2001:db8::7]\"", "2001:db8::7"},
      {"proto=https;for=10.9.9.9;by=1.1.1.1", "10.9.9.9"},
      {"For=10.1.1.1", "10.1.1.1"},
      {"for=10.0.0.1, for=10.0.0.2", "10.0.0.1"},
      {"for=_hidden", nullptr},
      {"for=unknown", nullptr},
      {"by=10.0.0.1", nullptr},
      {"for=\"[2001:db8::7\"", nullptr},
      {"", nullptr},
  };
  for (const auto& c : cases) {
    INFO(c.header);
    auto ip = parse_forwarded_for(c.header);
    if (c.ip == nullptr) {
      CHECK_FALSE(ip.has_value());
    } else {
      REQUIRE(ip.has_value());
      CHECK(ip->to_string() == c.ip);
    }
  }
}
