// Test certificate generator (see certgen.h). OpenSSL 3 C API; every OpenSSL object is owned by a
// unique_ptr with the matching free function.
#include "support/certgen.h"

#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <system_error>

namespace wp::testing {
namespace {

template <auto FreeFn>
struct FreeWith {
  template <typename T>
  void operator()(T* p) const {
    FreeFn(p);
  }
};

using BioPtr = std::unique_ptr<BIO, FreeWith<&BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, FreeWith<&BN_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, FreeWith<&ASN1_INTEGER_free>>;
using Asn1Ia5StringPtr = std::unique_ptr<ASN1_IA5STRING, FreeWith<&ASN1_IA5STRING_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<&EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, FreeWith<&X509_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, FreeWith<&X509_EXTENSION_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, FreeWith<&GENERAL_NAME_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, FreeWith<&GENERAL_NAMES_free>>;

constexpr long kSecondsPerDay = 24 * 60 * 60;
constexpr long kBackdateSeconds = 60 * 60;  // notBefore = now - 1 hour: tolerate clock skew.
constexpr int kSerialBits = 128;
constexpr int kMaxDays = 100 * 366;

// Throws std::runtime_error "<what>: <OpenSSL error queue>" and clears the queue.
[[noreturn]] void throw_openssl(const std::string& what) {
  std::string message = "certgen: " + what;
  bool first = true;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    message += first ? ": " : "; ";
    message += buf;
    first = false;
  }
  if (first) {
    message += ": (no OpenSSL error reported)";
  }
  throw std::runtime_error(message);
}

void check(bool ok, const char* what) {
  if (!ok) {
    throw_openssl(what);
  }
}

void check_days(int days) {
  if (days <= 0 || days > kMaxDays) {
    throw std::runtime_error("certgen: validity must be 1.." + std::to_string(kMaxDays) + " days, got " +
                             std::to_string(days));
  }
}

PkeyPtr generate_p256_key() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  check(key != nullptr, "generating an EC P-256 key");
  return key;
}

BioPtr memory_bio() {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio != nullptr, "allocating a memory BIO");
  return bio;
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || data == nullptr) {
    return {};
  }
  return std::string(data, static_cast<size_t>(len));
}

BioPtr read_only_bio(const std::string& pem) {
  if (pem.size() > static_cast<size_t>(INT_MAX)) {
    throw std::runtime_error("certgen: PEM input too large");
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  check(bio != nullptr, "allocating a memory BIO");
  return bio;
}

std::string key_to_pem(EVP_PKEY* key) {
  BioPtr bio = memory_bio();
  check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "encoding the private key as PEM");
  return bio_contents(bio.get());
}

std::string cert_to_pem(X509* cert) {
  BioPtr bio = memory_bio();
  check(PEM_write_bio_X509(bio.get(), cert) == 1, "encoding the certificate as PEM");
  return bio_contents(bio.get());
}

PkeyPtr key_from_pem(const std::string& pem) {
  BioPtr bio = read_only_bio(pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  check(key != nullptr, "parsing the CA private key PEM");
  return key;
}

X509Ptr cert_from_pem(const std::string& pem) {
  BioPtr bio = read_only_bio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  check(cert != nullptr, "parsing the CA certificate PEM");
  return cert;
}

void set_random_serial(X509* cert) {
  BignumPtr bn(BN_new());
  check(bn != nullptr, "allocating a BIGNUM");
  // Exactly 128 bits (top bit set), so never zero; positive, so 17 DER bytes at most.
  check(BN_rand(bn.get(), kSerialBits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) == 1, "generating a random serial");
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  check(serial != nullptr, "converting the serial");
  check(X509_set_serialNumber(cert, serial.get()) == 1, "setting the serial");
}

void set_validity(X509* cert, long not_before_offset, long not_after_offset) {
  check(X509_gmtime_adj(X509_getm_notBefore(cert), not_before_offset) != nullptr, "setting notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(cert), not_after_offset) != nullptr, "setting notAfter");
}

void add_name_entry(X509_NAME* name, const char* field, const std::string& value) {
  check(X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()),
                                   -1, -1, 0) == 1,
        (std::string("setting subject ") + field + "=" + value).c_str());
}

