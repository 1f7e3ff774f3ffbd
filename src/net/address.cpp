#include "waypoint/net/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace wp::net {

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) {
    return std::nullopt;
  }
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = 0;
  IpAddr a;
  if (inet_pton(AF_INET, buf, a.bytes_.data()) == 1) {
    a.family_ = Family::V4;
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes_.data()) == 1) {
    a.family_ = Family::V6;
    return a;
  }
  return std::nullopt;
}

IpAddr IpAddr::v4(uint32_t host_order) {
  IpAddr a;
  a.family_ = Family::V4;
  uint32_t n = htonl(host_order);
  std::memcpy(a.bytes_.data(), &n, 4);
  return a;
}

IpAddr IpAddr::from_bytes(Family family, const void* bytes) {
  IpAddr a;
  a.family_ = family;
  std::memcpy(a.bytes_.data(), bytes, family == Family::V4 ? 4 : 16);
  return a;
}

std::string IpAddr::to_string() const {
  if (is_v4()) {
    // By hand: inet_ntop formats with sprintf, which showed in per-request profiles (bench/).
    std::string out;
    out.reserve(15);
    for (int i = 0; i < 4; ++i) {
      if (i > 0) {
        out += '.';
      }
      unsigned v = bytes_[i];
      if (v >= 100) {
        out += static_cast<char>('0' + v / 100);
      }
      if (v >= 10) {
        out += static_cast<char>('0' + v / 10 % 10);
      }
      out += static_cast<char>('0' + v % 10);
    }
    return out;
  }
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf));
  return buf;
}

bool IpAddr::is_loopback() const {
  if (is_v4()) {
    return bytes_[0] == 127;
  }
  static constexpr std::array<uint8_t, 16> kV6Loopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return bytes_ == kV6Loopback;
}

size_t IpAddr::hash() const {
  // FNV-1a over the significant bytes and the family.
  size_t h = 1469598103934665603ULL ^ static_cast<size_t>(family_);
  for (size_t i = 0; i < size(); ++i) {
    h = (h ^ bytes_[i]) * 1099511628211ULL;
  }
  return h;
}

std::optional<uint16_t> parse_port(std::string_view text, bool allow_zero) {
  if (text.empty() || text.size() > 5) {
    return std::nullopt;
  }
  uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535 || (v == 0 && !allow_zero)) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(v);
}

std::optional<SockAddr> SockAddr::parse(std::string_view text, bool allow_zero_port) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    auto ip = IpAddr::parse(host);
    if (!ip || ip->is_v4()) {
      return std::nullopt;
    }
    auto p = parse_port(port, allow_zero_port);
    if (!p) {
      return std::nullopt;
    }
    return SockAddr(*ip, *p);
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  auto ip = IpAddr::parse(host);
  if (!ip || !ip->is_v4()) {  // an IPv6 address must be bracketed
    return std::nullopt;
  }
  auto p = parse_port(port, allow_zero_port);
  if (!p) {
    return std::nullopt;
  }
  return SockAddr(*ip, *p);
}

std::optional<SockAddr> SockAddr::from_sockaddr(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return SockAddr(IpAddr::from_bytes(IpAddr::Family::V4, &in->sin_addr), ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return SockAddr(IpAddr::from_bytes(IpAddr::Family::V6, &in6->sin6_addr), ntohs(in6->sin6_port));
  }
  return std::nullopt;
}

std::string SockAddr::to_string() const {
  if (ip_.is_v4()) {
    return ip_.to_string() + ":" + std::to_string(port_);
  }
  std::string out = "[";
  out += ip_.to_string();
  out += "]:";
  out += std::to_string(port_);
  return out;
}

unsigned SockAddr::to_sockaddr(sockaddr_storage* out) const {
  std::memset(out, 0, sizeof(*out));
  if (ip_.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port_);
    std::memcpy(&in->sin_addr, ip_.bytes(), 4);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port_);
  std::memcpy(&in6->sin6_addr, ip_.bytes(), 16);
  return sizeof(sockaddr_in6);
}

}  // namespace wp::net
