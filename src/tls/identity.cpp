#include "waypoint/tls/identity.h"

#include <openssl/x509v3.h>

namespace wp::tls {

std::optional<SpiffeId> SpiffeId::parse(std::string_view uri) {
  constexpr std::string_view kScheme = "spiffe://";
  if (uri.substr(0, kScheme.size()) != kScheme) {
    return std::nullopt;
  }
  std::string_view rest = uri.substr(kScheme.size());
  std::vector<std::string_view> parts;
  while (true) {
    auto slash = rest.find('/');
    parts.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) {
      break;
    }
    rest = rest.substr(slash + 1);
  }
  if (parts.size() != 5 || parts[1] != "ns" || parts[3] != "sa") {
    return std::nullopt;
  }
  for (auto p : parts) {
    if (p.empty()) {
      return std::nullopt;
    }
  }
  return SpiffeId{std::string(parts[0]), std::string(parts[2]), std::string(parts[4]), std::string(uri)};
}

std::vector<std::string> uri_sans(X509* cert) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) {
    return out;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_URI) {
      const ASN1_IA5STRING* s = n->d.uniformResourceIdentifier;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::optional<SpiffeId> spiffe_id_of(X509* cert) {
  std::optional<SpiffeId> found;
  for (const auto& uri : uri_sans(cert)) {
    if (uri.rfind("spiffe://", 0) == 0) {
      if (found) {
        return std::nullopt;  // more than one SPIFFE ID is invalid (SPIFFE X509-SVID §2)
      }
      found = SpiffeId::parse(uri);
      if (!found) {
        return std::nullopt;
      }
    }
  }
  return found;
}

}  // namespace wp::tls