// Adds an extension given in OpenSSL's config syntax ("critical,CA:TRUE", "hash", ...).
// `issuer` may equal `cert` (self-signed).
void add_conf_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  check(ext != nullptr, (std::string("building extension ") + OBJ_nid2sn(nid)).c_str());
  check(X509_add_ext(cert, ext.get(), -1) == 1, (std::string("adding extension ") + OBJ_nid2sn(nid)).c_str());
}

void push_general_name(GENERAL_NAMES* names, int type, const std::string& value) {
  Asn1Ia5StringPtr text(ASN1_IA5STRING_new());
  check(text != nullptr, "allocating a SAN string");
  check(ASN1_STRING_set(text.get(), value.data(), static_cast<int>(value.size())) == 1, "setting a SAN string");
  GeneralNamePtr name(GENERAL_NAME_new());
  check(name != nullptr, "allocating a SAN entry");
  GENERAL_NAME_set0_value(name.get(), type, text.release());
  check(sk_GENERAL_NAME_push(names, name.get()) > 0, "appending a SAN entry");
  name.release();  // Owned by `names` now.
}

// Built by hand rather than from "URI:..." config text so that commas in a URI cannot split it.
void add_subject_alt_names(X509* cert, const std::vector<std::string>& uris, const std::vector<std::string>& dns_names,
                           const std::vector<std::string>& ips) {
  if (uris.empty() && dns_names.empty() && ips.empty()) {
    return;
  }
  GeneralNamesPtr names(GENERAL_NAMES_new());
  check(names != nullptr, "allocating subjectAltName");
  for (const auto& uri : uris) {
    push_general_name(names.get(), GEN_URI, uri);
  }
  for (const auto& dns : dns_names) {
    push_general_name(names.get(), GEN_DNS, dns);
  }
  for (const auto& ip : ips) {
    ASN1_OCTET_STRING* bytes = a2i_IPADDRESS(ip.c_str());
    check(bytes != nullptr, ("not an IP address: " + ip).c_str());
    GeneralNamePtr name(GENERAL_NAME_new());
    check(name != nullptr, "allocating a SAN entry");
    GENERAL_NAME_set0_value(name.get(), GEN_IPADD, bytes);
    check(sk_GENERAL_NAME_push(names.get(), name.get()) > 0, "appending a SAN entry");
    name.release();  // Owned by `names` now.
  }
  check(X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) == 1,
        "adding subjectAltName");
}

X509Ptr new_v3_cert(EVP_PKEY* public_key) {
  X509Ptr cert(X509_new());
  check(cert != nullptr, "allocating a certificate");
  check(X509_set_version(cert.get(), X509_VERSION_3) == 1, "setting the version");
  set_random_serial(cert.get());
  check(X509_set_pubkey(cert.get(), public_key) == 1, "setting the public key");
  return cert;
}

void sign(X509* cert, EVP_PKEY* key) {
  check(X509_sign(cert, key, EVP_sha256()) > 0, "signing the certificate");
}

// ---- file helpers ----

