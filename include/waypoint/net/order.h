#pragma once
// A stable, human-friendly order for addresses in listings (`waypoint validate`, the admin API):
// numeric, so 10.96.0.9 comes before 10.96.0.10, and IPv4 before IPv6.
#include <algorithm>

#include "waypoint/net/address.h"

namespace wp::net {

inline bool ip_less(const IpAddr& a, const IpAddr& b) {
  if (a.family() != b.family()) {
    return a.is_v4();
  }
  return std::lexicographical_compare(a.bytes(), a.bytes() + a.size(), b.bytes(), b.bytes() + b.size());
}

// By address, then port.
inline bool addr_less(const SockAddr& a, const SockAddr& b) {
  if (!(a.ip() == b.ip())) {
    return ip_less(a.ip(), b.ip());
  }
  return a.port() < b.port();
}

}  // namespace wp::net
