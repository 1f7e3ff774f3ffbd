#include "waypoint/hbone/server.h"

#include <spdlog/spdlog.h>

#include "waypoint/tls/socket.h"

namespace wp::hbone {

std::optional<net::IpAddr> parse_forwarded_for(std::string_view header) {
  // Only the first element (before ',') and its for= parameter matter.
  std::string_view first = header.substr(0, header.find(','));
  while (!first.empty()) {
    auto semi = first.find(';');
    std::string_view pair = first.substr(0, semi);
    first = semi == std::string_view::npos ? std::string_view() : first.substr(semi + 1);
    while (!pair.empty() && pair.front() == ' ') {
      pair.remove_prefix(1);
    }
    while (!pair.empty() && pair.back() == ' ') {
      pair.remove_suffix(1);
    }
    if (pair.size() < 4 ||
        (pair.substr(0, 4) != "for=" && pair.substr(0, 4) != "For=" && pair.substr(0, 4) != "FOR=")) {
      continue;
    }
    std::string_view v = pair.substr(4);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
      v = v.substr(1, v.size() - 2);
    }
    if (!v.empty() && v.front() == '[') {
      auto close = v.find(']');
      if (close == std::string_view::npos) {
        return std::nullopt;
      }
      return net::IpAddr::parse(v.substr(1, close - 1));
    }
    if (auto ip = net::IpAddr::parse(v)) {
      return ip;
    }
    auto colon = v.rfind(':');
    if (colon != std::string_view::npos) {
      auto ip = net::IpAddr::parse(v.substr(0, colon));
      if (ip && ip->is_v4() && net::parse_port(v.substr(colon + 1), true)) {
        return ip;
      }
    }
    return std::nullopt;
  }
  return std::nullopt;
}

HboneServerConnection::HboneServerConnection(event::Loop& loop, std::unique_ptr<net::Transport> transport,
                                             const net::SockAddr& peer, const H2Settings& settings, Owner& owner,
                                             stats::Block& stats, ConnectHandler& handler)
    : H2Connection(loop, Role::Server, std::move(transport), settings, owner, stats), handler_(handler) {
  set_peer_address(peer);
}

HboneServerConnection::HboneServerConnection(event::Loop& loop, int fd, const net::SockAddr& peer,
                                             const tls::ContextPtr& tls, const H2Settings& settings, Owner& owner,
                                             stats::Block& stats, ConnectHandler& handler)
    : HboneServerConnection(loop, std::make_unique<tls::Socket>(loop, fd, tls, "", settings.handshake_timeout), peer,
                            settings, owner, stats, handler) {}

void HboneServerConnection::on_handshake_failed(net::HandshakeFailure failure) {
  using tls::HandshakeFailure;
  static constexpr stats::Id kIds[] = {
      stats::Id::handshake_failed_other,  // None (not reported)
      stats::Id::handshake_failed_not_tls,        stats::Id::handshake_failed_protocol_version,
      stats::Id::handshake_failed_no_certificate, stats::Id::handshake_failed_untrusted_chain,
      stats::Id::handshake_failed_bad_identity,   stats::Id::handshake_failed_no_alpn,
      stats::Id::handshake_failed_timeout,        stats::Id::handshake_failed_io,
      stats::Id::handshake_failed_other,
  };
  static_assert(sizeof(kIds) / sizeof(kIds[0]) == tls::kHandshakeFailureCount);
  stats().add(kIds[static_cast<int>(failure)]);
  spdlog::debug("hbone: handshake with {} failed: {}", peer_address().to_string(), net::to_string(failure));
}

void HboneServerConnection::on_headers_complete(H2Stream& stream) {
  stats().add(stats::Id::tunnels_total);
  stats().add(stats::Id::tunnels_active);
  if (stream.header_overflow()) {
    stats().add(stats::Id::tunnels_rejected_header_overflow);
    stream.respond(431);
    return;
  }
  const std::string* method = stream.header(":method");
  const std::string* authority = stream.header(":authority");
  std::optional<net::SockAddr> dst;
  if (method != nullptr && *method == "CONNECT" && authority != nullptr) {
    dst = net::SockAddr::parse(*authority);
  }
  if (!dst) {
    stats().add(stats::Id::tunnels_rejected_bad_request);
    spdlog::debug("hbone: 400 to {}: method {} authority {}", peer_address().to_string(),
                  method != nullptr ? *method : "-", authority != nullptr ? *authority : "-");
    stream.respond(400);
    return;
  }
  net::IpAddr source = peer_address().ip();
  if (const std::string* fwd = stream.header("forwarded")) {
    if (auto ip = parse_forwarded_for(*fwd)) {
      source = *ip;
    }
  }
  InboundConnect request{stream, *dst, source, peer_identity(), stream.header("traceparent"), stream.header("baggage")};
  handler_.on_connect_request(request);
}

void HboneServerConnection::on_stream_removed(H2Stream& stream) {
  if (stream.headers_done()) {
    stats().sub(stats::Id::tunnels_active);
  }
}

}  // namespace wp::hbone
