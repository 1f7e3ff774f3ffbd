#include "cli/explain.h"

#include "waypoint/http/headers.h"

#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include "waypoint/admin/explain.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/http/headers.h"

namespace wp::cli {

namespace {

constexpr int kConfigError = 1;  // as `waypoint validate`
constexpr int kUsageError = 4;   // 2 and 3 are verdicts

void usage(FILE* out) {
  std::fputs(
      "usage: waypoint explain --config FILE --from SPIFFE_ID --to IP:PORT [options]\n"
      "Dry-runs one request through the waypoint's decisions (chain, authorization, route, clusters,\n"
      "endpoints, retries, timeouts) and prints each with the resource that made it. No network traffic.\n"
      "  --config FILE        the configuration, as `waypoint --config` reads it\n"
      "  --from SPIFFE_ID     the client's identity, e.g. spiffe://cluster.local/ns/default/sa/productpage\n"
      "  --to IP:PORT         the CONNECT destination: a Service VIP:port or a pod IP:port\n"
      "  --method M           request method (default GET)\n"
      "  --path P             request target, query string allowed (default /)\n"
      "  -H 'NAME: VALUE'     a request header (repeatable)\n"
      "  --authority HOST     Host / :authority (default: a Host given with -H, else <service fqdn>:<port>\n"
      "                       for a VIP, IP:PORT for a pod)\n"
      "  --source-ip IP       the client's address (default: the first served pod with the --from identity)\n"
      "  --protocol http|tcp  how a sniffed chain (unnamed port, pod IP) is taken; --method, --path, -H and\n"
      "                       --authority imply http; default: explained both ways\n"
      "exit status: 0 allowed and routed, 1 configuration error, 2 denied by authorization,\n"
      "             3 no chain (503) or no route (404), 4 usage error, 5 the request itself refused\n"
      "             before authorization (501 CONNECT inside a tunnel, 400 underscore header: DPE)\n",
      out);
}

struct Args {
  std::string config;
  admin::ExplainRequest request;
  std::optional<admin::ExplainRequest::Protocol> protocol;
  bool http_details = false;  // --method, --path, -H or --authority given
  bool help = false;
  std::string error;
};

// "name: value" as curl's -H takes it.
bool parse_header(std::string_view text, Args& a) {
  size_t colon = text.find(':');
  std::string_view name = http::trim_ows(text.substr(0, colon));
  if (colon == std::string_view::npos || name.empty() || name.find_first_of(" \t") != std::string_view::npos) {
    a.error = "-H \"" + std::string(text) + "\": expected 'NAME: VALUE'";
    return false;
  }
  a.request.headers.emplace_back(std::string(name), std::string(http::trim_ows(text.substr(colon + 1))));
  return true;
}

// Checks one option's value; false sets a.error.
bool apply(const std::string& name, const std::string& value, Args& a) {
  using P = admin::ExplainRequest::Protocol;
  if (name == "--config" || name == "-c") {
    a.config = value;
  } else if (name == "--from") {
    if (value.rfind("spiffe://", 0) != 0) {
      a.error = "--from: expected a SPIFFE ID (spiffe://<trust domain>/ns/<ns>/sa/<sa>), got \"" + value + "\"";
      return false;
    }
    a.request.principal = value;
  } else if (name == "--to") {
    auto to = net::SockAddr::parse(value);
    if (!to) {
      a.error = "--to: expected IP:PORT (e.g. 10.96.0.20:9080, [fd00::1]:80), got \"" + value + "\"";
      return false;
    }
    a.request.to = *to;
  } else if (name == "--method") {
    if (value.empty() || value.find_first_of(" \t/") != std::string::npos) {
      a.error = "--method: expected a method name, got \"" + value + "\"";
      return false;
    }
    a.request.method = value;
    a.http_details = true;
  } else if (name == "--path") {
    if (value.empty() || value[0] != '/') {
      a.error = "--path: expected an origin-form target starting with '/', got \"" + value + "\"";
      return false;
    }
    a.request.path = value;
    a.http_details = true;
  } else if (name == "-H" || name == "--header") {
    a.http_details = true;
    return parse_header(value, a);
  } else if (name == "--authority") {
    a.request.authority = value;
    a.http_details = true;
  } else if (name == "--source-ip") {
    auto ip = net::IpAddr::parse(value);
    if (!ip) {
      a.error = "--source-ip: expected an IP address, got \"" + value + "\"";
      return false;
    }
    a.request.source_ip = *ip;
  } else if (name == "--protocol") {
    if (value != "http" && value != "tcp") {
      a.error = "--protocol: expected http or tcp, got \"" + value + "\"";
      return false;
    }
    a.protocol = value == "http" ? P::Http : P::Tcp;
  } else {
    a.error = "unknown option: " + name;
    return false;
  }
  return true;
}

bool takes_value(const std::string& name) {
  static constexpr std::string_view kNames[] = {"--config",    "-c",          "--from",    "--to",
                                                "--method",    "--path",      "-H",        "--header",
                                                "--authority", "--source-ip", "--protocol"};
  for (std::string_view n : kNames) {
    if (name == n) {
      return true;
    }
  }
  return false;
}

// Options as "--name value" or "--name=value".
Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc && a.error.empty(); ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      a.help = true;
      continue;
    }
    size_t eq = arg.find('=');
    std::string name = arg.rfind("--", 0) == 0 && eq != std::string::npos ? arg.substr(0, eq) : arg;
    if (!takes_value(name)) {
      a.error = "unknown option: " + arg;
    } else if (name != arg) {
      apply(name, arg.substr(eq + 1), a);
    } else if (i + 1 >= argc) {
      a.error = name + " needs a value";
    } else {
      apply(name, argv[++i], a);
    }
  }
  return a;
}

// Required options and the protocol the HTTP details imply.
bool complete(Args& a) {
  using P = admin::ExplainRequest::Protocol;
  if (a.config.empty() || a.request.principal.empty() || a.request.to.port() == 0) {
    a.error = "--config, --from and --to are required";
    return false;
  }
  if (a.protocol == P::Tcp && a.http_details) {
    a.error = "--protocol tcp: --method, --path, -H and --authority describe an HTTP request";
    return false;
  }
  a.request.protocol = a.protocol ? *a.protocol : a.http_details ? P::Http : P::Auto;
  return true;
}

}  // namespace

int explain_main(int argc, char** argv) {
  Args args = parse(argc, argv);
  if (args.help) {
    usage(stdout);
    return 0;
  }
  if (!args.error.empty() || !complete(args)) {
    std::fprintf(stderr, "waypoint explain: %s\n", args.error.c_str());
    usage(stderr);
    return kUsageError;
  }
  config::SnapshotPtr snapshot;
  try {
    snapshot = config::load_snapshot(args.config);
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return kConfigError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "waypoint explain: %s: %s\n", args.config.c_str(), e.what());
    return kConfigError;
  }
  // A policy or route that was ignored is often the answer to "why is this allowed?".
  for (const std::string& w : snapshot->warnings) {
    std::fprintf(stderr, "warning: %s\n", w.c_str());
  }
  admin::Explanation e = admin::explain(*snapshot, args.request);
  std::fputs(e.text.c_str(), stdout);
  return e.exit_code;
}

}  // namespace wp::cli
