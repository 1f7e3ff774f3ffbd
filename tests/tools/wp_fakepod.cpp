// wp-fakepod: a fake pod for demos and manual tests — an HBONE server on a loopback address.
//   wp-fakepod --addr 127.0.1.1:15008 --cert pod.pem --key pod.key --root root.pem
//              [--behavior echo|greet|refuse|reset|http] [--banner TEXT] [--delay-ms N]
//              [--name NAME] [--fail-first N [--fail-status S]]
// --behavior http serves HTTP/1.1 or h2c inside each tunnel (tests/support/fake_pod.h: request
// headers x-status, x-delay-ms, x-reset... choose the answer; every response carries x-pod: NAME);
// --fail-first N answers the first N HTTP requests with status S (default 503), then serves normally.
// Runs until SIGINT/SIGTERM, then prints what it saw.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "support/fake_pod.h"

int main(int argc, char** argv) {
  wp::testing::FakePodOptions o;
  std::string addr;
  int fail_first = 0;
  int fail_status = 503;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "wp-fakepod: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--addr") {
      addr = next();
    } else if (a == "--cert") {
      o.cert = next();
    } else if (a == "--key") {
      o.key = next();
    } else if (a == "--root") {
      o.root = next();
    } else if (a == "--trust-domain") {
      o.trust_domain = next();
    } else if (a == "--banner") {
      o.banner = next();
    } else if (a == "--name") {
      o.name = next();
    } else if (a == "--fail-first") {
      fail_first = std::atoi(next().c_str());
    } else if (a == "--fail-status") {
      fail_status = std::atoi(next().c_str());
    } else if (a == "--delay-ms") {
      o.respond_delay_ms = std::atoi(next().c_str());
    } else if (a == "--behavior") {
      std::string b = next();
      if (b == "echo") {
        o.behavior = wp::testing::PodBehavior::Echo;
      } else if (b == "greet") {
        o.behavior = wp::testing::PodBehavior::Greet;
      } else if (b == "refuse") {
        o.behavior = wp::testing::PodBehavior::Refuse;
      } else if (b == "reset") {
        o.behavior = wp::testing::PodBehavior::Reset;
      } else if (b == "http") {
        o.behavior = wp::testing::PodBehavior::Http;
      } else {
        std::fprintf(stderr, "wp-fakepod: unknown behavior %s\n", b.c_str());
        return 2;
      }
    } else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: wp-fakepod --addr IP:PORT --cert F --key F --root F [--behavior echo|greet|refuse|reset|http]\n"
          "                  [--banner TEXT] [--delay-ms N] [--trust-domain TD]\n"
          "                  [--name NAME] [--fail-first N [--fail-status S]]\n"
          "  --behavior   echo (default): every byte back, after --banner; greet: \"hello\" then EOF;\n"
          "               refuse: CONNECT answered 503; reset: RST_STREAM after the first bytes;\n"
          "               http: HTTP/1.1 or h2c inside the tunnel, 200 echoing the request body, or as\n"
          "               the request headers x-status, x-body-bytes, x-delay-ms, x-reset, x-close say\n"
          "  --delay-ms   wait N ms before answering each CONNECT\n"
          "  --name       http: the x-pod response header's value (default \"pod\")\n"
          "  --fail-first http: answer the first N requests with --fail-status (default 503), empty body\n");
      return 0;
    } else {
      std::fprintf(stderr, "wp-fakepod: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  auto sa = wp::net::SockAddr::parse(addr);
  if (!sa || o.cert.empty() || o.key.empty() || o.root.empty()) {
    std::fprintf(stderr, "wp-fakepod: --addr IP:PORT, --cert, --key and --root are required\n");
    return 2;
  }
  o.address = *sa;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before the pod's thread starts: it inherits the mask
  std::signal(SIGPIPE, SIG_IGN);
  try {
    wp::testing::FakePod pod(o);
    if (fail_first > 0) {
      pod.fail_next(fail_first, fail_status);
    }
    std::fprintf(stderr, "wp-fakepod: listening on %s\n", addr.c_str());
    int sig = 0;
    sigwait(&set, &sig);
    std::string http;
    if (o.behavior == wp::testing::PodBehavior::Http) {
      http = ", " + std::to_string(pod.http_requests()) + " HTTP requests";
    }
    std::printf("wp-fakepod %s: %llu connections, %llu tunnels, %llu bytes received%s\n", addr.c_str(),
                static_cast<unsigned long long>(pod.connections()), static_cast<unsigned long long>(pod.tunnels()),
                static_cast<unsigned long long>(pod.bytes_received()), http.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wp-fakepod: %s\n", e.what());
    return 1;
  }
  return 0;
}
