#include "waypoint/net/transport.h"

namespace wp::net {

const char* to_string(HandshakeFailure f) {
  switch (f) {
    case HandshakeFailure::None:
      return "none";
    case HandshakeFailure::NotTls:
      return "not_tls";
    case HandshakeFailure::ProtocolVersion:
      return "protocol_version";
    case HandshakeFailure::NoCertificate:
      return "no_certificate";
    case HandshakeFailure::UntrustedChain:
      return "untrusted_chain";
    case HandshakeFailure::BadIdentity:
      return "bad_identity";
    case HandshakeFailure::NoAlpn:
      return "no_alpn";
    case HandshakeFailure::Timeout:
      return "timeout";
    case HandshakeFailure::Io:
      return "io";
    case HandshakeFailure::Other:
      return "other";
  }
  return "other";
}

}  // namespace wp::net
