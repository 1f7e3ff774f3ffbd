#pragma once
// Per-request routing over a compiled RouteTable (config::Snapshot::route_tables): which route a
// request takes, and which of its weighted clusters. Pure functions over immutable data; matching
// allocates nothing (RE2 matching is linear in the input and allocates only on its first use of a DFA).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "waypoint/config/snapshot.h"

namespace wp::router {

// Where the matcher reads request headers from. Names are asked for in lower case; a header that
// appears several times answers with its first value.
class HeaderSource {
 public:
  virtual ~HeaderSource() = default;
  virtual std::optional<std::string_view> get(std::string_view lower_name) const = 0;
};

// The parts of a request routing looks at, as views into the request (nothing is copied).
struct RequestView {
  std::string_view method;
  std::string_view path;   // without the query string
  std::string_view query;  // after '?', without it; empty when none
  std::string_view authority;
  uint16_t port = 0;  // the service port the request arrived on
  const HeaderSource* headers = nullptr;
};

// Splits an origin-form request target "/a/b?x=1" into path "/a/b" and query "x=1".
void split_target(std::string_view target, std::string_view& path, std::string_view& query);

bool matches(const config::StringMatch& m, std::string_view value);
// Every condition of the block holds.
bool matches(const config::RouteMatch& m, const RequestView& request);
// A route without match blocks matches everything; otherwise any block must match.
bool matches(const config::Route& route, const RequestView& request);

// The first route of the table that matches, or nullptr (the pipeline answers 404, flag NR).
const config::Route* match(const config::RouteTable& table, const RequestView& request);

// The match block of `route` that `request` matched (the first that does), or nullptr when the
// route has none.
const config::RouteMatch* matched_block(const config::Route& route, const RequestView& request);

// The weighted cluster for a uniformly random 32-bit number: O(log n) over the prefix sums.
// Precondition: route.clusters is not empty (a forwarding route). Zero-weight clusters are never
// picked; when every weight is 0 the first cluster is returned (see Route::direct_status).
const config::WeightedCluster& pick(const config::Route& route, uint32_t random);
const config::WeightedCluster& pick(const config::TcpRoute& route, uint32_t random);

}  // namespace wp::router
