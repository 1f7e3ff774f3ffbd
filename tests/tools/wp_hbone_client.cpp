// wp-hbone-client: opens HBONE tunnels (HTTP/2 CONNECT over mTLS) through a waypoint and reports.
//   wp-hbone-client --waypoint 127.0.0.1:15008 --server-id spiffe://cluster.local/ns/default/sa/waypoint
//                   --cert client.pem --key client.key --root root.pem --to 127.0.10.5:7000
//                   [--send TEXT] [--bytes N] [--tunnels N] [--header 'name: value'] [--timeout-ms N]
// Each tunnel sends TEXT (or N pattern bytes), half-closes, and prints what came back.
// Exit status: 0 when every tunnel was established and closed cleanly, 1 otherwise.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "support/hbone_client.h"

int main(int argc, char** argv) {
  wp::testing::ClientOptions o;
  std::string waypoint, to, text;
  uint64_t bytes = 0;
  int tunnels = 1;
  int timeout_ms = 10000;
  wp::hbone::H2Stream::HeaderList headers;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "wp-hbone-client: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--waypoint") {
      waypoint = next();
    } else if (a == "--server-id") {
      o.expected_identity = next();
    } else if (a == "--cert") {
      o.cert = next();
    } else if (a == "--key") {
      o.key = next();
    } else if (a == "--root") {
      o.root = next();
    } else if (a == "--to") {
      to = next();
    } else if (a == "--send") {
      text = next();
    } else if (a == "--bytes") {
      bytes = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--tunnels") {
      tunnels = std::atoi(next().c_str());
    } else if (a == "--timeout-ms") {
      timeout_ms = std::atoi(next().c_str());
    } else if (a == "--header") {
      std::string h = next();
      auto colon = h.find(':');
      if (colon == std::string::npos) {
        std::fprintf(stderr, "wp-hbone-client: --header wants 'name: value'\n");
        return 2;
      }
      std::string v = h.substr(colon + 1);
      v.erase(0, v.find_first_not_of(' '));
      headers.emplace_back(h.substr(0, colon), v);
    } else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: wp-hbone-client --waypoint IP:PORT --server-id SPIFFE --cert F --key F --root F --to IP:PORT\n"
          "                       [--send TEXT | --bytes N] [--tunnels N] [--header 'k: v'] [--timeout-ms N]\n");
      return 0;
    } else {
      std::fprintf(stderr, "wp-hbone-client: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  auto wa = wp::net::SockAddr::parse(waypoint);
  if (!wa || to.empty() || o.cert.empty() || o.key.empty() || o.root.empty() || o.expected_identity.empty()) {
    std::fprintf(stderr, "wp-hbone-client: --waypoint, --server-id, --cert, --key, --root and --to are required\n");
    return 2;
  }
  o.waypoint = *wa;
  std::signal(SIGPIPE, SIG_IGN);
  try {
    wp::testing::HboneTestClient client(o);
    std::vector<wp::testing::TestTunnel*> ts;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < tunnels; ++i) {
      auto& t = client.open(to, headers);
      if (bytes > 0) {
        t.discard_received = true;
        t.send_pattern(bytes, true);
      } else {
        t.send(text);
        t.send_eof();
      }
      ts.push_back(&t);
    }
    client.run_until(
        [&] {
          for (auto* t : ts) {
            if (!t->closed) {
              return false;
            }
          }
          return true;
        },
        std::chrono::milliseconds(timeout_ms));
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int ok = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
      auto* t = ts[i];
      bool good = t->established() && t->closed && t->clean;
      ok += good ? 1 : 0;
      if (bytes > 0) {
        std::printf("tunnel %zu: status %d, sent %llu B, received %llu B%s\n", i, t->status,
                    static_cast<unsigned long long>(t->sent_bytes), static_cast<unsigned long long>(t->received_bytes),
                    good ? "" : " (not clean)");
      } else {
        std::string shown = t->received;
        while (!shown.empty() && shown.back() == '\n') {
          shown.pop_back();
        }
        std::printf("tunnel %zu: status %d, received \"%s\"%s\n", i, t->status, shown.c_str(),
                    t->closed ? (t->clean || t->failed ? "" : " (reset)") : " (timed out)");
      }
    }
    if (bytes > 0) {
      double total = static_cast<double>(bytes) * tunnels * 2;  // out and back
      std::printf("%d/%d tunnels ok; %.1f MB through the waypoint in %.3f s (%.0f MB/s, both directions)\n", ok,
                  tunnels, total / 1e6, secs, total / 1e6 / secs);
    }
    return ok == tunnels ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wp-hbone-client: %s\n", e.what());
    return 1;
  }
}
