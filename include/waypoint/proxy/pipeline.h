#pragma once
// The request stages that run before any upstream, in order — the checks the codecs leave to the
// pipeline, authorization, route match, redirect, direct response, fault — each deciding continue
// or stop with a local answer. ActiveRequest runs them for every request; `waypoint explain` runs
// the same function with a dry-run sink that prints each decision, so the two cannot disagree.
// run_stages touches no counter and no timer: the result says what to count and what to wait.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "waypoint/config/snapshot.h"
#include "waypoint/filters/authz.h"
#include "waypoint/http/headers.h"
#include "waypoint/net/address.h"
#include "waypoint/proxy/http_names.h"
#include "waypoint/router/policy.h"
#include "waypoint/router/route_match.h"
#include "waypoint/stats/stats.h"

namespace wp::proxy {

enum class Stage : uint8_t { Headers, Authz, Route, Redirect, DirectResponse, Fault };
const char* to_string(Stage s);

// The router reads request headers through this seam.
class MapSource final : public router::HeaderSource {
 public:
  explicit MapSource(const HeaderMap& m) : m_(m) {}
  std::optional<std::string_view> get(std::string_view name) const override { return m_.get(name); }

 private:
  const HeaderMap& m_;
};

// What the stages read. Views: everything must outlive the call.
struct StageInput {
  const config::Snapshot* snapshot = nullptr;  // headersWithUnderscoresAction
  const filters::PolicySet* authz = nullptr;   // the chain's AuthorizationPolicies (null or empty: none)
  bool direct = false;                         // a pod chain: the default route, no table
  const config::RouteTable* routes = nullptr;  // a service chain's table (null: 404 NR)
  std::string_view method, path, query, authority;
  uint16_t port = 0;             // the CONNECT's destination port
  HeaderMap* headers = nullptr;  // underscore names may be dropped from it
  std::string_view principal;    // the tunnel's peer
  net::IpAddr source_ip;
  net::SockAddr destination;
  uint32_t random_delay = 0, random_abort = 0;  // the fault stage's draws (explain: "only when certain")
};

struct StageResult {
  Stage stage = Stage::Headers;  // the last stage that ran
  bool stop = false;             // answered here: status, body, flags and extra headers below
  int status = 0;
  std::string_view body;
  const char* flags = "-";
  HeaderMap extra;  // a redirect's location
  // What to count for the request (on continue too: underscore names dropped, an AUDIT match). At
  // most one per stage that ran, two for Authz (audited and denied): never more than kMaxCounters.
  static constexpr uint8_t kMaxCounters = 4;
  stats::Id counters[kMaxCounters]{};
  uint8_t counter_count = 0;
  filters::Verdict verdict;              // the Authz stage's
  const config::Route* route = nullptr;  // from the Route stage on
  router::FaultDecision fault;           // the Fault stage's (a delay: wait it, then go upstream)

  void count(stats::Id id) { counters[counter_count++] = id; }
};

// Told after each stage ran, with the result so far (a dry run prints it).
class StageSink {
 public:
  virtual ~StageSink() = default;
  virtual void on_stage(Stage stage, const StageInput& in, const StageResult& result) = 0;
};

StageResult run_stages(const StageInput& in, StageSink* sink = nullptr);

}  // namespace wp::proxy
