#include "waypoint/admin/admin.h"

#include <llhttp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cctype>

namespace wp::admin {

namespace {

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}
}  // namespace

std::optional<std::string> Request::param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view item = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    auto eq = item.find('=');
    if (item.substr(0, eq) == name) {
      return std::string(eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1));
    }
  }
  return std::nullopt;
}

bool is_loopback_host(std::string_view host) {
  if (host.empty()) {
    return false;
  }
  std::string_view name = host;
  if (name.front() == '[') {
    auto close = name.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    name = name.substr(1, close - 1);
  } else if (auto colon = name.rfind(':'); colon != std::string_view::npos && name.find(':') == colon) {
    name = name.substr(0, colon);  // host:port (a bare IPv6 address has more than one colon)
  }
  if (name.size() == 9 || name.size() == 10) {
    std::string lower(name);
    for (char& c : lower) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (lower == "localhost" || lower == "localhost.") {
      return true;
    }
  }
  auto ip = net::IpAddr::parse(name);
  return ip && ip->is_loopback();
}

// One admin connection: read one request, answer, close. Owned by its server's set; freed in the
// close callback. The idle timer bounds how long it may take to send the request.
class AdminServer::Session {
 public:
  explicit Session(AdminServer& server) : server_(&server) {
    llhttp_settings_init(&settings_);
    settings_.on_url = [](llhttp_t* p, const char* at, size_t len) {
      static_cast<Session*>(p->data)->url_.append(at, len);
      return 0;
    };
    settings_.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
      auto* self = static_cast<Session*>(p->data);
      if (self->in_value_) {
        self->field_.clear();
        self->in_value_ = false;
      }
      self->field_.append(at, len);
      return 0;
    };
    settings_.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
      auto* self = static_cast<Session*>(p->data);
      if (!self->in_value_) {
        self->in_value_ = true;
        self->current_ = nullptr;
        if (iequal(self->field_, "host")) {
          self->host_.clear();
          self->current_ = &self->host_;
        } else if (iequal(self->field_, "origin")) {
          self->has_origin_ = true;
        }
      }
      if (self->current_ != nullptr) {
        self->current_->append(at, len);
      }
      return 0;
    };
    settings_.on_message_complete = [](llhttp_t* p) {
      static_cast<Session*>(p->data)->complete_ = true;
      return static_cast<int>(HPE_PAUSED);
    };
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = this;
    tcp_.data = this;
    timer_.data = this;
  }

  uv_tcp_t* handle() { return &tcp_; }

  void start() {
    uv_timer_init(tcp_.loop, &timer_);
    timer_started_ = true;
    uv_timer_start(
        &timer_,
        [](uv_timer_t* t) {
          auto* self = static_cast<Session*>(t->data);
          if (self->server_ != nullptr) {
            self->server_->stats_.add(stats::Id::admin_cx_idle_timeout);
          }
          self->close();
        },
        static_cast<uint64_t>(server_->limits_.idle_timeout.count()), 0);
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&tcp_),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          thread_local char storage[4096];
          *buf = uv_buf_init(storage, sizeof(storage));
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) { static_cast<Session*>(s->data)->on_read(n, buf); });
  }

  // The server is going away: the session closes and must not reach it any more.
  void detach() {
    server_ = nullptr;
    close();
  }

  void close() {
    if (closing_) {
      return;
    }
    closing_ = true;
    if (timer_started_) {
      uv_timer_stop(&timer_);
      uv_close(reinterpret_cast<uv_handle_t*>(&timer_), [](uv_handle_t* h) {
        static_cast<Session*>(h->data)->closed_one();
      });
      ++pending_closes_;
    }
    ++pending_closes_;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), [](uv_handle_t* h) { static_cast<Session*>(h->data)->closed_one(); });
  }

 private:
  static bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
      return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) {
        return false;
      }
    }
    return true;
  }

  void closed_one() {
    if (--pending_closes_ > 0) {
      return;
    }
    if (server_ != nullptr) {
      server_->sessions_.erase(this);
      server_->stats_.sub(stats::Id::admin_cx_active);
    }
    delete this;
  }

  void on_read(ssize_t n, const uv_buf_t* buf) {
    if (n < 0) {
      close();
      return;
    }
    received_ += static_cast<size_t>(n);
    if (server_ == nullptr || received_ > server_->limits_.max_request_bytes) {
      respond({400, "text/plain", "request too large\n"});
      return;
    }
    llhttp_errno_t err = llhttp_execute(&parser_, buf->base, static_cast<size_t>(n));
    if (complete_) {
      uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
      uv_timer_stop(&timer_);  // from here the session lives until the reply is sent
      Request request;
      request.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
      auto q = url_.find('?');
      request.path = url_.substr(0, q);
      request.query = q == std::string::npos ? "" : url_.substr(q + 1);
      request.host = host_;
      request.has_origin = has_origin_;
      bool changes = request.method != "GET" && request.method != "HEAD";
      if (changes && (request.has_origin || (server_->limits_.loopback_host_only && !host_.empty() &&
                                             !is_loopback_host(host_)))) {
        server_->stats_.add(stats::Id::admin_rq_forbidden);
        respond({403, "text/plain",
                 request.has_origin ? "forbidden: requests from a browser page (Origin) are not accepted\n"
                                    : "forbidden: Host must be a loopback address or localhost\n"});
        return;
      }
      // Reading has stopped and the timer too, so nothing else closes the session before the reply.
      server_->handler_(request, [this](Response r) { respond(std::move(r)); });
    } else if (err != HPE_OK) {
      respond({400, "text/plain", "bad request\n"});
    }
  }

  // The body is sent from the Response itself, after the head: a large one (/config_dump,
  // /endpoints of a big namespace: tens of MB) is not copied.
  void respond(Response r) {
    if (responded_ || closing_) {
      return;
    }
    responded_ = true;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
    if (timer_started_) {
      uv_timer_stop(&timer_);
    }
    out_ = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\nContent-Type: " + r.content_type +
           "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n\r\n";
    body_ = std::move(r.body);
    uv_buf_t b[2] = {uv_buf_init(out_.data(), static_cast<unsigned>(out_.size())),
                     uv_buf_init(body_.data(), static_cast<unsigned>(body_.size()))};
    write_.data = this;
    uv_write(&write_, reinterpret_cast<uv_stream_t*>(&tcp_), b, 2,
             [](uv_write_t* w, int) { static_cast<Session*>(w->data)->close(); });
  }

  AdminServer* server_;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_write_t write_{};
  llhttp_t parser_{};
  llhttp_settings_t settings_{};
  std::string url_;
  std::string field_;
  std::string host_;
  std::string* current_ = nullptr;  // the header value being collected
  std::string out_;                 // the response's head
  std::string body_;                // and its body
  size_t received_ = 0;
  int pending_closes_ = 0;
  bool in_value_ = false;
  bool has_origin_ = false;
  bool complete_ = false;
  bool closing_ = false;
  bool responded_ = false;
  bool timer_started_ = false;
};

