#include "waypoint/admin/admin.h"

#include <llhttp.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace wp::admin {

namespace {
constexpr size_t kMaxRequestBytes = 16 * 1024;

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
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

// One admin connection: read one request, answer, close. Owns itself; freed in the close callback.
class AdminServer::Session {
 public:
  Session(AdminServer& server) : server_(server) {
    llhttp_settings_init(&settings_);
    settings_.on_url = [](llhttp_t* p, const char* at, size_t len) {
      static_cast<Session*>(p->data)->url_.append(at, len);
      return 0;
    };
    settings_.on_message_complete = [](llhttp_t* p) {
      static_cast<Session*>(p->data)->complete_ = true;
      return static_cast<int>(HPE_PAUSED);
    };
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = this;
    tcp_.data = this;
  }

  uv_tcp_t* handle() { return &tcp_; }

  void start() {
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&tcp_),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          thread_local char storage[4096];
          *buf = uv_buf_init(storage, sizeof(storage));
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) { static_cast<Session*>(s->data)->on_read(n, buf); });
  }

  void close() {
    if (closing_) {
      return;
    }
    closing_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), [](uv_handle_t* h) { delete static_cast<Session*>(h->data); });
  }

 private:
  void on_read(ssize_t n, const uv_buf_t* buf) {
    if (n < 0) {
      close();
      return;
    }
    received_ += static_cast<size_t>(n);
    if (received_ > kMaxRequestBytes) {
      respond({400, "text/plain", "request too large\n"});
      return;
    }
    llhttp_errno_t err = llhttp_execute(&parser_, buf->base, static_cast<size_t>(n));
    if (complete_) {
      uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
      Request request;
      request.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
      auto q = url_.find('?');
      request.path = url_.substr(0, q);
      request.query = q == std::string::npos ? "" : url_.substr(q + 1);
      // The session lives until the reply is sent: reading has stopped, so nothing else closes it.
      server_.handler_(request, [this](Response r) { respond(r); });
    } else if (err != HPE_OK) {
      respond({400, "text/plain", "bad request\n"});
    }
  }

  void respond(const Response& r) {
    if (responded_ || closing_) {
      return;
    }
    responded_ = true;
    out_ = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\nContent-Type: " + r.content_type +
           "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n\r\n" + r.body;
    uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
    write_.data = this;
    uv_write(&write_, reinterpret_cast<uv_stream_t*>(&tcp_), &b, 1,
             [](uv_write_t* w, int) { static_cast<Session*>(w->data)->close(); });
  }

  AdminServer& server_;
  uv_tcp_t tcp_{};
  uv_write_t write_{};
  llhttp_t parser_{};
  llhttp_settings_t settings_{};
  std::string url_;
  std::string out_;
  size_t received_ = 0;
  bool complete_ = false;
  bool closing_ = false;
  bool responded_ = false;
};

AdminServer::AdminServer(event::Loop& loop, Handler handler) : loop_(loop), handler_(std::move(handler)) {}

AdminServer::~AdminServer() {
  if (server_ != nullptr) {
    event::close_and_delete(server_);
  }
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
      auto* self = static_cast<AdminServer*>(s->data);
      auto* session = new Session(*self);
      uv_tcp_init(self->loop_.uv(), session->handle());
      session->handle()->data = session;
      if (uv_accept(s, reinterpret_cast<uv_stream_t*>(session->handle())) == 0) {
        session->start();
      } else {
        session->close();
      }
    });
  }
  if (rc != 0) {
    *error = "admin listener " + addr.to_string() + ": " + uv_strerror(rc);
    return false;
  }
  return true;
}

}  // namespace wp::admin
