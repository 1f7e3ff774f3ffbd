// waypoint: one binary; subcommands run (default), validate, explain, generate, proxy-config, version.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/explain.h"
#include "cli/generate.h"
#include "cli/proxy_config.h"
#include "cli/validate_kubernetes.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/server/server.h"

namespace {

void usage(FILE* out) {
  std::fprintf(
      out,
      "usage:\n"
      "  waypoint [run] --config FILE [--drain-time DURATION]   run the proxy\n"
      "  waypoint validate --config FILE                        check the file, print what would be served\n"
      "  waypoint validate --kubernetes [--config FILE] [--kubeconfig FILE] [--namespace NS] [--gateway NAME]\n"
      "                                                         what the live namespace would serve, each\n"
      "                                                         rejected object with its reason\n"
      "    (run: --kubeconfig FILE overrides spec.kubernetes.kubeconfig)\n"
      "    (run, validate: --max-config-bytes N refuses bigger config files; default 67108864 = 64 MiB)\n"
      "  waypoint explain --config FILE --from SPIFFE_ID --to IP:PORT [--method M] [--path P] [-H 'k: v']\n"
      "                                                         dry-run one request (exit 0 allowed, 2 denied,\n"
      "                                                         3 no route)\n"
      "  waypoint generate [--name N] [--namespace NS] [--service-account SA]\n"
      "                                                         print the waypoint's Gateway YAML\n"
      "  waypoint proxy-config listener|clusters|routes|endpoints [--admin HOST:PORT] [--name NAME]\n"
      "                       [-o table|json|yaml] [--direction inbound|outbound]\n"
      "                                                         a running waypoint's config, as istioctl\n"
      "  waypoint version\n");
}

struct Args {
  std::string command = "run";
  std::string config;
  std::string drain_time;
  std::string max_config_bytes;
  std::string kubeconfig;
  std::string namespace_;
  std::string gateway;
  bool kubernetes = false;
  bool help = false;
  std::string error;
};

Args parse(int argc, char** argv) {
  Args a;
  int i = 1;
  if (i < argc && argv[i][0] != '-') {
    a.command = argv[i++];
  }
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> std::string {
      std::string prefix = std::string(name) + "=";
      if (arg.rfind(prefix, 0) == 0) {
        return arg.substr(prefix.size());
      }
      if (i + 1 >= argc) {
        a.error = std::string(name) + " needs a value";
        return "";
      }
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      a.help = true;
    } else if (arg == "--config" || arg.rfind("--config=", 0) == 0 || arg == "-c") {
      a.config = value(arg == "-c" ? "-c" : "--config");
    } else if (arg == "--drain-time" || arg.rfind("--drain-time=", 0) == 0) {
      a.drain_time = value("--drain-time");
    } else if (arg == "--max-config-bytes" || arg.rfind("--max-config-bytes=", 0) == 0) {
      a.max_config_bytes = value("--max-config-bytes");
    } else if (arg == "--kubeconfig" || arg.rfind("--kubeconfig=", 0) == 0) {
      a.kubeconfig = value("--kubeconfig");
    } else if (arg == "--namespace" || arg.rfind("--namespace=", 0) == 0 || arg == "-n") {
      a.namespace_ = value(arg == "-n" ? "-n" : "--namespace");
    } else if (arg == "--gateway" || arg.rfind("--gateway=", 0) == 0) {
      a.gateway = value("--gateway");
    } else if (arg == "--kubernetes") {
      a.kubernetes = true;
    } else {
      a.error = "unknown argument: " + arg;
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  // These parse their own options.
  if (argc > 1 && std::strcmp(argv[1], "explain") == 0) {
    return wp::cli::explain_main(argc - 1, argv + 1);
  }
  if (argc > 1 && std::strcmp(argv[1], "generate") == 0) {
    return wp::cli::generate_main(argc - 1, argv + 1);
  }
  if (argc > 1 && std::strcmp(argv[1], "proxy-config") == 0) {
    return wp::cli::proxy_config_main(argc - 1, argv + 1);
  }
  Args args = parse(argc, argv);
  if (args.help) {
    usage(stdout);
    return 0;
  }
  if (!args.error.empty()) {
    std::fprintf(stderr, "waypoint: %s\n", args.error.c_str());
    usage(stderr);
    return 2;
  }
  if (args.command == "version") {
    std::printf("waypoint 0.1.0\n");
    return 0;
  }
  if (args.command != "run" && args.command != "validate") {
    std::fprintf(stderr, "waypoint: unknown command: %s\n", args.command.c_str());
    usage(stderr);
    return 2;
  }
  if (args.command == "validate" && args.kubernetes) {
    return wp::cli::validate_kubernetes_main(args.config, args.kubeconfig, args.namespace_, args.gateway);
  }
  if (args.config.empty()) {
    std::fprintf(stderr, "waypoint: --config FILE is required\n");
    usage(stderr);
    return 2;
  }
  if (!args.max_config_bytes.empty()) {
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(args.max_config_bytes.c_str(), &end, 10);
    if (errno != 0 || end == args.max_config_bytes.c_str() || *end != '\0' || n == 0 ||
        args.max_config_bytes[0] == '-') {
      std::fprintf(stderr, "waypoint: --max-config-bytes: \"%s\" is not a positive number of bytes\n",
                   args.max_config_bytes.c_str());
      return 2;
    }
    wp::config::set_max_config_bytes(static_cast<size_t>(n));
  }
  if (args.command == "validate") {
    try {
      auto snapshot = wp::config::load_snapshot(args.config);
      std::fputs(wp::config::describe(*snapshot).c_str(), stdout);
      return 0;
    } catch (const wp::config::ConfigError& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
  }
  wp::server::RunOptions opts;
  opts.config_path = args.config;
  opts.kubeconfig = args.kubeconfig;
  if (!args.drain_time.empty()) {
    auto d = wp::config::parse_duration(args.drain_time);
    if (!d) {
      std::fprintf(stderr, "waypoint: --drain-time: bad duration \"%s\" (use e.g. 5s, 500ms)\n",
                   args.drain_time.c_str());
      return 2;
    }
    opts.drain_time = *d;
  }
  return wp::server::run(opts);
}
