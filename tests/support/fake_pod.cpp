#include "support/fake_pod.h"

#include <future>
#include <stdexcept>
#include <unordered_map>

#include "support/pod_http.h"
#include "waypoint/event/loop.h"
#include "waypoint/hbone/server.h"
#include "waypoint/net/socket.h"
#include "waypoint/stats/stats.h"
#include "waypoint/tls/context.h"

namespace wp::testing {

// One accepted tunnel at the pod.
class PodTunnel final : public hbone::TunnelHandler, public event::DeferredDeletable {
 public:
  PodTunnel(FakePod::Impl& impl, hbone::H2Stream& stream);
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override;
  void on_tunnel_eof(hbone::Tunnel& t) override;
  void on_tunnel_drained(hbone::Tunnel& t, size_t bytes) override;
  void on_tunnel_closed(hbone::Tunnel& t, bool clean) override;
  void resume();

  FakePod::Impl& impl;
  hbone::H2Stream* stream;
  buffer::Buffer held;  // received while not reading
  bool eof = false;
  std::unique_ptr<PodHttpSession> http;  // Http pods: serves the tunnel
};

// A CONNECT whose answer is held back (FakePodOptions::respond_delay_ms).
struct Delayed final : event::DeferredDeletable {
  Delayed(event::Loop& loop, std::function<void(Delayed*)> cb)
      : fire(std::move(cb)), timer(loop, [this] { fire(this); }) {}
  std::function<void(Delayed*)> fire;
  event::Timer timer;
};

class FakePod::Impl final : public hbone::H2Connection::Owner, public hbone::ConnectHandler {
 public:
  Impl(FakePod& pod, FakePodOptions opts) : pod_(pod), opts_(std::move(opts)), recorder_(pod, opts_.name) {
    config::TlsFiles files{opts_.cert, opts_.key, opts_.root};
    tls_ = tls::Context::make(tls::Context::Role::Server, files, opts_.trust_domain);
    std::string err;
    net::ListenOptions lo;
    int fd = net::listen_tcp(opts_.address, lo, &err);
    if (fd < 0) {
      throw std::runtime_error("fake pod: " + err);
    }
    settings_.keepalive_interval = std::chrono::milliseconds(0);
    acceptor_ = std::make_unique<net::Acceptor>(loop_, fd, [this](int cfd, const net::SockAddr& peer) {
      pod_.connections_++;
      auto c = std::make_unique<hbone::HboneServerConnection>(loop_, cfd, peer, tls_, settings_, *this, stats_, *this);
      auto* raw = c.get();
      conns_.emplace(raw, std::move(c));
      raw->start();
    });
    thread_ = std::thread([this] { loop_.run(); });
  }

  ~Impl() override {
    loop_.post([this] {
      acceptor_.reset();
      std::vector<hbone::H2Connection*> all;
      for (auto& [p, c] : conns_) {
        all.push_back(p);
      }
      for (auto* c : all) {
        c->close();
      }
      loop_.stop();
    });
    thread_.join();
    delayed_.clear();
    tunnels_.clear();
    conns_.clear();
  }

  void on_connection_closed(hbone::H2Connection& c) override {
    auto it = conns_.find(&c);
    if (it != conns_.end()) {
      loop_.defer_delete(std::move(it->second));
      conns_.erase(it);
    }
  }

  void on_connect_request(const hbone::InboundConnect& req) override {
    pod_.tunnels_++;
    {
      std::lock_guard<std::mutex> lock(pod_.mu_);
      pod_.authorities_.push_back(req.destination.to_string());
      const std::string* fwd = req.stream.header("forwarded");
      pod_.forwarded_.push_back(fwd != nullptr ? *fwd : "");
      pod_.identities_.push_back(req.peer_identity);
    }
    hbone::H2Stream* stream = &req.stream;
    if (opts_.respond_delay_ms > 0) {
      // The stream may die meanwhile: look it up again by id on the same connection.
      auto* conn = &stream->connection();
      int32_t id = stream->id();
      auto d = std::make_unique<Delayed>(loop_, [this, conn, id](Delayed* self) {
        if (conns_.count(conn) != 0) {
          if (auto* s = conn->stream_by_id(id)) {
            answer(*s);
          }
        }
        auto it = delayed_.find(self);
        loop_.defer_delete(std::move(it->second));
        delayed_.erase(it);
      });
      d->timer.start(std::chrono::milliseconds(opts_.respond_delay_ms));
      Delayed* raw = d.get();
      delayed_.emplace(raw, std::move(d));
      return;
    }
    answer(*stream);
  }

