// Tests for the test certificate generator (tests/support/certgen.h) and the wp-certgen tool.
#include "support/certgen.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using wp::testing::KeyCert;
using wp::testing::LeafOptions;

template <auto FreeFn>
struct FreeWith {
  template <typename T>
  void operator()(T* p) const {
    FreeFn(p);
  }
};

struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};

using BioPtr = std::unique_ptr<BIO, FreeWith<&BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, FreeWith<&BN_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<&EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, FreeWith<&X509_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, FreeWith<&X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, FreeWith<&X509_STORE_CTX_free>>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, FreeWith<&GENERAL_NAMES_free>>;

X509Ptr parse_cert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  REQUIRE(bio);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  REQUIRE(cert);
  return cert;
}

PkeyPtr parse_key(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  REQUIRE(bio);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  REQUIRE(key);
  return key;
}

// Verifies `leaf_pem` against a store holding `root_pem`, with optional untrusted intermediates and
// an optional purpose. Returns the X509_V_* result (X509_V_OK on success).
int verify(const std::string& root_pem, const std::string& leaf_pem,
           const std::vector<std::string>& untrusted_pems = {}, int purpose = 0) {
  X509Ptr root = parse_cert(root_pem);
  X509Ptr leaf = parse_cert(leaf_pem);
  X509StorePtr store(X509_STORE_new());
  REQUIRE(store);
  REQUIRE(X509_STORE_add_cert(store.get(), root.get()) == 1);

  std::vector<X509Ptr> untrusted_certs;
  X509StackPtr untrusted(sk_X509_new_null());
  REQUIRE(untrusted);
  for (const auto& pem : untrusted_pems) {
    untrusted_certs.push_back(parse_cert(pem));
    REQUIRE(sk_X509_push(untrusted.get(), untrusted_certs.back().get()) > 0);
  }

  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  REQUIRE(ctx);
  REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get()) == 1);
  if (purpose != 0) {
    REQUIRE(X509_STORE_CTX_set_purpose(ctx.get(), purpose) == 1);
  }
  int ok = X509_verify_cert(ctx.get());
  int error = X509_STORE_CTX_get_error(ctx.get());
  if (ok == 1) {
    CHECK(error == X509_V_OK);
    return X509_V_OK;
  }
  CHECK(error != X509_V_OK);
  return error;
}

std::vector<std::string> sans_of_type(const std::string& cert_pem, int type) {
  X509Ptr cert = parse_cert(cert_pem);
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  std::vector<std::string> out;
  if (!names) {
    return out;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    int name_type = 0;
    const auto* value = static_cast<const ASN1_STRING*>(GENERAL_NAME_get0_value(name, &name_type));
    if (name_type == type) {
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                       static_cast<size_t>(ASN1_STRING_length(value)));
    }
  }
  return out;
}

// Number of SAN entries of any type (-1 when there is no SAN extension).
int san_count(const std::string& cert_pem) {
  X509Ptr cert = parse_cert(cert_pem);
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  return names ? sk_GENERAL_NAME_num(names.get()) : -1;
}

bool extension_is_critical(X509* cert, int nid) {
  int index = X509_get_ext_by_NID(cert, nid, -1);
  REQUIRE(index >= 0);
  return X509_EXTENSION_get_critical(X509_get_ext(cert, index)) == 1;
}

// Seconds from now to `t` (negative when in the past).
long seconds_from_now(const ASN1_TIME* t) {
  int days = 0;
  int secs = 0;
  REQUIRE(ASN1_TIME_diff(&days, &secs, nullptr, t) == 1);
  return static_cast<long>(days) * 86400 + secs;
}

