// The Kubernetes API client: one blocking TLS connection, requests written whole, responses parsed
// by llhttp as the bytes arrive. Every wait is a bounded poll() so the stop flag and the timeouts
// are looked at often; nothing here blocks longer than kPollSlice except name resolution.
#include "waypoint/kube/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace wp::kube {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kPollSlice{100};

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? "no OpenSSL error" : out;
}

std::string seconds_text(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// A request target or header value may not carry CR, LF or other control characters (nor, for the
// target, spaces): they would end the line early and let text become headers.
bool clean_header_text(std::string_view s, bool allow_space) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || (!allow_space && c == ' ')) {
      return false;
    }
  }
  return true;
}

// SIGPIPE blocked on this thread while it writes to sockets (OpenSSL writes with write(2), which
// raises SIGPIPE on a reset connection); a SIGPIPE raised meanwhile is consumed before unblocking.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1 && sigismember(&old_, SIGPIPE) == 0) {
      struct timespec zero {};
      while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
};

enum class Wait { Ready, Stopped, Timeout, Error };

// Waits for `events` on fd until `deadline`, in slices of kPollSlice, looking at `stop` between.
Wait wait_fd(int fd, short events, Clock::time_point deadline, const std::atomic<bool>& stop) {
  while (true) {
    if (stop.load(std::memory_order_relaxed)) {
      return Wait::Stopped;
    }
    auto now = Clock::now();
    if (now >= deadline) {
      return Wait::Timeout;
    }
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    int timeout = static_cast<int>(std::min(left, kPollSlice).count());
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, timeout);
    if (r > 0) {
      return Wait::Ready;  // POLLERR/POLLHUP too: the next read or write tells what happened
    }
    if (r < 0 && errno != EINTR) {
      return Wait::Error;
    }
  }
}

}  // namespace

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::Complete:
      return "complete";
    case Outcome::Stopped:
      return "stopped";
    case Outcome::ConnectFailed:
      return "connect failed";
    case Outcome::TlsFailed:
      return "TLS failed";
    case Outcome::Closed:
      return "connection closed";
    case Outcome::IdleTimeout:
      return "idle timeout";
    case Outcome::TooLarge:
      return "too large";
    case Outcome::BadResponse:
      return "bad response";
    case Outcome::Aborted:
      return "aborted";
    case Outcome::Unusable:
      return "unusable access";
  }
  return "?";
}

const std::string* Response::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) {
      return &value;
    }
  }
  return nullptr;
}

// ---- the connection ------------------------------------------------------------------------------

struct Client::Connection {
  int fd = -1;
  SSL* ssl = nullptr;
  uint64_t responses = 0;  // complete responses read on it
  bool reusable = false;   // the last response ended cleanly and the server keeps the connection
  bool tls_up = false;     // handshake done and no fatal TLS error since (close_notify may be sent)

  ~Connection() {
    if (ssl != nullptr) {
      if (tls_up) {
        SigpipeGuard guard;
        SSL_shutdown(ssl);  // one non-blocking attempt at close_notify
      }
      SSL_free(ssl);
    }
    if (fd >= 0) {
      ::close(fd);
    }
  }

  enum class Io { Data, Eof, Stopped, Timeout, Error };

