#pragma once
// `waypoint proxy-config listener|clusters|routes|endpoints`: the tables `istioctl proxy-config`
// prints, read from a running waypoint's admin API (GET /listeners, /clusters, /routes, /endpoints;
// JSON arrays as admin/config_dump.h describes them).
#include <iosfwd>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace wp::cli {

// `items` is the admin API's JSON array as YAML::Load parsed it.
// kind: "listener"|"clusters"|"routes"|"endpoints" (also "listeners", "cluster", "route", "endpoint").
// name_filter: "" for everything, else a chain / cluster (or its service FQDN) / route table or route /
//   endpoint's cluster name, matched exactly.
// output: "table", "json" (pretty) or "yaml". direction: "", "inbound" or "outbound" (a waypoint has
//   only inbound configuration: outbound prints nothing, or [] for json and yaml).
// Throws std::invalid_argument for an unknown kind, output or direction.
std::string render_proxy_config(const std::string& kind, const YAML::Node& items, const std::string& name_filter,
                                const std::string& output, const std::string& direction);

// Go text/tabwriter's layout with padchar ' ': every column but the last is as wide as its widest
// cell plus `padding`; trailing spaces are dropped.
std::string tabulate(const std::vector<std::vector<std::string>>& rows, size_t padding);

// argv[0] == "proxy-config". Options: --admin HOST:PORT (default 127.0.0.1:15000), --name NAME,
// -o table|json|yaml (default table), --direction inbound|outbound. Exit codes: 0 success, 1 the
// admin API could not be reached or did not answer 200 with JSON, 2 usage error.
int proxy_config_main(int argc, char** argv);
int proxy_config_main(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace wp::cli