void write_file_with_mode(const std::string& path, const std::string& data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    throw std::runtime_error("certgen: cannot open " + path + ": " + std::strerror(errno));
  }
  // The file may have existed with looser permissions; fix them before writing any secret.
  if (::fchmod(fd, mode) != 0) {
    int saved = errno;
    ::close(fd);
    throw std::runtime_error("certgen: cannot chmod " + path + ": " + std::strerror(saved));
  }
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int saved = errno;
      ::close(fd);
      throw std::runtime_error("certgen: cannot write " + path + ": " + std::strerror(saved));
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    throw std::runtime_error("certgen: cannot close " + path + ": " + std::strerror(errno));
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("certgen: cannot read " + path);
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string join_path(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

// ---- command line ----

constexpr const char* kUsage =
    "usage: wp-certgen --out DIR [options]\n"
    "\n"
    "Writes a test root CA and SPIFFE workload identities (EC P-256) as PEM files:\n"
    "  DIR/root.pem, DIR/root.key          the root CA; reused when both files exist (unless "
    "--force)\n"
    "  DIR/waypoint.pem, DIR/waypoint.key  spiffe://<trust-domain>/ns/<namespace>/sa/waypoint\n"
    "  DIR/NAME.pem, DIR/NAME.key          spiffe://<trust-domain>/ns/NS/sa/SA, per --identity\n"
    "Keys are written with mode 0600. One line is printed per file written.\n"
    "\n"
    "options:\n"
    "  --out DIR              output directory, created if missing (required)\n"
    "  --trust-domain TD      SPIFFE trust domain (default cluster.local)\n"
    "  --namespace NS         namespace of the waypoint identity (default default)\n"
    "  --identity NAME=NS/SA  an extra identity; repeatable\n"
    "  --days N               leaf validity in days (default 365); a new root CA gets\n"
    "                         max(N, 3650) days\n"
    "  --force                generate a new root CA even if DIR/root.pem and root.key exist\n"
    "  -h, --help             print this text\n"
    "\n"
    "exit status: 0 ok, 1 failure, 2 bad arguments\n";

constexpr int kRootMinDays = 3650;

struct IdentityArg {
  std::string name;
  std::string ns;
  std::string sa;
};

struct CliOptions {
  std::string out_dir;
  std::string trust_domain = "cluster.local";
  std::string ns = "default";
  std::vector<IdentityArg> identities;
  int days = 365;
  bool force = false;
  bool help = false;
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

bool is_segment_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

// A SPIFFE path segment (also used for file base names): [A-Za-z0-9._-]+, not "." or "..".
bool is_valid_segment(std::string_view s) {
  return !s.empty() && s != "." && s != ".." && std::all_of(s.begin(), s.end(), is_segment_char);
}

// SPIFFE trust domain: lowercase letters, digits, '.', '-', '_'.
bool is_valid_trust_domain(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
  });
}

IdentityArg parse_identity(std::string_view text) {
  auto eq = text.find('=');
  auto slash = text.find('/', eq == std::string_view::npos ? 0 : eq);
  if (eq == std::string_view::npos || slash == std::string_view::npos) {
    throw UsageError("--identity wants NAME=NS/SA, got '" + std::string(text) + "'");
  }
  IdentityArg id{std::string(text.substr(0, eq)), std::string(text.substr(eq + 1, slash - eq - 1)),
                 std::string(text.substr(slash + 1))};
  if (!is_valid_segment(id.name)) {
    throw UsageError("--identity NAME must be [A-Za-z0-9._-]+, got '" + id.name + "'");
  }
  if (!is_valid_segment(id.ns) || !is_valid_segment(id.sa)) {
    throw UsageError("--identity NS and SA must be [A-Za-z0-9._-]+, got '" + std::string(text) + "'");
  }
  if (id.name == "root" || id.name == "waypoint") {
    throw UsageError("--identity NAME '" + id.name + "' is reserved");
  }
  return id;
}

int parse_days(std::string_view text) {
  int days = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), days);
  if (ec != std::errc() || end != text.data() + text.size() || days <= 0 || days > kMaxDays) {
    throw UsageError("--days wants an integer 1.." + std::to_string(kMaxDays) + ", got '" + std::string(text) + "'");
  }
  return days;
}