  // Reads up to `cap` plaintext bytes into buf (n), waiting until `deadline`.
  Io read(char* buf, size_t cap, size_t& n, Clock::time_point deadline, const std::atomic<bool>& stop,
          std::string& error) {
    while (true) {
      if (stop.load(std::memory_order_relaxed)) {
        return Io::Stopped;
      }
      ERR_clear_error();
      int r = SSL_read(ssl, buf, static_cast<int>(std::min(cap, size_t{1} << 30)));
      if (r > 0) {
        n = static_cast<size_t>(r);
        return Io::Data;
      }
      int e = SSL_get_error(ssl, r);
      short events = 0;
      if (e == SSL_ERROR_WANT_READ) {
        events = POLLIN;
      } else if (e == SSL_ERROR_WANT_WRITE) {
        events = POLLOUT;
      } else if (e == SSL_ERROR_ZERO_RETURN) {
        return Io::Eof;  // close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a bare TCP close
      } else if (e == SSL_ERROR_SYSCALL) {
        error = errno != 0 ? std::strerror(errno) : "unexpected end of stream";
        tls_up = false;
        return Io::Error;
      } else {
        error = openssl_errors();
        tls_up = false;
        return Io::Error;
      }
      switch (wait_fd(fd, events, deadline, stop)) {
        case Wait::Ready:
          break;
        case Wait::Stopped:
          return Io::Stopped;
        case Wait::Timeout:
          return Io::Timeout;
        case Wait::Error:
          error = std::string("poll: ") + std::strerror(errno);
          return Io::Error;
      }
    }
  }

  Io write(std::string_view data, Clock::time_point deadline, const std::atomic<bool>& stop, std::string& error) {
    while (!data.empty()) {
      if (stop.load(std::memory_order_relaxed)) {
        return Io::Stopped;
      }
      ERR_clear_error();
      int r = SSL_write(ssl, data.data(), static_cast<int>(std::min(data.size(), size_t{1} << 30)));
      if (r > 0) {
        data.remove_prefix(static_cast<size_t>(r));
        continue;
      }
      int e = SSL_get_error(ssl, r);
      short events = 0;
      if (e == SSL_ERROR_WANT_READ) {
        events = POLLIN;
      } else if (e == SSL_ERROR_WANT_WRITE) {
        events = POLLOUT;
      } else {
        error = e == SSL_ERROR_SYSCALL && errno != 0 ? std::strerror(errno) : openssl_errors();
        tls_up = false;
        return Io::Error;
      }
      switch (wait_fd(fd, events, deadline, stop)) {
        case Wait::Ready:
          break;
        case Wait::Stopped:
          return Io::Stopped;
        case Wait::Timeout:
          return Io::Timeout;
        case Wait::Error:
          error = std::string("poll: ") + std::strerror(errno);
          return Io::Error;
      }
    }
    return Io::Data;
  }
};

// ---- one response being parsed ---------------------------------------------------------------------

