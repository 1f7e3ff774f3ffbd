#include "waypoint/config/names.h"

#include <charconv>

namespace wp::config {

std::string inbound_vip_name(uint32_t port, std::string_view protocol, std::string_view fqdn, std::string_view subset) {
  std::string name;
  name.reserve(12 + 6 + protocol.size() + 1 + subset.size() + 1 + fqdn.size());
  name += "inbound-vip|";
  name += std::to_string(port);
  name += '|';
  name += protocol;
  if (!subset.empty()) {
    name += '/';
    name += subset;
  }
  name += '|';
  name += fqdn;
  return name;
}

std::optional<InboundName> split_inbound_name(std::string_view name) {
  std::string_view parts[4];
  size_t n = 0;
  for (size_t start = 0;;) {
    size_t bar = name.find('|', start);
    if (n == 4) {
      return std::nullopt;  // more than four parts
    }
    parts[n++] = name.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
    if (bar == std::string_view::npos) {
      break;
    }
    start = bar + 1;
  }
  if (n != 4) {
    return std::nullopt;
  }
  InboundName out;
  out.direction = parts[0];
  auto [end, ec] = std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), out.port);
  if (ec != std::errc() || end != parts[1].data() + parts[1].size()) {
    out.port = 0;
  }
  out.protocol = parts[2];
  if (size_t slash = parts[2].find('/'); slash != std::string_view::npos) {
    out.subset = parts[2].substr(slash + 1);
  }
  out.fqdn = parts[3];
  return out;
}

}  // namespace wp::config
