#include <catch2/catch.hpp>

#include <openssl/pem.h>

#include "support/certgen.h"
#include "waypoint/tls/identity.h"

using wp::tls::SpiffeId;

TEST_CASE("SpiffeId::parse takes exactly spiffe://td/ns/NS/sa/SA", "[tls]") {
  auto id = SpiffeId::parse("spiffe://cluster.local/ns/default/sa/bookinfo-reviews");
  REQUIRE(id.has_value());
  CHECK(id->trust_domain == "cluster.local");
  CHECK(id->ns == "default");
  CHECK(id->sa == "bookinfo-reviews");
  for (const char* bad : {"spiffe://cluster.local/ns/default/sa/", "spiffe://cluster.local/ns//sa/x",
                          "spiffe:///ns/default/sa/x", "spiffe://td/ns/default/sa/x/extra", "spiffe://td/default/x",
                          "spiffe://td/sa/x/ns/y", "https://td/ns/a/sa/b", "SPIFFE://td/ns/a/sa/b", ""}) {
    INFO(bad);
    CHECK_FALSE(SpiffeId::parse(bad).has_value());
  }
}

TEST_CASE("spiffe_id_of reads the single SPIFFE URI SAN of a certificate", "[tls]") {
  auto root = wp::testing::make_root_ca("root");
  auto load = [](const std::string& pem) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    return x;
  };
  X509* good = load(wp::testing::make_leaf(root, "spiffe://cluster.local/ns/a/sa/b").cert_pem);
  auto id = wp::tls::spiffe_id_of(good);
  REQUIRE(id.has_value());
  CHECK(id->uri == "spiffe://cluster.local/ns/a/sa/b");
  X509_free(good);

  X509* none = load(wp::testing::make_leaf(root, "").cert_pem);
  CHECK_FALSE(wp::tls::spiffe_id_of(none).has_value());
  X509_free(none);

  wp::testing::LeafOptions two;
  two.extra_uris = {"spiffe://cluster.local/ns/a/sa/c"};
  X509* dual = load(wp::testing::make_leaf(root, "spiffe://cluster.local/ns/a/sa/b", 365, two).cert_pem);
  CHECK(wp::tls::uri_sans(dual).size() == 2);
  CHECK_FALSE(wp::tls::spiffe_id_of(dual).has_value());  // two SPIFFE IDs: invalid SVID
  X509_free(dual);
}
