#include "waypoint/internal/tcp_proxy.h"

#include <spdlog/spdlog.h>

namespace wp::internal {

TcpProxy::TcpProxy(hbone::DownstreamTunnel& downstream, TunnelRecord record, config::SnapshotPtr snapshot,
                   stats::Block& stats, Telemetry& log, Done done)
    : downstream_stream_(&downstream),
      record_(std::move(record)),
      started_(std::chrono::steady_clock::now()),
      snapshot_(std::move(snapshot)),
      stats_(stats),
      log_(log),
      done_(std::move(done)) {
  down_.tunnel = &downstream;
  downstream.set_handler(&down_);
}

TcpProxy::~TcpProxy() {
  if (down_.tunnel != nullptr) {
    down_.tunnel->set_handler(nullptr);
  }
  if (up_.tunnel != nullptr) {
    up_.tunnel->set_handler(nullptr);
  }
}

void TcpProxy::start(hbone::TunnelOpener& opener, hbone::UpstreamTarget target) {
  request_ = opener.open(std::move(target), *this);
}

void TcpProxy::start_answered(hbone::TunnelOpener& opener, hbone::UpstreamTarget target, buffer::Buffer initial,
                              bool eof) {
  answered_ = true;
  down_.in_flight += initial.length();
  early_.move_from(initial);
  down_.eof = eof;
  start(opener, std::move(target));
}

void TcpProxy::on_upstream_ready(hbone::Tunnel& tunnel) {
  if (state_ != State::Connecting) {
    tunnel.reset();
    return;
  }
  state_ = State::Open;
  record_.response_code = 200;
  up_.tunnel = &tunnel;
  tunnel.set_handler(&up_);
  if (down_.tunnel == nullptr) {  // the client went away while we were connecting
    tunnel.reset();
    return;
  }
  if (!answered_) {
    downstream_stream_->respond(200);
  }
  if (!early_.empty()) {
    up_.tunnel->write(early_);
  }
  if (down_.eof) {
    up_.tunnel->write_eof();
  }
}

void TcpProxy::on_upstream_failed(hbone::UpstreamFailure failure, int status) {
  if (state_ != State::Connecting) {
    return;
  }
  spdlog::info("tcp: {}: upstream tunnel failed ({}, status {}): 503", record_.chain, hbone::to_string(failure),
               status);
  stats_.add(stats::Id::tunnels_rejected_upstream_failure);
  record_.response_code = 503;
  record_.response_flags = "UF";  // upstream connection failure (dial, TLS, refusal or connectTimeout)
  if (down_.tunnel != nullptr) {
    down_.tunnel->set_handler(nullptr);
    if (answered_) {
      downstream_stream_->reset();  // already answered 200 (sniffed): all that is left is a reset
    } else {
      downstream_stream_->respond(503);
    }
    down_.tunnel = nullptr;
  }
  state_ = State::Finished;
  maybe_finish();
}

void TcpProxy::Side::on_tunnel_data(hbone::Tunnel&, buffer::Buffer& data) {
  Side& dst = proxy.other(*this);
  in_flight += data.length();
  if (dst.tunnel != nullptr) {
    dst.tunnel->write(data);
  } else if (proxy.state_ == State::Connecting && downstream) {
    proxy.early_.move_from(data);
  } else {
    // The other side is gone: drop, and give the window back at once.
    size_t n = data.length();
    data.clear();
    in_flight -= n;
    tunnel->consume(n);
  }
}

void TcpProxy::Side::on_tunnel_eof(hbone::Tunnel&) {
  eof = true;
  Side& dst = proxy.other(*this);
  if (dst.tunnel != nullptr) {
    dst.tunnel->write_eof();
  }
}

// `bytes` written to this side's tunnel left for its peer: reopen the source side's window.
void TcpProxy::Side::on_tunnel_drained(hbone::Tunnel&, size_t bytes) {
  Side& src = proxy.other(*this);
  size_t n = std::min(bytes, src.in_flight);
  src.in_flight -= n;
  proxy.stats_.add(
      downstream ? stats::Id::tcp_bytes_upstream_to_downstream : stats::Id::tcp_bytes_downstream_to_upstream,
      static_cast<int64_t>(n));
  (downstream ? proxy.record_.bytes_sent : proxy.record_.bytes_received) += n;
  if (src.tunnel != nullptr) {
    src.tunnel->consume(n);
  }
}

void TcpProxy::Side::on_tunnel_closed(hbone::Tunnel&, bool clean) {
  tunnel = nullptr;
  Side& peer = proxy.other(*this);
  if (!clean) {
    proxy.stats_.add(stats::Id::tunnels_reset);
    if (std::string_view(proxy.record_.response_flags) == "-") {
      proxy.record_.response_flags = downstream ? "DC" : "UC";  // who terminated first
    }
    if (peer.tunnel != nullptr) {
      peer.tunnel->reset();
    }
    if (downstream && proxy.state_ == State::Connecting) {
      proxy.request_.reset();  // cancel the pending upstream tunnel
      proxy.state_ = State::Finished;
    }
  }
  proxy.maybe_finish();
}

void TcpProxy::abort() {
  if (down_.tunnel != nullptr) {
    down_.tunnel->reset();
  }
  if (up_.tunnel != nullptr) {
    up_.tunnel->reset();
  }
  request_.reset();
  state_ = State::Finished;
  maybe_finish();
}

void TcpProxy::maybe_finish() {
  if (down_.tunnel != nullptr || up_.tunnel != nullptr) {
    return;
  }
  if (state_ == State::Connecting) {
    return;  // still waiting for the upstream outcome
  }
  state_ = State::Finished;
  record_.duration = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_);
  log_.log(record_);
  if (done_) {
    auto done = std::move(done_);
    done_ = nullptr;
    done(*this);
  }
}

}  // namespace wp::internal
