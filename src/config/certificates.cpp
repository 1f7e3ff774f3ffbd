// The bootstrap's certificate files: readable, PEM, and a private key that matches the leaf.
// tls/ builds its SSL_CTX from the same files later; checking here makes a bad file a config error.
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstring>
#include <memory>

#include "config/files.h"
#include "config/resources.h"

namespace wp::config {

namespace {

struct Free {
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using X509Ptr = std::unique_ptr<X509, Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Free>;

// Never prompts: an encrypted key is simply unreadable here.
int no_password(char*, int, int, void*) {
  return 0;
}

std::unique_ptr<BIO, Free> memory_bio(const std::string& bytes) {
  return std::unique_ptr<BIO, Free>(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

// Every certificate in a PEM bundle; empty when there is none or the bundle is damaged.
std::vector<X509Ptr> read_certificates(const std::string& pem) {
  std::vector<X509Ptr> certs;
  auto bio = memory_bio(pem);
  ERR_clear_error();
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, no_password, nullptr)) {
    certs.emplace_back(cert);
  }
  // Reading ends with "no start line" after the last block; anything else is a damaged block.
  unsigned long error = ERR_peek_last_error();
  if (error != 0 && ERR_GET_REASON(error) != PEM_R_NO_START_LINE) {
    certs.clear();
  }
  ERR_clear_error();
  return certs;
}

KeyPtr read_private_key(const std::string& pem) {
  auto bio = memory_bio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, nullptr));
  ERR_clear_error();
  return key;
}

}  // namespace

void check_certificates(const BootstrapResource& bootstrap, Diagnostics& diag) {
  Reader r(diag, "WaypointBootstrap " + bootstrap.bootstrap.name);
  const TlsFiles& files = bootstrap.bootstrap.tls;
  // Reads one file; reports and returns false when it cannot be read.
  auto read = [&](const BootstrapResource::TlsFile& file, const std::string& resolved, const char* path,
                  const char* what, std::string& out) {
    if (file.written.empty()) {
      return false;  // already reported as required
    }
    if (int error = read_file(resolved, out); error != 0) {
      r.error(file.at, path, std::string("cannot read ") + what + " " + file.written + ": " + std::strerror(error));
      return false;
    }
    return true;
  };

  std::string chain_pem;
  std::vector<X509Ptr> chain;
  if (read(bootstrap.cert_chain, files.cert_chain, "spec.tls.certChain", "certificate", chain_pem)) {
    chain = read_certificates(chain_pem);
    if (chain.empty()) {
      r.error(bootstrap.cert_chain.at, "spec.tls.certChain",
              bootstrap.cert_chain.written + " holds no valid PEM certificate");
    }
  }

  std::string key_pem;
  if (read(bootstrap.private_key, files.private_key, "spec.tls.privateKey", "private key", key_pem)) {
    KeyPtr key = read_private_key(key_pem);
    if (!key) {
      r.error(bootstrap.private_key.at, "spec.tls.privateKey",
              bootstrap.private_key.written + " holds no valid unencrypted PEM private key");
    } else if (!chain.empty() && X509_check_private_key(chain.front().get(), key.get()) != 1) {
      ERR_clear_error();
      r.error(bootstrap.private_key.at, "spec.tls.privateKey",
              bootstrap.private_key.written + " does not match the certificate in " + bootstrap.cert_chain.written);
    }
  }

  std::string root_pem;
  if (read(bootstrap.root_cert, files.root_cert, "spec.tls.rootCert", "root certificate", root_pem) &&
      read_certificates(root_pem).empty()) {
    r.error(bootstrap.root_cert.at, "spec.tls.rootCert",
            bootstrap.root_cert.written + " holds no valid PEM certificate");
  }
}

}  // namespace wp::config
