#pragma once
// Istio's names for inbound chains, route tables and clusters:
//   inbound-vip|<port>|<protocol>[/<subset>]|<fqdn>   e.g. inbound-vip|9080|http/v1|reviews.default.svc.cluster.local
// built and split here only (the config compiler, the data path's chain names, the admin dumps and
// proxy-config all go through these).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wp::config {

// protocol: "http" or "tcp"; subset: empty for the Service's own cluster.
std::string inbound_vip_name(uint32_t port, std::string_view protocol, std::string_view fqdn,
                             std::string_view subset = {});

struct InboundName {
  std::string direction;  // "inbound-vip"
  uint32_t port = 0;
  std::string protocol;  // with "/<subset>" when there is one, as istioctl shows it
  std::string subset;    // after the '/', or empty
  std::string fqdn;
};
// The parts of such a name; nullopt for any other (a static cluster's name, "direct-http").
std::optional<InboundName> split_inbound_name(std::string_view name);

}  // namespace wp::config