struct Client::Exchange {
  Exchange(Response& r, const ClientOptions& o, const std::function<bool(std::string_view)>* lines, ClientStats& s)
      : response(r), options(o), on_line(lines), stats(s) {
    llhttp_settings_init(&settings);
    settings.on_status = [](llhttp_t* p, const char*, size_t len) { return self(p).count_head(len); };
    settings.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
      Exchange& x = self(p);
      if (x.in_value) {
        x.finish_header();
      }
      x.field.append(at, len);
      return x.count_head(len);
    };
    settings.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
      Exchange& x = self(p);
      x.in_value = true;
      x.value.append(at, len);
      return x.count_head(len);
    };
    settings.on_headers_complete = [](llhttp_t* p) { return self(p).headers_complete(); };
    settings.on_body = [](llhttp_t* p, const char* at, size_t len) { return self(p).body(at, len); };
    settings.on_message_complete = [](llhttp_t* p) { return self(p).message_complete(); };
    llhttp_init(&parser, HTTP_RESPONSE, &settings);
    parser.data = this;
  }

  static Exchange& self(llhttp_t* p) { return *static_cast<Exchange*>(p->data); }

  int fail(Outcome outcome, std::string error) {
    failed = outcome;
    failure = std::move(error);
    return HPE_USER;
  }

  int count_head(size_t len) {
    head_bytes += len;
    if (head_bytes > options.max_head_bytes) {
      ++stats.too_large;
      return fail(Outcome::TooLarge, "response head larger than " + std::to_string(options.max_head_bytes) + " bytes");
    }
    return 0;
  }

  void finish_header() {
    for (char& c : field) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    response.headers.emplace_back(std::move(field), std::move(value));
    field.clear();
    value.clear();
    in_value = false;
  }

  int headers_complete() {
    if (in_value || !field.empty()) {
      finish_header();
    }
    response.status = llhttp_get_status_code(&parser);
    if (const std::string* encoding = response.header("content-encoding");
        encoding != nullptr && !encoding->empty() && *encoding != "identity") {
      fail(Outcome::BadResponse, "Content-Encoding " + *encoding + " was not asked for");
      return -1;
    }
    streaming = on_line != nullptr && response.status == 200;
    return 0;
  }

  int deliver(std::string_view line) {
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    ++stats.lines;
    if (!(*on_line)(line)) {
      return fail(Outcome::Aborted, "stopped by the line handler");
    }
    return 0;
  }

  int line_too_large() {
    ++stats.too_large;
    return fail(Outcome::TooLarge, "a line longer than " + std::to_string(options.max_line_bytes) + " bytes");
  }

  int body(const char* at, size_t len) {
    std::string_view data(at, len);
    if (!streaming) {
      if (response.body.size() + data.size() > options.max_body_bytes) {
        ++stats.too_large;
        return fail(Outcome::TooLarge,
                    "response body larger than " + std::to_string(options.max_body_bytes) + " bytes");
      }
      response.body.append(data);
      return 0;
    }
    while (!data.empty()) {
      size_t nl = data.find('\n');
      if (nl == std::string_view::npos) {
        if (line.size() + data.size() > options.max_line_bytes) {
          return line_too_large();
        }
        line.append(data);
        return 0;
      }
      std::string_view piece = data.substr(0, nl);
      data.remove_prefix(nl + 1);
      if (line.size() + piece.size() > options.max_line_bytes) {
        return line_too_large();
      }
      int r = 0;
      if (line.empty()) {
        r = deliver(piece);  // the common case: a whole line inside one read, not copied
      } else {
        line.append(piece);
        r = deliver(line);
        line.clear();
      }
      if (r != 0) {
        return r;
      }
    }
    return 0;
  }

  int message_complete() {
    if (response.status >= 100 && response.status < 200) {
      // An interim response (100 Continue, 103 Early Hints): the real one follows.
      response.status = 0;
      response.headers.clear();
      head_bytes = 0;
      return 0;
    }
    if (streaming && !line.empty()) {
      std::string last = std::move(line);
      line.clear();
      if (int r = deliver(last); r != 0) {
        return r;
      }
    }
    complete = true;
    return HPE_PAUSED;  // anything after this response is not ours to parse
  }

  Response& response;
  const ClientOptions& options;
  const std::function<bool(std::string_view)>* on_line;
  ClientStats& stats;
  llhttp_t parser;
  llhttp_settings_t settings;
  std::string field, value;
  bool in_value = false;
  size_t head_bytes = 0;
  bool streaming = false;
  std::string line;  // a partial line carried between reads
  bool complete = false;
  Outcome failed = Outcome::Complete;
  std::string failure;
};

// ---- the client ------------------------------------------------------------------------------------