CliOptions parse_args(int argc, char** argv) {
  CliOptions opts;
  std::set<std::string> names;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i] != nullptr ? argv[i] : "";
    if (arg == "-h" || arg == "--help") {
      opts.help = true;
      return opts;
    }
    if (arg == "--force") {
      opts.force = true;
      continue;
    }
    // "--flag VALUE" or "--flag=VALUE".
    std::string_view flag = arg;
    std::string_view value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    bool known = flag == "--out" || flag == "--trust-domain" || flag == "--namespace" || flag == "--identity" ||
                 flag == "--days";
    if (!known) {
      throw UsageError("unknown argument '" + std::string(arg) + "'");
    }
    if (!has_value) {
      if (i + 1 >= argc || argv[i + 1] == nullptr) {
        throw UsageError(std::string(flag) + " needs a value");
      }
      value = argv[++i];
    }
    if (flag == "--out") {
      if (value.empty()) {
        throw UsageError("--out must not be empty");
      }
      opts.out_dir = std::string(value);
    } else if (flag == "--trust-domain") {
      if (!is_valid_trust_domain(value)) {
        throw UsageError("--trust-domain must be [a-z0-9._-]+, got '" + std::string(value) + "'");
      }
      opts.trust_domain = std::string(value);
    } else if (flag == "--namespace") {
      if (!is_valid_segment(value)) {
        throw UsageError("--namespace must be [A-Za-z0-9._-]+, got '" + std::string(value) + "'");
      }
      opts.ns = std::string(value);
    } else if (flag == "--identity") {
      IdentityArg id = parse_identity(value);
      if (!names.insert(id.name).second) {
        throw UsageError("--identity NAME '" + id.name + "' given twice");
      }
      opts.identities.push_back(std::move(id));
    } else {
      opts.days = parse_days(value);
    }
  }
  if (opts.out_dir.empty()) {
    throw UsageError("--out DIR is required");
  }
  return opts;
}

// Loads DIR/root.{pem,key} if both exist (and not --force), else makes and writes a new CA.
KeyCert load_or_create_ca(const CliOptions& opts, std::ostream& out, std::ostream& err) {
  std::string cert_path = join_path(opts.out_dir, "root.pem");
  std::string key_path = join_path(opts.out_dir, "root.key");
  bool have_cert = std::filesystem::exists(cert_path);
  bool have_key = std::filesystem::exists(key_path);
  if (!opts.force && (have_cert || have_key)) {
    if (!(have_cert && have_key)) {
      throw std::runtime_error("found only one of " + cert_path + " and " + key_path + "; remove it or pass --force");
    }
    KeyCert ca{read_file(key_path), read_file(cert_path)};
    X509Ptr cert = cert_from_pem(ca.cert_pem);
    PkeyPtr key = key_from_pem(ca.key_pem);
    check(X509_check_private_key(cert.get(), key.get()) == 1, "existing root.key does not match root.pem");
    err << "reusing the CA in " << cert_path << "\n";
    return ca;
  }
  KeyCert ca = make_root_ca("waypoint test root CA", std::max(opts.days, kRootMinDays));
  write_identity(opts.out_dir, "root", ca);
  out << "wrote " << cert_path << " (root CA)\n";
  out << "wrote " << key_path << "\n";
  return ca;
}

void write_leaf(const CliOptions& opts, const KeyCert& ca, const std::string& name, const std::string& id,
                std::ostream& out) {
  KeyCert leaf = make_leaf(ca, id, opts.days);
  write_identity(opts.out_dir, name, leaf);
  out << "wrote " << join_path(opts.out_dir, name + ".pem") << " (" << id << ")\n";
  out << "wrote " << join_path(opts.out_dir, name + ".key") << "\n";
}

}  // namespace

