#pragma once
// SSL_CTX construction for both HBONE directions: TLS 1.3 only, ALPN h2, mutual authentication
// against the configured root bundle, SPIFFE identity checks during the handshake.
#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "waypoint/config/snapshot.h"
#include "waypoint/net/transport.h"

namespace wp::tls {

using net::HandshakeFailure;
using net::kHandshakeFailureCount;

// Per-connection verification state, reachable from OpenSSL's verify callback.
struct VerifyState {
  std::string expected_identity;  // client side: exact SPIFFE ID the server must present (may be empty)
  std::string peer_identity;      // filled in during verification
  bool identity_failed = false;
};

class Context {
 public:
  enum class Role { Server, Client };
  // Throws std::runtime_error naming the file and the OpenSSL error.
  static std::shared_ptr<Context> make(Role role, const config::TlsFiles& files, const std::string& trust_domain);
  ~Context();

  SSL_CTX* raw() const { return ctx_; }
  Role role() const { return role_; }
  const std::string& trust_domain() const { return trust_domain_; }
  const std::string& own_identity() const { return own_identity_; }  // SPIFFE ID of our certificate

  // Attaches `state` to `ssl` so the verify callback can fill it in.
  static void attach(SSL* ssl, VerifyState* state);
  // Classifies a failed handshake from the OpenSSL error queue and the verify state.
  static HandshakeFailure classify_failure(SSL* ssl, const VerifyState& state, unsigned long err);

 private:
  Context() = default;
  static int verify_cb(int preverify_ok, X509_STORE_CTX* store);
  SSL_CTX* ctx_ = nullptr;
  Role role_ = Role::Server;
  std::string trust_domain_;
  std::string own_identity_;
};

using ContextPtr = std::shared_ptr<Context>;

}  // namespace wp::tls
