// wp-hbone-client: opens HBONE tunnels (HTTP/2 CONNECT over mTLS) through a waypoint and reports.
//   wp-hbone-client --waypoint 127.0.0.1:15008 --server-id spiffe://cluster.local/ns/default/sa/waypoint
//                   --cert client.pem --key client.key --root root.pem --to 127.0.10.5:7000
//                   [--send TEXT] [--bytes N] [--tunnels N] [--header 'name: value'] [--timeout-ms N]
//                   [--http METHOD [--path P] [-H 'name: value'] [--count N] [--show-header NAME] [--quiet]]
// TCP mode (default): each tunnel sends TEXT (or N pattern bytes), half-closes, and prints what came back.
// HTTP mode (--http): one tunnel, N HTTP/1.1 keep-alive requests in it (tests/support/http_client.h);
// prints each response's status (and the shown header), then counts per status and header value.
// Exit status: 0 when every tunnel was established and closed cleanly (HTTP: every request got a
// complete response, whatever its status), 1 otherwise.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "support/hbone_client.h"
#include "support/http_client.h"

namespace {

struct HttpMode {
  std::string method;  // empty: TCP mode
  std::string path = "/";
  wp::testing::Fields headers;
  int count = 1;
  std::string show_header;
  bool quiet = false;
};

// "200 x9, 503 x1" from counts per key.
template <typename K>
std::string tally(const std::map<K, int>& counts) {
  std::string out;
  for (const auto& [k, n] : counts) {
    if (!out.empty()) {
      out += ", ";
    }
    if constexpr (std::is_same_v<K, int>) {
      out += std::to_string(k);
    } else {
      out += k.empty() ? std::string("(none)") : k;
    }
    out += " x" + std::to_string(n);
  }
  return out.empty() ? "none" : out;
}

int run_http(wp::testing::HboneTestClient& client, const std::string& to,
             const wp::hbone::H2Stream::HeaderList& connect_headers, const HttpMode& m, int timeout_ms) {
  wp::testing::Fields headers = m.headers;
  bool has_host = false;
  for (const auto& [name, value] : headers) {
    has_host = has_host || wp::http::iequals(name, "host");
  }
  if (!has_host) {
    headers.emplace_back("host", to);
  }
  wp::testing::TestTunnel& t = client.open(to, connect_headers);
  wp::testing::Http1Conn conn(client, t);
  wp::testing::RequestOptions opts;
  opts.timeout = std::chrono::milliseconds(timeout_ms);
  std::map<int, int> by_status;
  std::map<std::string, int> by_value;
  int complete = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 1; i <= m.count; ++i) {
    wp::testing::HttpResponse r = conn.request(m.method, m.path, headers, "", opts);
    if (!t.established()) {
      std::printf("tunnel: CONNECT %s answered %d%s\n", to.c_str(), t.status, t.failed ? " (failed)" : "");
      return 1;
    }
    if (!r.complete) {
      std::string why = !conn.error().empty() ? conn.error() : conn.closed() ? "the tunnel ended" : "timed out";
      std::printf("request %d: no complete response (%s)\n", i, why.c_str());
      break;
    }
    ++complete;
    by_status[r.status]++;
    std::string shown = r.header(m.show_header);
    if (!m.show_header.empty()) {
      by_value[shown]++;
    }
    if (!m.quiet) {
      std::string line = "request " + std::to_string(i) + ": " + std::to_string(r.status);
      if (!m.show_header.empty()) {
        line += "  " + m.show_header + ": " + (shown.empty() ? "(none)" : shown);
      }
      if (!r.body.empty()) {
        std::string body = r.body.substr(0, 80);
        for (char& c : body) {
          c = (c == '\n' || c == '\r') ? ' ' : c;
        }
        line += "  \"" + body + (r.body.size() > 80 ? "...\"" : "\"");
      }
      std::printf("%s\n", line.c_str());
    }
    if (conn.closed() && i < m.count) {
      std::printf("the tunnel ended after request %d\n", i);
      break;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%d/%d responses in %.3f s; status: %s\n", complete, m.count, secs, tally(by_status).c_str());
  if (!m.show_header.empty()) {
    std::printf("%s: %s\n", m.show_header.c_str(), tally(by_value).c_str());
  }
  return complete == m.count ? 0 : 1;
}

// "name: value" → the pair; false when there is no colon.
bool split_header(const std::string& h, std::string& name, std::string& value) {
  auto colon = h.find(':');
  if (colon == std::string::npos) {
    return false;
  }
  name = h.substr(0, colon);
  value = h.substr(colon + 1);
  value.erase(0, value.find_first_not_of(' '));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  wp::testing::ClientOptions o;
  std::string waypoint, to, text;
  uint64_t bytes = 0;
  int tunnels = 1;
  int timeout_ms = 10000;
  wp::hbone::H2Stream::HeaderList headers;
  HttpMode http;
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
    } else if (a == "--header" || a == "-H") {
      std::string name, value;
      if (!split_header(next(), name, value)) {
        std::fprintf(stderr, "wp-hbone-client: %s wants 'name: value'\n", a.c_str());
        return 2;
      }
      if (a == "--header") {
        headers.emplace_back(name, value);
      } else {
        http.headers.emplace_back(name, value);
      }
    } else if (a == "--http") {
      http.method = next();
    } else if (a == "--path") {
      http.path = next();
    } else if (a == "--count") {
      http.count = std::atoi(next().c_str());
    } else if (a == "--show-header") {
      http.show_header = next();
    } else if (a == "--quiet") {
      http.quiet = true;
    } else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: wp-hbone-client --waypoint IP:PORT --server-id SPIFFE --cert F --key F --root F --to IP:PORT\n"
          "                       [--header 'k: v'] [--timeout-ms N]\n"
          "                       [--send TEXT | --bytes N] [--tunnels N]                     (TCP)\n"
          "                       --http METHOD [--path P] [-H 'k: v'] [--count N]\n"
          "                                     [--show-header NAME] [--quiet]                 (HTTP)\n"
          "  --header       a header on the CONNECT request (e.g. 'forwarded: for=\"10.0.0.1\"')\n"
          "  --timeout-ms   how long to wait for the tunnels (HTTP: for each response); default 10000\n"
          "TCP: each of --tunnels tunnels sends TEXT (or N pattern bytes), half-closes and prints what came back.\n"
          "HTTP: one tunnel, --count HTTP/1.1 keep-alive requests (default 1) of METHOD on --path (default /);\n"
          "  -H             a request header (repeatable); host defaults to the --to address\n"
          "  --show-header  print this response header per request and count its values\n"
          "  --quiet        only the summary: counts per status (and per --show-header value)\n");
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
  if (!http.method.empty() && (tunnels != 1 || bytes > 0 || !text.empty() || http.count < 1)) {
    std::fprintf(stderr, "wp-hbone-client: --http takes --count N >= 1, not --send, --bytes or --tunnels\n");
    return 2;
  }
  o.waypoint = *wa;
  std::signal(SIGPIPE, SIG_IGN);
  try {
    wp::testing::HboneTestClient client(o);
    if (!http.method.empty()) {
      return run_http(client, to, headers, http, timeout_ms);
    }
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
