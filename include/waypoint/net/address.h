#pragma once
// IP addresses and socket addresses as plain values: parsed once, hashed, compared, printed.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

struct sockaddr;
struct sockaddr_storage;

namespace wp::net {

class IpAddr {
 public:
  enum class Family : uint8_t { V4 = 4, V6 = 6 };

  IpAddr() = default;
  static std::optional<IpAddr> parse(std::string_view text);  // "10.0.0.1" or "::1" (no brackets)
  static IpAddr v4(uint32_t host_order);
  static IpAddr from_bytes(Family family, const void* bytes);  // 4 or 16 bytes, network order

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::V4; }
  const uint8_t* bytes() const { return bytes_.data(); }  // 4 or 16 significant bytes
  size_t size() const { return is_v4() ? 4 : 16; }
  std::string to_string() const;
  size_t hash() const;
  bool is_loopback() const;  // 127.0.0.0/8 or ::1
  bool operator==(const IpAddr&) const = default;

 private:
  Family family_ = Family::V4;
  std::array<uint8_t, 16> bytes_{};
};

// An IP address and a port. Parses "1.2.3.4:80" and "[::1]:80" strictly: digits only, port 1..65535
// (0 allowed only where allow_zero_port), no host names, no surrounding whitespace.
class SockAddr {
 public:
  SockAddr() = default;
  SockAddr(IpAddr ip, uint16_t port) : ip_(ip), port_(port) {}
  static std::optional<SockAddr> parse(std::string_view text, bool allow_zero_port = false);
  static std::optional<SockAddr> from_sockaddr(const sockaddr* sa);

  const IpAddr& ip() const { return ip_; }
  uint16_t port() const { return port_; }
  std::string to_string() const;  // "1.2.3.4:80" / "[::1]:80"
  size_t hash() const { return ip_.hash() * 31 + port_; }
  // Fills a sockaddr_storage; returns its length.
  unsigned to_sockaddr(sockaddr_storage* out) const;
  bool operator==(const SockAddr&) const = default;

 private:
  IpAddr ip_;
  uint16_t port_ = 0;
};

// Parses a decimal port "1".."65535" (or "0" when allow_zero).
std::optional<uint16_t> parse_port(std::string_view text, bool allow_zero = false);

}  // namespace wp::net

template <>
struct std::hash<wp::net::IpAddr> {
  size_t operator()(const wp::net::IpAddr& a) const { return a.hash(); }
};
template <>
struct std::hash<wp::net::SockAddr> {
  size_t operator()(const wp::net::SockAddr& a) const { return a.hash(); }
};