namespace {

// The TLS context for `access`: TLS 1.2+, its CA bundle (else the system's roots), its client
// certificate and key. nullptr with `error` set when one of them is unusable.
SSL_CTX* make_ssl_ctx(const Access& access, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    error = "SSL_CTX_new: " + openssl_errors();
    return nullptr;
  }
  auto give_up = [&](std::string why) -> SSL_CTX* {
    error = std::move(why);
    SSL_CTX_free(ctx);
    return nullptr;
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn);
  SSL_CTX_set_verify(ctx, access.insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
  if (!access.ca_pem.empty()) {
    BIO* bio = BIO_new_mem_buf(access.ca_pem.data(), static_cast<int>(access.ca_pem.size()));
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    int count = 0;
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, cert);
      X509_free(cert);
      ++count;
    }
    BIO_free(bio);
    ERR_clear_error();  // the PEM end-of-data "error"
    if (count == 0) {
      return give_up("the CA bundle (" + access.origin + ") holds no PEM certificate");
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return give_up("loading the system's CA certificates: " + openssl_errors());
  }
  if (!access.client_cert_pem.empty()) {
    BIO* bio = BIO_new_mem_buf(access.client_cert_pem.data(), static_cast<int>(access.client_cert_pem.size()));
    X509* leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    bool ok = leaf != nullptr && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    while (ok) {
      X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
      if (extra == nullptr) {
        break;
      }
      SSL_CTX_add0_chain_cert(ctx, extra);  // owned by ctx now
    }
    BIO_free(bio);
    if (!ok) {
      return give_up("the client certificate (" + access.origin + "): not a PEM certificate: " + openssl_errors());
    }
    ERR_clear_error();
    bio = BIO_new_mem_buf(access.client_key_pem.data(), static_cast<int>(access.client_key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (key == nullptr) {
      return give_up("the client key (" + access.origin + "): not a PEM private key: " + openssl_errors());
    }
    ok = SSL_CTX_use_PrivateKey(ctx, key) == 1;  // also checks it against the certificate
    EVP_PKEY_free(key);
    if (!ok || SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      return give_up("the client key (" + access.origin + ") does not match the client certificate");
    }
  }
  return ctx;
}

}  // namespace

Client::Client(Access access, const std::atomic<bool>& stop, ClientOptions options)
    : access_(std::move(access)), stop_(stop), options_(std::move(options)) {
  ssl_ctx_ = make_ssl_ctx(access_, ctx_error_);
}

Client::~Client() {
  conn_.reset();
  SSL_CTX_free(ssl_ctx_);
}

void Client::disconnect() {
  conn_.reset();
}

Result Client::connect() {
  if (ssl_ctx_ == nullptr) {
    return {Outcome::Unusable, ctx_error_};
  }
  const auto deadline = Clock::now() + options_.connect_timeout;
  const std::string where = access_.host + " port " + std::to_string(access_.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (is_ip_literal(access_.host) ? AI_NUMERICHOST : 0);
  addrinfo* list = nullptr;
  int gai = ::getaddrinfo(access_.host.c_str(), std::to_string(access_.port).c_str(), &hints, &list);
  if (gai != 0) {
    return {Outcome::ConnectFailed, "resolving " + access_.host + ": " + gai_strerror(gai)};
  }
  auto conn = std::make_unique<Connection>();
  std::string last_error = "no address";
  for (addrinfo* ai = list; ai != nullptr && conn->fd < 0; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      switch (wait_fd(fd, POLLOUT, deadline, stop_)) {
        case Wait::Ready: {
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          r = err == 0 ? 0 : -1;
          errno = err;
          break;
        }
        case Wait::Stopped:
          ::close(fd);
          ::freeaddrinfo(list);
          return {Outcome::Stopped, "stopped while connecting"};
        case Wait::Timeout:
          ::close(fd);
          ::freeaddrinfo(list);
          return {Outcome::ConnectFailed,
                  "connecting to " + where + ": timed out after " + seconds_text(options_.connect_timeout)};
        case Wait::Error:
          r = -1;
          break;
      }
    }
    if (r != 0) {
      last_error = std::strerror(errno);
      ::close(fd);
      continue;
    }
    conn->fd = fd;
  }
  ::freeaddrinfo(list);
  if (conn->fd < 0) {
    return {Outcome::ConnectFailed, "connecting to " + where + ": " + last_error};
  }
  int one = 1;
  ::setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ++stats_.connections;

  conn->ssl = SSL_new(ssl_ctx_);
  if (conn->ssl == nullptr || SSL_set_fd(conn->ssl, conn->fd) != 1) {
    return {Outcome::TlsFailed, "SSL_new: " + openssl_errors()};
  }
  const std::string& name = access_.tls_server_name.empty() ? access_.host : access_.tls_server_name;
  if (is_ip_literal(name)) {
    // No SNI for an address (RFC 6066); the certificate must carry it as an IP SAN.
    if (!access_.insecure_skip_verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(conn->ssl), name.c_str()) != 1) {
      return {Outcome::TlsFailed, "bad IP address " + name};
    }
  } else {
    SSL_set_tlsext_host_name(conn->ssl, name.c_str());
    if (!access_.insecure_skip_verify) {
      X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(conn->ssl), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (SSL_set1_host(conn->ssl, name.c_str()) != 1) {
        return {Outcome::TlsFailed, "bad host name " + name};
      }
    }
  }
  SSL_set_connect_state(conn->ssl);
  while (true) {
    ERR_clear_error();
    int r = SSL_do_handshake(conn->ssl);
    if (r == 1) {
      conn->tls_up = true;
      break;
    }
    int e = SSL_get_error(conn->ssl, r);
    short events = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (events == 0) {
      std::string why;
      long verify = SSL_get_verify_result(conn->ssl);
      if (verify != X509_V_OK) {
        why = std::string("certificate verification failed: ") + X509_verify_cert_error_string(verify);
      } else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        why = errno != 0 ? std::strerror(errno) : "connection closed during the handshake";
      } else {
        why = openssl_errors();
      }
      return {Outcome::TlsFailed, "TLS handshake with " + where + ": " + why};
    }
    switch (wait_fd(conn->fd, events, deadline, stop_)) {
      case Wait::Ready:
        break;
      case Wait::Stopped:
        return {Outcome::Stopped, "stopped during the TLS handshake"};
      case Wait::Timeout:
        return {Outcome::TlsFailed,
                "TLS handshake with " + where + ": timed out after " + seconds_text(options_.connect_timeout)};
      case Wait::Error:
        return {Outcome::TlsFailed, std::string("poll: ") + std::strerror(errno)};
    }
  }
  conn_ = std::move(conn);
  return {};
}

