// The HBONE server session over an in-memory transport: the same bytes a client sends, no socket.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "support/memory_transport.h"
#include "waypoint/hbone/server.h"

namespace {

using namespace wp;

std::string seed(const std::string& name) {
  auto dir = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "fuzz/corpus/hbone_server";
  std::ifstream in(dir / name, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The concatenated payload of the DATA frames for `stream` in server output (after no preface).
std::string data_payload(const std::string& out, uint32_t stream) {
  std::string payload;
  size_t i = 0;
  while (i + 9 <= out.size()) {
    auto b = [&](size_t k) { return static_cast<uint8_t>(out[i + k]); };
    size_t len = (size_t{b(0)} << 16) | (size_t{b(1)} << 8) | b(2);
    uint32_t id = ((uint32_t{b(5)} & 0x7f) << 24) | (uint32_t{b(6)} << 16) | (uint32_t{b(7)} << 8) | b(8);
    if (b(3) == 0 && id == stream) {
      payload += out.substr(i + 9, len);
    }
    i += 9 + len;
  }
  return payload;
}

struct Echo final : hbone::TunnelHandler {
  std::string seen;
  bool eof = false;
  void on_tunnel_data(hbone::Tunnel& t, buffer::Buffer& data) override {
    std::string s(data.length(), '\0');
    data.copy_out(s.data(), s.size());
    seen += s;
    t.write(data);
  }
  void on_tunnel_eof(hbone::Tunnel& t) override {
    eof = true;
    t.write_eof();
  }
  void on_tunnel_drained(hbone::Tunnel& t, size_t n) override { t.consume(n); }
  void on_tunnel_closed(hbone::Tunnel&, bool) override {}
};

struct Harness final : hbone::H2Connection::Owner, hbone::ConnectHandler {
  Echo echo;
  std::vector<std::string> destinations;
  std::vector<std::string> sources;
  void on_connection_closed(hbone::H2Connection&) override {}
  void on_connect_request(const hbone::InboundConnect& r) override {
    destinations.push_back(r.destination.to_string());
    sources.push_back(r.source_ip.to_string());
    r.stream.respond(200);
    r.stream.set_handler(&echo);
  }
};

struct Session {
  event::Loop loop;
  stats::Block stats;
  Harness harness;
  testing::MemoryTransport* transport = nullptr;
  std::unique_ptr<hbone::HboneServerConnection> conn;
  Session() {
    hbone::H2Settings settings;
    settings.keepalive_interval = std::chrono::milliseconds(0);
    auto t = std::make_unique<testing::MemoryTransport>();
    transport = t.get();
    conn = std::make_unique<hbone::HboneServerConnection>(loop, std::move(t), *net::SockAddr::parse("127.0.0.9:40000"),
                                                          settings, harness, stats, harness);
    conn->start();
  }
  ~Session() {
    conn->close();
    loop.defer_delete(std::move(conn));
    uv_run(loop.uv(), UV_RUN_NOWAIT);
  }
  void feed(const std::string& bytes, size_t piece) {
    for (size_t i = 0; i < bytes.size(); i += piece) {
      transport->push(reinterpret_cast<const uint8_t*>(bytes.data() + i), std::min(piece, bytes.size() - i));
      uv_run(loop.uv(), UV_RUN_NOWAIT);
    }
  }
};

}  // namespace

TEST_CASE("hbone: a CONNECT over an in-memory transport is answered and echoed, fed in any pieces", "[hbone]") {
  std::string bytes = seed("connect-echo");
  REQUIRE(!bytes.empty());
  for (size_t piece : {bytes.size(), size_t{1}, size_t{7}}) {
    INFO("piece " << piece);
    Session s;
    s.feed(bytes, piece);
    REQUIRE(s.harness.destinations.size() == 1);
    CHECK(s.harness.destinations[0] == "10.0.0.1:80");
    CHECK(s.harness.sources[0] == "1.2.3.4");  // from forwarded:, not the TCP peer
    CHECK(s.harness.echo.seen == "hello");
    CHECK(s.harness.echo.eof);
    const std::string& out = s.transport->output();
    INFO("server wrote " << out.size() << " bytes");
    CHECK(data_payload(out, 1) == "hello");  // the echo went back out as DATA on stream 1
    CHECK(s.stats.get(stats::Id::tunnels_total) == 1);
  }
}

TEST_CASE("hbone: a GET is answered 400 without reaching the listener", "[hbone]") {
  Session s;
  s.feed(seed("get-400"), 16);
  CHECK(s.harness.destinations.empty());
  CHECK(s.stats.get(stats::Id::tunnels_rejected_bad_request) == 1);
}

TEST_CASE("hbone: malformed authorities get 400, a bracketed IPv6 one is accepted", "[hbone]") {
  Session s;
  s.feed(seed("bad-authorities"), 5);  // example.com:80, [::1]:80, 10.0.0.1, 10.0.0.1:0, [::1:80
  CHECK(s.harness.destinations == std::vector<std::string>{"[::1]:80"});
  CHECK(s.stats.get(stats::Id::tunnels_rejected_bad_request) == 4);
}