bool key_matches(const std::string& cert_pem, const std::string& key_pem) {
  X509Ptr cert = parse_cert(cert_pem);
  PkeyPtr key = parse_key(key_pem);
  return X509_check_private_key(cert.get(), key.get()) == 1;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

unsigned permissions_of(const fs::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "wp-certgen-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

struct CliResult {
  int rc = -1;
  std::string out;
  std::string err;
};

CliResult run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "wp-certgen");
  std::vector<char*> argv;
  for (auto& arg : args) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  std::ostringstream out;
  std::ostringstream err;
  CliResult result;
  result.rc = wp::testing::certgen_main(static_cast<int>(args.size()), argv.data(), out, err);
  result.out = out.str();
  result.err = err.str();
  return result;
}

size_t count_lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) {
    n += c == '\n' ? 1 : 0;
  }
  return n;
}

const std::string kWaypointId = "spiffe://cluster.local/ns/default/sa/waypoint";

}  // namespace

TEST_CASE("spiffe_id formats trust domain, namespace and service account", "[certgen]") {
  CHECK(wp::testing::spiffe_id("cluster.local", "default", "waypoint") == kWaypointId);
  CHECK(wp::testing::spiffe_id("example.org", "apps", "sleep") == "spiffe://example.org/ns/apps/sa/sleep");
}

TEST_CASE("root CA is a self-signed EC P-256 CA", "[certgen]") {
  KeyCert root = wp::testing::make_root_ca("test root");
  CHECK(root.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
  CHECK(root.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
  CHECK(key_matches(root.cert_pem, root.key_pem));

  X509Ptr cert = parse_cert(root.cert_pem);
  PkeyPtr key = parse_key(root.key_pem);
  CHECK(EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_EC);
  CHECK(EVP_PKEY_get_bits(key.get()) == 256);
  CHECK(X509_get_signature_nid(cert.get()) == NID_ecdsa_with_SHA256);
  CHECK(X509_get_version(cert.get()) == X509_VERSION_3);

  // Self-signed: subject == issuer, signature checks with its own key.
  CHECK(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())) == 0);
  CHECK(X509_verify(cert.get(), X509_get0_pubkey(cert.get())) == 1);
  char cn[128] = {};
  REQUIRE(X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn)) > 0);
  CHECK(std::string(cn) == "test root");

  CHECK(X509_check_ca(cert.get()) == 1);
  CHECK(extension_is_critical(cert.get(), NID_basic_constraints));
  CHECK(extension_is_critical(cert.get(), NID_key_usage));
  CHECK(X509_get_key_usage(cert.get()) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  CHECK(X509_get0_subject_key_id(cert.get()) != nullptr);

  // Validity: from an hour ago to `days` ahead.
  CHECK(seconds_from_now(X509_get0_notBefore(cert.get())) == Approx(-3600).margin(120));
  CHECK(seconds_from_now(X509_get0_notAfter(cert.get())) == Approx(365L * 86400).margin(120));

  // The root verifies against a store holding itself.
  CHECK(verify(root.cert_pem, root.cert_pem) == X509_V_OK);
}