Result Client::get(const std::string& path_and_query, Response& response) {
  return exchange("GET", path_and_query, {}, {}, response, nullptr, options_.read_timeout);
}

Result Client::request(std::string_view method, const std::string& path_and_query, std::string_view body,
                       std::string_view content_type, Response& response) {
  return exchange(method, path_and_query, body, content_type, response, nullptr, options_.read_timeout);
}

Result Client::stream(const std::string& path_and_query, Response& response,
                      const std::function<bool(std::string_view)>& on_line, std::chrono::milliseconds idle_timeout) {
  return exchange("GET", path_and_query, {}, {}, response, &on_line, idle_timeout);
}

Result Client::exchange(std::string_view method, const std::string& path, std::string_view body,
                        std::string_view content_type, Response& response,
                        const std::function<bool(std::string_view)>* on_line, std::chrono::milliseconds idle_timeout) {
  ++stats_.requests;
  auto failed = [&](Result r) {
    if (r.outcome != Outcome::Stopped) {
      ++stats_.failures;
    }
    return r;
  };
  std::string target = access_.base_path + path;
  if (target.empty() || target.front() != '/' || !clean_header_text(target, false)) {
    return failed({Outcome::Unusable, "bad request path \"" + path + "\""});
  }
  std::string token = access_.bearer();
  if (!clean_header_text(token, false)) {
    return failed({Outcome::Unusable, "the bearer token (" + access_.origin + ") holds spaces or control characters"});
  }
  std::string authority = access_.host.find(':') != std::string::npos ? "[" + access_.host + "]" : access_.host;
  if (access_.port != 443) {
    authority += ":" + std::to_string(access_.port);
  }
  std::string req;
  req.reserve(256 + target.size() + token.size() + body.size());
  req.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ").append(authority);
  req.append("\r\nUser-Agent: ").append(options_.user_agent);
  req.append("\r\nAccept: application/json");
  if (!token.empty()) {
    req.append("\r\nAuthorization: Bearer ").append(token);
  }
  if (!body.empty() || method != "GET") {
    if (!content_type.empty()) {
      req.append("\r\nContent-Type: ").append(content_type);
    }
    req.append("\r\nContent-Length: ").append(std::to_string(body.size()));
  }
  req.append("\r\n\r\n").append(body);

  SigpipeGuard guard;
  for (int attempt_no = 0;; ++attempt_no) {
    if (stopping()) {
      conn_.reset();
      return {Outcome::Stopped, "stopped"};
    }
    if (conn_ && !conn_->reusable) {
      conn_.reset();
    }
    if (!conn_) {
      if (Result r = connect(); !r.complete()) {
        return failed(std::move(r));
      }
    } else {
      ++stats_.reused;
    }
    bool retry_on_fresh = false;
    Result r = attempt(req, response, on_line, idle_timeout, retry_on_fresh);
    if (r.complete()) {
      return r;
    }
    conn_.reset();
    // A kept-alive connection the server had closed before it saw the request: once more, fresh.
    // Only a GET: another method might have been carried out by a server that died answering.
    if (!retry_on_fresh || attempt_no > 0 || method != "GET") {
      return failed(std::move(r));
    }
  }
}

