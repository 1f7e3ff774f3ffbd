#pragma once
// Test certificate generator: a throwaway root CA and SPIFFE leaf certificates (EC P-256, SHA-256),
// as PEM strings, for unit tests, integration tests, the demo and the benchmarks. Also the
// `wp-certgen` command line tool (certgen_main), which writes them into a directory.
//
// Everything here throws std::runtime_error (carrying the OpenSSL error queue) on failure.
#include <iosfwd>
#include <string>
#include <vector>

namespace wp::testing {

// A private key (PKCS#8 "PRIVATE KEY" PEM, unencrypted) and its certificate (one "CERTIFICATE"
// PEM).
struct KeyCert {
  std::string key_pem;
  std::string cert_pem;
};

struct LeafOptions {
  // Validity entirely in the past (notAfter = now - 1 day), for expiry tests.
  bool expired = false;
  // Additional URI SANs, after the SPIFFE ID (e.g. a second SPIFFE ID for "exactly one" checks).
  std::vector<std::string> extra_uris;
  // DNS SANs, after the URIs.
  std::vector<std::string> dns_names;
  // IP address SANs ("127.0.0.1", "::1"), after the DNS names.
  std::vector<std::string> ip_addresses;
};

// Self-signed root: subject CN=common_name (at most 64 characters), critical basicConstraints
// CA:TRUE, critical keyUsage keyCertSign,cRLSign, subjectKeyIdentifier, notBefore = now - 1 hour.
KeyCert make_root_ca(const std::string& common_name, int days = 365);

// Leaf signed by `ca` (whose key must match its certificate): URI SAN spiffe_id (no SAN at all when
// spiffe_id, extra_uris, dns_names and ip_addresses are all empty), critical basicConstraints
// CA:FALSE, critical keyUsage digitalSignature,keyEncipherment, extendedKeyUsage serverAuth,clientAuth,
// authorityKeyIdentifier, subjectKeyIdentifier, random 128-bit serial, notBefore = now - 1 hour.
// The subject is O=waypoint-test (identity lives only in the SAN, as with Istio).
KeyCert make_leaf(const KeyCert& ca, const std::string& spiffe_id, int days = 365, const LeafOptions& options = {});

// "spiffe://<trust_domain>/ns/<ns>/sa/<sa>".
std::string spiffe_id(const std::string& trust_domain, const std::string& ns, const std::string& sa);

// Writes (truncating) `path` with mode 0644.
void write_file(const std::string& path, const std::string& data);

// Writes <dir>/<basename>.pem (certificate, 0644) and <dir>/<basename>.key (key, 0600), creating
// `dir` if needed.
void write_identity(const std::string& dir, const std::string& basename, const KeyCert& identity);

// The `wp-certgen` tool. Returns the process exit code: 0 ok, 1 failure (I/O, OpenSSL, unusable
// existing CA), 2 bad arguments. The second form writes to the given streams instead of
// std::cout / std::cerr (for tests).
int certgen_main(int argc, char** argv);
int certgen_main(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace wp::testing
