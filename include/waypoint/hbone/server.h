#pragma once
// HBONE terminate: the server side of 15008. Each CONNECT request is checked (method, authority,
// header size) and handed to a ConnectHandler — the internal listener — as an InboundConnect.
#include <optional>
#include <string>

#include "waypoint/hbone/h2_connection.h"
#include "waypoint/tls/context.h"

namespace wp::hbone {

struct InboundConnect {
  H2Stream& stream;
  net::SockAddr destination;         // from :authority
  net::IpAddr source_ip;             // forwarded for= when present and valid, else the TCP peer
  const std::string& peer_identity;  // SPIFFE ID of the client certificate
  const std::string* traceparent;    // nullptr when absent
  const std::string* baggage;
};

class ConnectHandler {
 public:
  virtual ~ConnectHandler() = default;
  // Must answer the stream eventually: respond(200) and take it as a Tunnel, or respond(4xx/5xx).
  virtual void on_connect_request(const InboundConnect& request) = 0;
};

// Parses the first for= element of a Forwarded header (RFC 7239): for=1.2.3.4, for="1.2.3.4:80",
// for="[2001:db8::1]:80". nullopt when absent or not an IP (e.g. obfuscated identifiers).
std::optional<net::IpAddr> parse_forwarded_for(std::string_view header);

class HboneServerConnection final : public H2Connection {
 public:
  // Over any transport (tests and fuzzing use an in-memory one).
  HboneServerConnection(event::Loop& loop, std::unique_ptr<net::Transport> transport, const net::SockAddr& peer,
                        const H2Settings& settings, Owner& owner, stats::Block& stats, ConnectHandler& handler);
  // Over TLS on an accepted fd.
  HboneServerConnection(event::Loop& loop, int fd, const net::SockAddr& peer, const tls::ContextPtr& tls,
                        const H2Settings& settings, Owner& owner, stats::Block& stats, ConnectHandler& handler);

 private:
  void on_headers_complete(H2Stream& stream) override;
  void on_stream_removed(H2Stream& stream) override;
  void on_handshake_failed(net::HandshakeFailure failure) override;

  ConnectHandler& handler_;
};

}  // namespace wp::hbone
