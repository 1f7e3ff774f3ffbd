// Fuzzes the HBONE server session: arbitrary bytes after the TLS handshake, through nghttp2 and our
// CONNECT handling, tunnels, flow control and deferred deletion. Valid CONNECTs are accepted and
// echoed; an authority ending in :503 is refused — both paths get exercised.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "support/memory_transport.h"
#include "waypoint/hbone/server.h"

namespace {

using namespace wp;

struct Echo final : hbone::TunnelHandler {
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override { t.write(data); }
  void on_tunnel_eof(hbone::Tunnel& t) override { t.write_eof(); }
  void on_tunnel_drained(hbone::Tunnel& t, size_t n) override { t.consume(n); }
  void on_tunnel_closed(hbone::Tunnel&, bool) override {}
};

struct Harness final : hbone::H2Connection::Owner, hbone::ConnectHandler {
  Echo echo;
  bool closed = false;
  void on_connection_closed(hbone::H2Connection&) override { closed = true; }
  void on_connect_request(const hbone::InboundConnect& r) override {
    if (r.destination.port() == 503) {
      r.stream.respond(503);
      return;
    }
    r.stream.respond(200);
    r.stream.set_handler(&echo);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static event::Loop* loop = new event::Loop();  // one loop for the process, like a worker
  stats::Block stats;
  Harness harness;
  hbone::H2Settings settings;
  settings.keepalive_interval = std::chrono::milliseconds(0);
  auto transport = std::make_unique<testing::MemoryTransport>();
  auto* t = transport.get();
  auto conn = std::make_unique<hbone::HboneServerConnection>(*loop, std::move(transport),
                                                             *net::SockAddr::parse("127.0.0.1:40000"), settings,
                                                             harness, stats, harness);
  conn->start();
  // Feed in pieces whose sizes come from the input itself, to vary frame splits.
  size_t i = 0;
  while (i < size && !harness.closed) {
    size_t n = 1 + (data[i] % 64);
    n = std::min(n, size - i);
    t->push(data + i, n);
    i += n;
    uv_run(loop->uv(), UV_RUN_NOWAIT);  // end-of-iteration sends and deferred deletions
  }
  conn->close();
  loop->defer_delete(std::move(conn));
  uv_run(loop->uv(), UV_RUN_NOWAIT);
  return 0;
}
