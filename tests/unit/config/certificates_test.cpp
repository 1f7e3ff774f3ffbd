// The bootstrap's certificate files are read and checked at load time.
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <memory>
#include <sstream>

#include "fixtures.h"

namespace wp::config {
namespace {

using testing::errors;

// tls.certChain is on line 7 (value at column 16), privateKey on 8 (17), rootCert on 9 (15).
std::string with_tls(const std::string& chain, const std::string& key, const std::string& root) {
  return "apiVersion: waypoint.proxy/v1alpha1\n"
         "kind: WaypointBootstrap\n"
         "metadata: {name: waypoint}\n"
         "spec:\n"
         "  gateway: waypoint\n"
         "  tls:\n"
         "    certChain: " +
         chain +
         "\n"
         "    privateKey: " +
         key +
         "\n"
         "    rootCert: " +
         root +
         "\n"
         "---\n"
         "apiVersion: gateway.networking.k8s.io/v1\n"
         "kind: Gateway\n"
         "metadata: {name: waypoint}\n"
         "spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: "
         "HBONE}]}\n";
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// The fixture key, encrypted with a passphrase: unusable without a prompt, so rejected.
std::string encrypted_key_pem() {
  std::string pem = read(testing::fixture_dir() + "/certs/waypoint.key");
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr),
                                                          EVP_PKEY_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  char pass[] = "secret";
  PEM_write_bio_PrivateKey(out.get(), key.get(), EVP_aes_128_cbc(), reinterpret_cast<unsigned char*>(pass), 6, nullptr,
                           nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

TEST_CASE("config: certificate files are checked", "[config]") {
  const std::string dir = testing::fixture_dir() + "/certs/";
  testing::write_file(dir + "garbage.pem", "not a certificate\n");
  testing::write_file(dir + "damaged.pem",
                      read(dir + "waypoint.pem") + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  testing::write_file(dir + "encrypted.key", encrypted_key_pem());
  const std::string chain = "certs/waypoint.pem";
  const std::string key = "certs/waypoint.key";
  const std::string root = "certs/root.pem";
  struct Case {
    std::string yaml;
    std::string error;
  };
  const Case cases[] = {
      {with_tls(chain, key, root), ""},
      {with_tls("certs/nope.pem", key, root),
       "cfg.yaml:7:16: WaypointBootstrap waypoint: spec.tls.certChain: cannot read certificate "
       "certs/nope.pem: No such file or directory"},
      {with_tls(chain, "nope.key", "certs"),
       "cfg.yaml:8:17: WaypointBootstrap waypoint: spec.tls.privateKey: cannot read private key "
       "nope.key: No such file or directory\n"
       "cfg.yaml:9:15: WaypointBootstrap waypoint: spec.tls.rootCert: cannot read root certificate "
       "certs: Is a directory"},
      {with_tls("certs/garbage.pem", key, root),
       "cfg.yaml:7:16: WaypointBootstrap waypoint: spec.tls.certChain: certs/garbage.pem holds no "
       "valid PEM certificate"},
      {with_tls("certs/damaged.pem", key, root),
       "cfg.yaml:7:16: WaypointBootstrap waypoint: spec.tls.certChain: certs/damaged.pem holds no "
       "valid PEM certificate"},
      {with_tls(chain, "certs/other.key", root),
       "cfg.yaml:8:17: WaypointBootstrap waypoint: spec.tls.privateKey: certs/other.key does not "
       "match the certificate in certs/waypoint.pem"},
      {with_tls(chain, chain, root),
       "cfg.yaml:8:17: WaypointBootstrap waypoint: spec.tls.privateKey: certs/waypoint.pem holds "
       "no "
       "valid unencrypted PEM private key"},
      {with_tls(chain, "certs/encrypted.key", root),
       "cfg.yaml:8:17: WaypointBootstrap waypoint: spec.tls.privateKey: certs/encrypted.key holds "
       "no "
       "valid unencrypted PEM private key"},
      {with_tls(chain, key, key),
       "cfg.yaml:9:15: WaypointBootstrap waypoint: spec.tls.rootCert: certs/waypoint.key holds no "
       "valid PEM certificate"},
  };
  for (const auto& c : cases) {
    INFO(c.yaml);
    CHECK(errors(c.yaml) == c.error);
  }
}

}  // namespace
}  // namespace wp::config
