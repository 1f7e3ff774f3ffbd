#include "waypoint/tls/context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <stdexcept>

#include "waypoint/tls/identity.h"

namespace wp::tls {
namespace {

int ctx_index() {
  static int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}
int ssl_index() {
  static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + openssl_error());
}

constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

int alpn_select(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnH2, sizeof(kAlpnH2), in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no_application_protocol: HBONE is h2 only
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Context::~Context() {
  if (ctx_ != nullptr) {
    SSL_CTX_free(ctx_);
  }
}

std::shared_ptr<Context> Context::make(Role role, const config::TlsFiles& files, const std::string& trust_domain) {
  std::shared_ptr<Context> c(new Context());
  c->role_ = role;
  c->trust_domain_ = trust_domain;
  c->ctx_ = SSL_CTX_new(role == Role::Server ? TLS_server_method() : TLS_client_method());
  if (c->ctx_ == nullptr) {
    fail("SSL_CTX_new");
  }
  SSL_CTX* ctx = c->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // AES-128-GCM first, as BoringSSL (Envoy) orders them: about 1.3x the throughput of OpenSSL's
  // default first choice AES-256-GCM with AES-NI, and every byte is ciphered twice (in and out).
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

  if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_chain.c_str()) != 1) {
    fail("certificate chain " + files.cert_chain);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, files.private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail("private key " + files.private_key);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    fail("private key does not match certificate " + files.cert_chain);
  }
  if (SSL_CTX_load_verify_locations(ctx, files.root_cert.c_str(), nullptr) != 1) {
    fail("root certificate " + files.root_cert);
  }
  if (auto id = spiffe_id_of(SSL_CTX_get0_certificate(ctx))) {
    c->own_identity_ = id->uri;
  }
  SSL_CTX_set_ex_data(ctx, ctx_index(), c.get());
  if (role == Role::Server) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, &Context::verify_cb);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, &Context::verify_cb);
    SSL_CTX_set_alpn_protos(ctx, kAlpnH2, sizeof(kAlpnH2));
  }
  SSL_CTX_set_verify_depth(ctx, 8);
  return c;
}

void Context::attach(SSL* ssl, VerifyState* state) {
  SSL_set_ex_data(ssl, ssl_index(), state);
}

// Runs for every certificate of the peer's chain; at depth 0 (the leaf), after OpenSSL accepted the
// chain, the SPIFFE identity decides.
int Context::verify_cb(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok != 1 || X509_STORE_CTX_get_error_depth(store) != 0) {
    return preverify_ok;
  }
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* ctx = static_cast<Context*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index()));
  auto* state = static_cast<VerifyState*>(SSL_get_ex_data(ssl, ssl_index()));
  if (ctx == nullptr || state == nullptr) {
    return 0;
  }
  auto id = spiffe_id_of(X509_STORE_CTX_get_current_cert(store));
  bool ok = id && id->trust_domain == ctx->trust_domain_ &&
            (state->expected_identity.empty() || id->uri == state->expected_identity);
  if (!ok) {
    state->identity_failed = true;
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  state->peer_identity = id->uri;
  return 1;
}

HandshakeFailure Context::classify_failure(SSL* ssl, const VerifyState& state, unsigned long err) {
  if (state.identity_failed) {
    return HandshakeFailure::BadIdentity;
  }
  if (err == 0) {
    return HandshakeFailure::Io;
  }
  int reason = ERR_GET_REASON(err);
  switch (reason) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
      return HandshakeFailure::NotTls;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_VERSION_TOO_LOW:
      return HandshakeFailure::ProtocolVersion;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return HandshakeFailure::NoCertificate;
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
      return HandshakeFailure::NoAlpn;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
      return SSL_get_verify_result(ssl) == X509_V_ERR_APPLICATION_VERIFICATION ? HandshakeFailure::BadIdentity
                                                                               : HandshakeFailure::UntrustedChain;
    default:
      return HandshakeFailure::Other;
  }
}

}  // namespace wp::tls