  void answer(hbone::H2Stream& stream) {
    if (behavior_.load() == PodBehavior::Refuse) {
      stream.respond(503);
      return;
    }
    stream.respond(200);
    pod_.active_tunnels_++;
    auto t = std::make_unique<PodTunnel>(*this, stream);
    auto* raw = t.get();
    tunnels_.emplace(raw, std::move(t));
    if (behavior_.load() == PodBehavior::Http) {
      raw->http = std::make_unique<PodHttpSession>(loop_, recorder_, stream);
    }
    stream.set_handler(raw);
    if (behavior_.load() == PodBehavior::Echo && !opts_.banner.empty()) {
      buffer::Buffer b;
      b.append(opts_.banner.data(), opts_.banner.size());
      stream.write(b);
    }
    if (behavior_.load() == PodBehavior::Greet) {
      buffer::Buffer b;
      b.append("hello\n", 6);
      stream.write(b);
      stream.write_eof();
    }
  }

  void tunnel_closed(PodTunnel& t) {
    pod_.active_tunnels_--;
    auto it = tunnels_.find(&t);
    if (it != tunnels_.end()) {
      loop_.defer_delete(std::move(it->second));
      tunnels_.erase(it);
    }
  }

  // Applied on the pod's loop; returns once it is in force, so no byte races the change.
  void set_reading(bool reading) {
    std::promise<void> applied;
    loop_.post([this, reading, &applied] {
      reading_ = reading;
      if (reading) {
        std::vector<PodTunnel*> all;
        for (auto& [p, t] : tunnels_) {
          all.push_back(p);
        }
        for (auto* t : all) {
          t->resume();
        }
      }
      applied.set_value();
    });
    applied.get_future().wait();
  }

  FakePod& pod_;
  FakePodOptions opts_;
  PodHttpRecorder recorder_;
  std::atomic<PodBehavior> behavior_{PodBehavior::Echo};
  bool reading_ = true;
  event::Loop loop_;
  tls::ContextPtr tls_;
  stats::Block stats_;
  hbone::H2Settings settings_;
  std::unique_ptr<net::Acceptor> acceptor_;
  std::unordered_map<hbone::H2Connection*, std::unique_ptr<hbone::HboneServerConnection>> conns_;
  std::unordered_map<PodTunnel*, std::unique_ptr<PodTunnel>> tunnels_;
  std::unordered_map<Delayed*, std::unique_ptr<Delayed>> delayed_;
  std::thread thread_;
};

PodTunnel::PodTunnel(FakePod::Impl& i, hbone::H2Stream& s) : impl(i), stream(&s) {}

void PodTunnel::on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) {
  impl.pod_.bytes_received_ += data.length();
  if (http) {
    http->on_data(data);
    return;
  }
  switch (impl.behavior_.load()) {
    case PodBehavior::Echo:
      if (!impl.reading_) {
        held.move_from(data);  // not consumed: the window closes behind it
        return;
      }
      stream->write(data);  // consumed once drained back out
      return;
    case PodBehavior::Reset:
      data.clear();
      stream->reset();
      return;
    default: {
      size_t n = data.length();
      data.clear();
      t.consume(n);
      return;
    }
  }
}

void PodTunnel::resume() {
  if (stream == nullptr || http) {
    return;
  }
  if (!held.empty()) {
    stream->write(held);
  }
  if (eof) {
    stream->write_eof();
  }
}

void PodTunnel::on_tunnel_eof(hbone::Tunnel&) {
  impl.pod_.eofs_received_++;
  eof = true;
  if (http) {
    http->on_eof();
    return;
  }
  if (impl.behavior_.load() == PodBehavior::Echo && impl.reading_) {
    stream->write_eof();
  }
}

void PodTunnel::on_tunnel_drained(hbone::Tunnel& t, size_t bytes) {
  if (http) {
    http->on_drained();
    return;
  }
  if (impl.behavior_.load() == PodBehavior::Echo) {
    t.consume(bytes);  // echoed bytes left: reopen the window for that many
  }
}

void PodTunnel::on_tunnel_closed(hbone::Tunnel&, bool) {
  stream = nullptr;
  if (http) {
    http->on_closed();
  }
  impl.tunnel_closed(*this);
}

FakePod::FakePod(FakePodOptions options) : name_(options.name) {
  PodBehavior b = options.behavior;
  impl_ = std::make_unique<Impl>(*this, std::move(options));
  impl_->behavior_ = b;
}

FakePod::~FakePod() {
  impl_.reset();
}

void FakePod::set_reading(bool reading) {
  impl_->set_reading(reading);
}
void FakePod::set_behavior(PodBehavior b) {
  impl_->behavior_ = b;
}

std::vector<std::string> FakePod::authorities() const {
  std::lock_guard<std::mutex> lock(mu_);
  return authorities_;
}
std::vector<std::string> FakePod::forwarded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return forwarded_;
}
std::vector<std::string> FakePod::peer_identities() const {
  std::lock_guard<std::mutex> lock(mu_);
  return identities_;
}

void FakePod::fail_next(int n, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_remaining_ = n;
  fail_status_ = status;
}

std::vector<RecordedRequest> FakePod::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

}  // namespace wp::testing
