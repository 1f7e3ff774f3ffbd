#include "cli/generate.h"

#include <cstdio>
#include <cstring>
#include <string_view>

namespace wp::cli {

namespace {

// A DNS-1123 label, as Kubernetes requires of names and namespaces.
bool dns_label(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string generate_gateway(const GenerateOptions& o) {
  std::string out =
      "apiVersion: gateway.networking.k8s.io/v1\n"
      "kind: Gateway\n"
      "metadata:\n";
  if (!o.service_account.empty()) {
    out += "  annotations:\n    istio.io/for-service-account: " + o.service_account + "\n";
  }
  out += "  labels:\n    istio.io/waypoint-for: service\n";
  out += "  name: " + o.name + "\n";
  out += "  namespace: " + o.namespace_ + "\n";
  out +=
      "spec:\n"
      "  gatewayClassName: istio-waypoint\n"
      "  listeners:\n"
      "  - name: mesh\n"
      "    port: 15008\n"
      "    protocol: HBONE\n";
  return out;
}

int generate_main(int argc, char** argv) {
  GenerateOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string* target = nullptr;
    std::string_view flag = arg.substr(0, arg.find('='));
    if (flag == "--name") {
      target = &o.name;
    } else if (flag == "--namespace" || flag == "-n") {
      target = &o.namespace_;
    } else if (flag == "--service-account") {
      target = &o.service_account;
    } else if (arg == "-h" || arg == "--help") {
      std::printf("usage: waypoint generate [--name NAME] [--namespace NS] [--service-account SA]\n");
      return 0;
    } else {
      std::fprintf(stderr, "waypoint generate: unknown argument: %s\n", argv[i]);
      return 2;
    }
    if (arg.size() > flag.size()) {
      *target = std::string(arg.substr(flag.size() + 1));
    } else if (i + 1 < argc) {
      *target = argv[++i];
    } else {
      std::fprintf(stderr, "waypoint generate: %s needs a value\n", argv[i]);
      return 2;
    }
    if (!dns_label(*target)) {
      std::fprintf(stderr,
                   "waypoint generate: %.*s: \"%s\" is not a valid Kubernetes name (lower-case letters, "
                   "digits and '-', at most 63)\n",
                   static_cast<int>(flag.size()), flag.data(), target->c_str());
      return 2;
    }
  }
  std::fputs(generate_gateway(o).c_str(), stdout);
  return 0;
}

}  // namespace wp::cli