AdminServer::AdminServer(event::Loop& loop, Handler handler, const ServerLimits& limits, stats::Block& stats)
    : loop_(loop), handler_(std::move(handler)), limits_(limits), stats_(stats) {}

AdminServer::~AdminServer() {
  auto sessions = std::move(sessions_);
  sessions_.clear();
  for (Session* s : sessions) {
    stats_.sub(stats::Id::admin_cx_active);
    s->detach();
  }
  if (server_ != nullptr) {
    event::close_and_delete(server_);
  }
}

void AdminServer::on_connection(uv_stream_t* s) {
  auto* session = new Session(*this);
  uv_tcp_init(loop_.uv(), session->handle());
  session->handle()->data = session;
  if (uv_accept(s, reinterpret_cast<uv_stream_t*>(session->handle())) != 0) {
    session->detach();
    return;
  }
  if (sessions_.size() >= limits_.max_connections) {
    // Over the cap: accepted only to be closed, so the backlog cannot hold descriptors for long.
    stats_.add(stats::Id::admin_cx_overflow);
    session->detach();
    return;
  }
  sessions_.insert(session);
  stats_.add(stats::Id::admin_cx_active);
  session->start();
}

bool AdminServer::listen(const net::SockAddr& addr, std::string* error) {
  server_ = new uv_tcp_t;
  uv_tcp_init(loop_.uv(), server_);
  server_->data = this;
  sockaddr_storage ss;
  addr.to_sockaddr(&ss);
  int rc = uv_tcp_bind(server_, reinterpret_cast<sockaddr*>(&ss), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(server_), 128, [](uv_stream_t* s, int status) {
      if (status < 0) {
        return;
      }
      static_cast<AdminServer*>(s->data)->on_connection(s);
    });
  }
  if (rc != 0) {
    *error = "admin listener " + addr.to_string() + ": " + uv_strerror(rc);
    return false;
  }
  return true;
}

}  // namespace wp::admin
