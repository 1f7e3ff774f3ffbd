#include "support/hbone_client.h"

#include "waypoint/tls/context.h"

namespace wp::testing {

void TestTunnel::send(const std::string& data) {
  if (stream_ == nullptr) {
    pending_ += data;
    return;
  }
  buffer::Buffer b;
  b.append(data.data(), data.size());
  stream_->write(b);
}

void TestTunnel::send(buffer::Buffer& data) {
  if (stream_ == nullptr) {
    size_t old = pending_.size();
    pending_.resize(old + data.length());
    data.copy_out(pending_.data() + old, data.length());
    data.clear();
    return;
  }
  stream_->write(data);
}

void TestTunnel::send_eof() {
  if (stream_ == nullptr) {
    pending_eof_ = true;
    return;
  }
  stream_->write_eof();
}

void TestTunnel::send_pattern(uint64_t total, bool then_eof) {
  pattern_total_ = total;
  pattern_queued_ = 0;
  pattern_eof_ = then_eof;
  pump_pattern();
}

void TestTunnel::pump_pattern() {
  if (stream_ == nullptr || pattern_queued_ >= pattern_total_) {
    return;
  }
  constexpr size_t kQueueLimit = 1 << 20;
  char chunk[16384];
  while (pattern_queued_ < pattern_total_ && stream_->write_pending() < kQueueLimit) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof(chunk), pattern_total_ - pattern_queued_));
    for (size_t i = 0; i < n; ++i) {
      chunk[i] = pattern_byte(pattern_queued_ + i);
    }
    buffer::Buffer b;
    b.append(chunk, n);
    stream_->write(b);
    pattern_queued_ += n;
  }
  if (pattern_queued_ >= pattern_total_ && pattern_eof_) {
    stream_->write_eof();
  }
}

void TestTunnel::set_reading(bool on) {
  reading = on;
  if (on && held_ > 0 && stream_ != nullptr) {
    stream_->consume(held_);
    held_ = 0;
  }
}

void TestTunnel::reset() {
  if (stream_ != nullptr) {
    stream_->reset();
  }
}

void TestTunnel::on_upstream_ready(hbone::Tunnel& tunnel) {
  status = 200;
  stream_ = &tunnel;
  tunnel.set_handler(this);
  if (!pending_.empty()) {
    std::string p;
    p.swap(pending_);
    send(p);
  }
  if (pending_eof_) {
    stream_->write_eof();
  }
  pump_pattern();
}

void TestTunnel::on_upstream_failed(hbone::UpstreamFailure, int s) {
  status = s;
  failed = true;
  closed = true;
}

void TestTunnel::on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) {
  size_t n = data.length();
  received_bytes += n;
  if (on_receive) {
    auto hook = on_receive;  // the hook may replace itself
    while (!data.empty()) {
      std::span<const uint8_t> f = data.front();
      hook(f.data(), f.size());
      data.drain(f.size());
    }
  } else if (!discard_received) {
    size_t old = received.size();
    received.resize(old + n);
    data.copy_out(received.data() + old, n);
  }
  data.clear();
  if (reading) {
    t.consume(n);
  } else {
    held_ += n;
  }
}

void TestTunnel::on_tunnel_eof(hbone::Tunnel&) {
  eof = true;
  if (on_far_eof) {
    auto hook = on_far_eof;
    hook();
  }
}

void TestTunnel::on_tunnel_drained(hbone::Tunnel&, size_t bytes) {
  sent_bytes += bytes;
  pump_pattern();
}

void TestTunnel::on_tunnel_closed(hbone::Tunnel&, bool c) {
  closed = true;
  clean = c;
  stream_ = nullptr;
}

HboneTestClient::HboneTestClient(const ClientOptions& options) : options_(options) {
  config::TlsFiles files{options.cert, options.key, options.root};
  auto ctx = tls::Context::make(tls::Context::Role::Client, files, options.trust_domain);
  hbone::PoolSettings ps;
  ps.max_streams_per_connection = options.max_streams_per_connection;
  ps.h2.keepalive_interval = std::chrono::milliseconds(0);
  pool_ = std::make_unique<hbone::Pool>(loop_, ctx, ps, stats_);
}

HboneTestClient::~HboneTestClient() {
  pool_->close_all();  // every tunnel hears on_tunnel_closed while it still exists
  tunnels_.clear();
  pool_.reset();
}

TestTunnel& HboneTestClient::open(const std::string& authority, hbone::H2Stream::HeaderList headers) {
  tunnels_.push_back(std::make_unique<TestTunnel>());
  TestTunnel& t = *tunnels_.back();
  hbone::UpstreamTarget target{options_.waypoint, options_.expected_identity, authority, std::move(headers)};
  t.request_ = pool_->open(std::move(target), t);
  return t;
}

bool HboneTestClient::run_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // A timer wakes the loop regularly so the deadline is honoured even when nothing happens.
  event::Timer tick(loop_, [] {});
  tick.start(std::chrono::milliseconds(5), std::chrono::milliseconds(5));
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return pred();
    }
    uv_run(loop_.uv(), UV_RUN_ONCE);
  }
  return true;
}

}  // namespace wp::testing