Result Client::attempt(const std::string& request, Response& response,
                       const std::function<bool(std::string_view)>* on_line, std::chrono::milliseconds idle_timeout,
                       bool& retry_on_fresh) {
  response = Response();
  Connection& c = *conn_;
  const bool reused = c.responses > 0;
  c.reusable = false;
  std::string error;
  switch (c.write(request, Clock::now() + options_.read_timeout, stop_, error)) {
    case Connection::Io::Data:
      break;
    case Connection::Io::Stopped:
      return {Outcome::Stopped, "stopped"};
    case Connection::Io::Timeout:
      return {Outcome::IdleTimeout, "sending the request: timed out"};
    default:
      retry_on_fresh = reused;
      return {Outcome::Closed, "sending the request: " + error};
  }

  Exchange x(response, options_, on_line, stats_);
  std::string buf(64 << 10, '\0');
  uint64_t received = 0;
  auto deadline = Clock::now() + idle_timeout;
  while (true) {
    size_t n = 0;
    Connection::Io io = c.read(buf.data(), buf.size(), n, deadline, stop_, error);
    if (io == Connection::Io::Stopped) {
      return {Outcome::Stopped, "stopped"};
    }
    if (io == Connection::Io::Timeout) {
      return {Outcome::IdleTimeout, "no data for " + seconds_text(idle_timeout)};
    }
    if (io == Connection::Io::Error || io == Connection::Io::Eof) {
      if (received == 0 && reused) {
        retry_on_fresh = true;
      }
      if (io == Connection::Io::Eof && received > 0) {
        llhttp_errno_t e = llhttp_finish(&x.parser);  // a body delimited by the end of the connection
        if (x.failed != Outcome::Complete) {
          return {x.failed, x.failure};
        }
        if (e == HPE_OK && x.complete) {
          ++c.responses;
          return {};
        }
      }
      std::string why = io == Connection::Io::Eof ? "closed by the server" : error;
      return {Outcome::Closed, why + " after " + std::to_string(received) + " bytes of the response"};
    }
    received += n;
    stats_.bytes_received += n;
    llhttp_errno_t e = llhttp_execute(&x.parser, buf.data(), n);
    if (x.failed != Outcome::Complete) {
      return {x.failed, x.failure};
    }
    if (e == HPE_PAUSED && x.complete) {
      ++c.responses;
      const char* end = llhttp_get_error_pos(&x.parser);
      c.reusable = llhttp_should_keep_alive(&x.parser) == 1 && end == buf.data() + n;
      return {};
    }
    if (e != HPE_OK) {
      return {Outcome::BadResponse,
              std::string("unparseable response: ") + llhttp_errno_name(e) + ": " + llhttp_get_error_reason(&x.parser)};
    }
    deadline = Clock::now() + idle_timeout;
  }
}

}  // namespace wp::kube