TEST_CASE("leaf verifies against its root and carries exactly the SPIFFE URI SAN", "[certgen]") {
  KeyCert root = wp::testing::make_root_ca("test root");
  KeyCert leaf = wp::testing::make_leaf(root, kWaypointId);

  CHECK(verify(root.cert_pem, leaf.cert_pem) == X509_V_OK);
  CHECK(verify(root.cert_pem, leaf.cert_pem, {}, X509_PURPOSE_SSL_SERVER) == X509_V_OK);
  CHECK(verify(root.cert_pem, leaf.cert_pem, {}, X509_PURPOSE_SSL_CLIENT) == X509_V_OK);

  CHECK(san_count(leaf.cert_pem) == 1);
  CHECK(sans_of_type(leaf.cert_pem, GEN_URI) == std::vector<std::string>{kWaypointId});
  CHECK(key_matches(leaf.cert_pem, leaf.key_pem));

  X509Ptr cert = parse_cert(leaf.cert_pem);
  X509Ptr ca = parse_cert(root.cert_pem);
  PkeyPtr key = parse_key(leaf.key_pem);
  CHECK(EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_EC);
  CHECK(EVP_PKEY_get_bits(key.get()) == 256);
  CHECK(X509_get_signature_nid(cert.get()) == NID_ecdsa_with_SHA256);
  CHECK(X509_NAME_cmp(X509_get_issuer_name(cert.get()), X509_get_subject_name(ca.get())) == 0);

  CHECK(X509_check_ca(cert.get()) == 0);
  CHECK(extension_is_critical(cert.get(), NID_basic_constraints));
  CHECK(X509_get_key_usage(cert.get()) == (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
  CHECK(X509_get_extended_key_usage(cert.get()) == (XKU_SSL_SERVER | XKU_SSL_CLIENT));
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(cert.get());
  REQUIRE(aki != nullptr);
  CHECK(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(ca.get())) == 0);

  CHECK(seconds_from_now(X509_get0_notBefore(cert.get())) == Approx(-3600).margin(120));
  CHECK(seconds_from_now(X509_get0_notAfter(cert.get())) == Approx(365L * 86400).margin(120));
}

TEST_CASE("leaf serials are random 128-bit numbers", "[certgen]") {
  KeyCert root = wp::testing::make_root_ca("test root");
  std::set<std::string> serials;
  for (int i = 0; i < 20; ++i) {
    KeyCert leaf = wp::testing::make_leaf(root, kWaypointId);
    X509Ptr cert = parse_cert(leaf.cert_pem);
    BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
    REQUIRE(bn);
    CHECK(BN_num_bits(bn.get()) == 128);
    CHECK(!BN_is_negative(bn.get()));
    char* hex = BN_bn2hex(bn.get());
    REQUIRE(hex != nullptr);
    serials.insert(hex);
    OPENSSL_free(hex);
  }
  CHECK(serials.size() == 20);
}

TEST_CASE("leaf SAN options", "[certgen]") {
  KeyCert root = wp::testing::make_root_ca("test root");

  SECTION("empty SPIFFE ID: no SAN extension at all") {
    KeyCert leaf = wp::testing::make_leaf(root, "");
    CHECK(san_count(leaf.cert_pem) == -1);
    CHECK(verify(root.cert_pem, leaf.cert_pem) == X509_V_OK);
  }
  SECTION("extra URIs follow the SPIFFE ID, DNS names follow the URIs") {
    LeafOptions options;
    options.extra_uris = {"spiffe://cluster.local/ns/other/sa/second", "https://x.test/a,b"};
    options.dns_names = {"waypoint.default.svc", "localhost"};
    KeyCert leaf = wp::testing::make_leaf(root, kWaypointId, 365, options);
    CHECK(san_count(leaf.cert_pem) == 5);
    CHECK(sans_of_type(leaf.cert_pem, GEN_URI) ==
          std::vector<std::string>{kWaypointId, "spiffe://cluster.local/ns/other/sa/second", "https://x.test/a,b"});
    CHECK(sans_of_type(leaf.cert_pem, GEN_DNS) == std::vector<std::string>{"waypoint.default.svc", "localhost"});
    X509Ptr cert = parse_cert(leaf.cert_pem);
    CHECK(X509_check_host(cert.get(), "localhost", 0, 0, nullptr) == 1);
  }
  SECTION("only DNS names, no SPIFFE ID") {
    LeafOptions options;
    options.dns_names = {"localhost"};
    KeyCert leaf = wp::testing::make_leaf(root, "", 365, options);
    CHECK(sans_of_type(leaf.cert_pem, GEN_URI).empty());
    CHECK(sans_of_type(leaf.cert_pem, GEN_DNS) == std::vector<std::string>{"localhost"});
  }
}

TEST_CASE("leaf is rejected by a store holding a different root", "[certgen]") {
  KeyCert root = wp::testing::make_root_ca("test root");
  KeyCert leaf = wp::testing::make_leaf(root, kWaypointId);

  SECTION("different name") {
    KeyCert other = wp::testing::make_root_ca("other root");
    CHECK(verify(other.cert_pem, leaf.cert_pem) == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  }
  SECTION("same name, different key") {
    KeyCert other = wp::testing::make_root_ca("test root");
    CHECK(verify(other.cert_pem, leaf.cert_pem) != X509_V_OK);
  }
}

TEST_CASE("expired leaf fails verification with CERT_HAS_EXPIRED", "[certgen]") {
  KeyCert root = wp::testing::make_root_ca("test root");
  LeafOptions options;
  options.expired = true;
  KeyCert leaf = wp::testing::make_leaf(root, kWaypointId, 30, options);

  X509Ptr cert = parse_cert(leaf.cert_pem);
  CHECK(seconds_from_now(X509_get0_notAfter(cert.get())) < 0);
  CHECK(seconds_from_now(X509_get0_notBefore(cert.get())) < 0);
  CHECK(verify(root.cert_pem, leaf.cert_pem) == X509_V_ERR_CERT_HAS_EXPIRED);
  // Still a well-formed identity otherwise.
  CHECK(sans_of_type(leaf.cert_pem, GEN_URI) == std::vector<std::string>{kWaypointId});
  CHECK(key_matches(leaf.cert_pem, leaf.key_pem));
}

TEST_CASE("keys match only their own certificates", "[certgen]") {
  KeyCert root = wp::testing::make_root_ca("test root");
  KeyCert a = wp::testing::make_leaf(root, "spiffe://cluster.local/ns/a/sa/a");
  KeyCert b = wp::testing::make_leaf(root, "spiffe://cluster.local/ns/b/sa/b");
  CHECK(key_matches(a.cert_pem, a.key_pem));
  CHECK(key_matches(b.cert_pem, b.key_pem));
  CHECK_FALSE(key_matches(a.cert_pem, b.key_pem));
  CHECK_FALSE(key_matches(root.cert_pem, a.key_pem));
  ERR_clear_error();  // X509_check_private_key leaves "key values mismatch" on the queue.
}

TEST_CASE("a leaf used as an issuer does not make a valid chain", "[certgen]") {
  KeyCert root = wp::testing::make_root_ca("test root");
  KeyCert leaf = wp::testing::make_leaf(root, kWaypointId);
  KeyCert grandchild = wp::testing::make_leaf(leaf, "spiffe://cluster.local/ns/x/sa/x");
  CHECK(verify(root.cert_pem, grandchild.cert_pem, {leaf.cert_pem}) == X509_V_ERR_INVALID_CA);
}

TEST_CASE("certgen errors throw runtime_error with the OpenSSL reason", "[certgen]") {
  KeyCert root = wp::testing::make_root_ca("test root");
  KeyCert other = wp::testing::make_root_ca("other root");

  CHECK_THROWS_AS(wp::testing::make_leaf(KeyCert{"junk", "junk"}, kWaypointId), std::runtime_error);
  CHECK_THROWS_WITH(wp::testing::make_leaf(KeyCert{root.key_pem, "junk"}, kWaypointId),
                    Catch::Contains("certificate") && Catch::Contains("PEM"));
  CHECK_THROWS_WITH(wp::testing::make_leaf(KeyCert{other.key_pem, root.cert_pem}, kWaypointId),
                    Catch::Contains("does not match") && Catch::Contains("mismatch"));
  CHECK_THROWS_AS(wp::testing::make_leaf(root, kWaypointId, 0), std::runtime_error);
  CHECK_THROWS_AS(wp::testing::make_root_ca("test root", -1), std::runtime_error);
  // The subject CN is limited to 64 characters by X.509; OpenSSL's reason reaches the message.
  CHECK_THROWS_WITH(wp::testing::make_root_ca(std::string(65, 'x')),
                    Catch::Contains("CN=") && Catch::Contains("too long"));
  CHECK(ERR_peek_error() == 0);  // The error queue is drained into the exception.
}

TEST_CASE("write_identity writes the cert world-readable and the key 0600", "[certgen]") {
  TempDir dir;
  KeyCert root = wp::testing::make_root_ca("test root");
  KeyCert leaf = wp::testing::make_leaf(root, kWaypointId);

  // A pre-existing, world-readable key file gets tightened.
  wp::testing::write_file((dir / "id.key").string(), "old");
  CHECK(permissions_of(dir / "id.key") == 0644);

  wp::testing::write_identity(dir.path().string(), "id", leaf);
  CHECK(read_file(dir / "id.pem") == leaf.cert_pem);
  CHECK(read_file(dir / "id.key") == leaf.key_pem);
  CHECK(permissions_of(dir / "id.pem") == 0644);
  CHECK(permissions_of(dir / "id.key") == 0600);

  // Creates missing directories.
  wp::testing::write_identity((dir / "a/b").string(), "root", root);
  CHECK(read_file(dir / "a/b/root.pem") == root.cert_pem);

  CHECK_THROWS_AS(wp::testing::write_file((dir / "missing/dir/file").string(), "x"), std::runtime_error);
}

TEST_CASE("wp-certgen writes a CA and identities, then reuses the CA", "[certgen][cli]") {
  TempDir tmp;
  fs::path out = tmp / "certs";  // Does not exist yet.

  CliResult first = run_cli(
      {"--out", out.string(), "--identity", "client=apps/sleep", "--identity=server=apps/httpbin", "--days", "30"});
  INFO(first.err);
  REQUIRE(first.rc == 0);
  CHECK(count_lines(first.out) == 8);  // root, waypoint, client, server: .pem + .key each.
  CHECK(first.out.find((out / "root.pem").string()) != std::string::npos);

  std::string root_pem = read_file(out / "root.pem");
  std::string root_key = read_file(out / "root.key");
  CHECK(key_matches(root_pem, root_key));
  CHECK(permissions_of(out / "root.key") == 0600);

  struct Expected {
    const char* name;
    std::string id;
  };
  const std::vector<Expected> expected = {
      {"waypoint", kWaypointId},
      {"client", "spiffe://cluster.local/ns/apps/sa/sleep"},
      {"server", "spiffe://cluster.local/ns/apps/sa/httpbin"},
  };
  for (const auto& e : expected) {
    INFO(e.name);
    std::string pem = read_file(out / (std::string(e.name) + ".pem"));
    std::string key = read_file(out / (std::string(e.name) + ".key"));
    CHECK(first.out.find(e.id) != std::string::npos);
    CHECK(verify(root_pem, pem) == X509_V_OK);
    CHECK(sans_of_type(pem, GEN_URI) == std::vector<std::string>{e.id});
    CHECK(san_count(pem) == 1);
    CHECK(key_matches(pem, key));
    CHECK(permissions_of(out / (std::string(e.name) + ".key")) == 0600);
    X509Ptr cert = parse_cert(pem);
    CHECK(seconds_from_now(X509_get0_notAfter(cert.get())) == Approx(30L * 86400).margin(120));
  }
  // A new root outlives the leaves.
  X509Ptr root_cert = parse_cert(root_pem);
  CHECK(seconds_from_now(X509_get0_notAfter(root_cert.get())) == Approx(3650L * 86400).margin(120));

  SECTION("a second run reuses the CA and adds identities") {
    CliResult second = run_cli({"--out", out.string(), "--identity", "late=apps/late"});
    INFO(second.err);
    REQUIRE(second.rc == 0);
    CHECK(count_lines(second.out) == 4);  // waypoint + late, no root files.
    CHECK(second.out.find("root.") == std::string::npos);
    CHECK(second.err.find("reusing") != std::string::npos);
    CHECK(read_file(out / "root.pem") == root_pem);
    CHECK(read_file(out / "root.key") == root_key);
    std::string late = read_file(out / "late.pem");
    CHECK(verify(root_pem, late) == X509_V_OK);
    CHECK(sans_of_type(late, GEN_URI) == std::vector<std::string>{"spiffe://cluster.local/ns/apps/sa/late"});
    // Identities from the first run still chain to the same root.
    CHECK(verify(root_pem, read_file(out / "client.pem")) == X509_V_OK);
  }
  SECTION("--force makes a new CA") {
    CliResult forced = run_cli({"--out", out.string(), "--force"});
    REQUIRE(forced.rc == 0);
    CHECK(count_lines(forced.out) == 4);  // root + waypoint.
    std::string new_root = read_file(out / "root.pem");
    CHECK(new_root != root_pem);
    CHECK(verify(new_root, read_file(out / "waypoint.pem")) == X509_V_OK);
    CHECK(verify(root_pem, read_file(out / "waypoint.pem")) != X509_V_OK);
  }
  SECTION("an unusable existing CA is an error, not silently replaced") {
    wp::testing::write_file((out / "root.key").string(), wp::testing::make_root_ca("x").key_pem);
    CliResult bad = run_cli({"--out", out.string()});
    CHECK(bad.rc == 1);
    CHECK(bad.err.find("does not match") != std::string::npos);
  }
  SECTION("half a CA is an error") {
    fs::remove(out / "root.key");
    CliResult bad = run_cli({"--out", out.string()});
    CHECK(bad.rc == 1);
    CHECK_FALSE(fs::exists(out / "root.key"));
  }
}

TEST_CASE("wp-certgen --trust-domain and --namespace shape the waypoint identity", "[certgen][cli]") {
  TempDir tmp;
  CliResult r = run_cli({"--out=" + tmp.path().string(), "--trust-domain", "example.org", "--namespace", "mesh",
                         "--identity", "c=apps/sleep"});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(sans_of_type(read_file(tmp / "waypoint.pem"), GEN_URI) ==
        std::vector<std::string>{"spiffe://example.org/ns/mesh/sa/waypoint"});
  CHECK(sans_of_type(read_file(tmp / "c.pem"), GEN_URI) ==
        std::vector<std::string>{"spiffe://example.org/ns/apps/sa/sleep"});
}

TEST_CASE("wp-certgen --help and bad arguments", "[certgen][cli]") {
  TempDir tmp;
  std::string dir = (tmp / "never").string();

  CliResult help = run_cli({"--help"});
  CHECK(help.rc == 0);
  CHECK(help.out.find("usage: wp-certgen") != std::string::npos);
  CHECK(run_cli({"--out", dir, "-h"}).rc == 0);

  const std::vector<std::vector<std::string>> bad = {
      {},
      {"--out"},
      {"--out", ""},
      {"--bogus"},
      {"--out", dir, "extra"},
      {"--out", dir, "--days", "0"},
      {"--out", dir, "--days", "12x"},
      {"--out", dir, "--days", "99999999999"},
      {"--out", dir, "--identity", "noequals"},
      {"--out", dir, "--identity", "a=noslash"},
      {"--out", dir, "--identity", "=ns/sa"},
      {"--out", dir, "--identity", "a=/sa"},
      {"--out", dir, "--identity", "a=ns/"},
      {"--out", dir, "--identity", "a=ns/sa/extra"},
      {"--out", dir, "--identity", "../evil=ns/sa"},
      {"--out", dir, "--identity", "root=ns/sa"},
      {"--out", dir, "--identity", "waypoint=ns/sa"},
      {"--out", dir, "--identity", "a=ns/sa", "--identity", "a=ns/sb"},
      {"--out", dir, "--trust-domain", "Bad/Domain"},
      {"--out", dir, "--namespace", "a/b"},
  };
  for (const auto& args : bad) {
    std::string joined;
    for (const auto& a : args) {
      joined += "[" + a + "] ";
    }
    INFO(joined);
    CliResult r = run_cli(args);
    CHECK(r.rc == 2);
    CHECK_FALSE(r.err.empty());
    CHECK(r.out.empty());
  }
  CHECK_FALSE(fs::exists(dir));
}
