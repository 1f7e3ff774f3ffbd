#pragma once
// Route policies applied to a request: header mutations, fault injection, path rewrites and
// redirect locations.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "waypoint/config/snapshot.h"
#include "waypoint/router/route_match.h"

namespace wp::router {

// The header block a mutation is applied to (request or response). Names arrive in lower case.
class HeaderList {
 public:
  virtual ~HeaderList() = default;
  virtual void remove(std::string_view name) = 0;                       // every value of `name`
  virtual void set(std::string_view name, std::string_view value) = 0;  // replace all values, or add
  virtual void add(std::string_view name, std::string_view value) = 0;  // append another value
};

// Envoy's order: removals first, then sets, then additions.
void apply(const config::HeaderMutation& mutation, HeaderList& headers);

// True with probability per_million / 1'000'000 for a uniformly random 32-bit number.
bool chance(uint32_t per_million, uint32_t random);

struct FaultDecision {
  bool delay = false;
  config::Millis delay_for{0};
  bool abort = false;
  uint16_t abort_status = 0;  // answered with body "fault filter abort" (response flag FI)
};

// Delay and abort are drawn independently, each from its own random number.
FaultDecision decide_fault(const config::FaultPolicy& fault, uint32_t random_delay, uint32_t random_abort);

// The :path to send upstream after route.rewrite (query string kept): a Prefix rewrite replaces
// the prefix the request matched (the whole path when it matched otherwise), Full the whole path.
std::string rewritten_path(const config::Route& route, const RequestView& request);

// The Location of route.redirect for `request` arriving with `scheme` ("http").
std::string redirect_location(const config::Route& route, const RequestView& request, std::string_view scheme);

}  // namespace wp::router
