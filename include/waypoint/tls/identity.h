#pragma once
// SPIFFE identities (spiffe://<trust domain>/ns/<namespace>/sa/<service account>) and their
// extraction from X.509 URI SANs.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

typedef struct x509_st X509;

namespace wp::tls {

struct SpiffeId {
  std::string trust_domain;
  std::string ns;
  std::string sa;
  std::string uri;  // the full spiffe:// URI

  // Accepts exactly spiffe://TD/ns/NS/sa/SA with non-empty parts and no further path segments.
  static std::optional<SpiffeId> parse(std::string_view uri);
};

// Every URI SAN of the certificate, in order.
std::vector<std::string> uri_sans(X509* cert);

// The single spiffe:// URI SAN of the certificate, or nullopt when there is none or more than one.
std::optional<SpiffeId> spiffe_id_of(X509* cert);

}  // namespace wp::tls