KeyCert make_root_ca(const std::string& common_name, int days) {
  check_days(days);
  PkeyPtr key = generate_p256_key();
  X509Ptr cert = new_v3_cert(key.get());
  set_validity(cert.get(), -kBackdateSeconds, static_cast<long>(days) * kSecondsPerDay);

  X509_NAME* name = X509_get_subject_name(cert.get());
  add_name_entry(name, "O", "waypoint-test");
  add_name_entry(name, "CN", common_name);
  check(X509_set_issuer_name(cert.get(), name) == 1, "setting the issuer name");

  add_conf_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_conf_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_conf_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  sign(cert.get(), key.get());
  return KeyCert{key_to_pem(key.get()), cert_to_pem(cert.get())};
}

KeyCert make_leaf(const KeyCert& ca, const std::string& spiffe_id, int days, const LeafOptions& options) {
  check_days(days);
  X509Ptr ca_cert = cert_from_pem(ca.cert_pem);
  PkeyPtr ca_key = key_from_pem(ca.key_pem);
  check(X509_check_private_key(ca_cert.get(), ca_key.get()) == 1, "the CA key does not match the CA certificate");

  PkeyPtr key = generate_p256_key();
  X509Ptr cert = new_v3_cert(key.get());
  if (options.expired) {
    set_validity(cert.get(), -(static_cast<long>(days) + 1) * kSecondsPerDay, -kSecondsPerDay);
  } else {
    set_validity(cert.get(), -kBackdateSeconds, static_cast<long>(days) * kSecondsPerDay);
  }

  add_name_entry(X509_get_subject_name(cert.get()), "O", "waypoint-test");
  check(X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) == 1, "setting the issuer name");

  add_conf_extension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_conf_extension(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_conf_extension(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  add_conf_extension(cert.get(), ca_cert.get(), NID_subject_key_identifier, "hash");
  add_conf_extension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");

  std::vector<std::string> uris;
  if (!spiffe_id.empty()) {
    uris.push_back(spiffe_id);
  }
  uris.insert(uris.end(), options.extra_uris.begin(), options.extra_uris.end());
  add_subject_alt_names(cert.get(), uris, options.dns_names, options.ip_addresses);

  sign(cert.get(), ca_key.get());
  return KeyCert{key_to_pem(key.get()), cert_to_pem(cert.get())};
}

std::string spiffe_id(const std::string& trust_domain, const std::string& ns, const std::string& sa) {
  return "spiffe://" + trust_domain + "/ns/" + ns + "/sa/" + sa;
}

void write_file(const std::string& path, const std::string& data) {
  write_file_with_mode(path, data, 0644);
}

void write_identity(const std::string& dir, const std::string& basename, const KeyCert& identity) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw std::runtime_error("certgen: cannot create " + dir + ": " + ec.message());
  }
  write_file_with_mode(join_path(dir, basename + ".pem"), identity.cert_pem, 0644);
  write_file_with_mode(join_path(dir, basename + ".key"), identity.key_pem, 0600);
}

int certgen_main(int argc, char** argv) {
  return certgen_main(argc, argv, std::cout, std::cerr);
}

int certgen_main(int argc, char** argv, std::ostream& out, std::ostream& err) {
  CliOptions opts;
  try {
    opts = parse_args(argc, argv);
  } catch (const UsageError& e) {
    err << "wp-certgen: " << e.what() << "\n(see wp-certgen --help)\n";
    return 2;
  }
  if (opts.help) {
    out << kUsage;
    return 0;
  }
  try {
    std::error_code ec;
    std::filesystem::create_directories(opts.out_dir, ec);
    if (ec) {
      throw std::runtime_error("cannot create " + opts.out_dir + ": " + ec.message());
    }
    KeyCert ca = load_or_create_ca(opts, out, err);
    write_leaf(opts, ca, "waypoint", spiffe_id(opts.trust_domain, opts.ns, "waypoint"), out);
    for (const auto& id : opts.identities) {
      write_leaf(opts, ca, id.name, spiffe_id(opts.trust_domain, id.ns, id.sa), out);
    }
  } catch (const std::exception& e) {
    err << "wp-certgen: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace wp::testing
