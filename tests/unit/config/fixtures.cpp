#include "fixtures.h"

#include <nlohmann/json.hpp>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace wp::config::testing {

namespace {

struct Free {
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string key_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, Free> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return bio_text(bio.get());
}

// A self-signed EC P-256 certificate for `key`, valid for an hour.
std::string self_signed_pem(EVP_PKEY* key) {
  std::unique_ptr<X509, Free> cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("waypoint"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_sign(cert.get(), key, EVP_sha256());
  std::unique_ptr<BIO, Free> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert.get());
  return bio_text(bio.get());
}

class FixtureDir {
 public:
  FixtureDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "wp-config-test-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    path_ = tmpl;
    std::filesystem::create_directory(path_ + "/certs");
    std::unique_ptr<EVP_PKEY, Free> key(EVP_EC_gen("P-256"));
    std::unique_ptr<EVP_PKEY, Free> other(EVP_EC_gen("P-256"));
    std::string cert = self_signed_pem(key.get());
    write_file(path_ + "/certs/waypoint.pem", cert);
    write_file(path_ + "/certs/root.pem", cert);
    write_file(path_ + "/certs/waypoint.key", key_pem(key.get()));
    write_file(path_ + "/certs/other.key", key_pem(other.get()));
  }
  ~FixtureDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

const std::string& fixture_dir() {
  static FixtureDir dir;
  return dir.path();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string base_config(const std::string& extra_spec, const std::string& gateway_annotations) {
  std::string spec;
  for (size_t start = 0; start < extra_spec.size();) {
    size_t end = extra_spec.find('\n', start);
    end = end == std::string::npos ? extra_spec.size() : end + 1;
    spec += "  " + extra_spec.substr(start, end - start);
    start = end;
  }
  if (!spec.empty() && spec.back() != '\n') {
    spec += '\n';
  }
  return "---\n"
         "apiVersion: waypoint.proxy/v1alpha1\n"
         "kind: WaypointBootstrap\n"
         "metadata: {name: waypoint, namespace: default}\n"
         "spec:\n"
         "  gateway: waypoint\n"
         "  tls: {certChain: certs/waypoint.pem, privateKey: certs/waypoint.key, rootCert: "
         "certs/root.pem}\n" +
         spec +
         "---\n"
         "apiVersion: gateway.networking.k8s.io/v1\n"
         "kind: Gateway\n"
         "metadata:\n"
         "  name: waypoint\n"
         "  namespace: default\n" +
         (gateway_annotations.empty() ? "" : "  annotations: {" + gateway_annotations + "}\n") +
         "spec:\n"
         "  gatewayClassName: istio-waypoint\n"
         "  listeners: [{name: mesh, port: 15008, protocol: HBONE}]\n";
}

SnapshotPtr load(const std::string& yaml) {
  return load_snapshot_from_string(yaml, fixture_dir() + "/cfg.yaml");
}

std::string errors(const std::string& yaml) {
  try {
    load(yaml);
    return "";
  } catch (const ConfigError& e) {
    std::string text = e.what();
    std::string prefix = fixture_dir() + "/";
    for (size_t at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at)) {
      text.erase(at, prefix.size());
    }
    return text;
  }
}

namespace {
nlohmann::json json_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) {
        out[kv.first.Scalar()] = json_of(kv.second);
      }
      return out;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) {
        out.push_back(json_of(item));
      }
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      if (node.Tag() != "!") {  // plain, not quoted
        if (text == "true" || text == "false") {
          return text == "true";
        }
        if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
          return std::stoll(text);
        }
      }
      return text;
    }
    default:
      return nullptr;
  }
}
}  // namespace

std::string to_json(const YAML::Node& node) { return json_of(node).dump(); }

}  // namespace wp::config::testing
