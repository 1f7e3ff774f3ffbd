#pragma once
// Private to config/: the compile step (scope, endpoints, chains, routing, authorization) as an
// object the Kubernetes API mode keeps between loads, so that a change recompiles only the pieces
// that depend on it (see Compiler::update) and shares every other piece with the previous
// Snapshot. The file mode makes one per load and calls compile() once.
#include <memory>
#include <vector>

#include "config/reader.h"
#include "config/resources.h"

namespace wp::config {

// One object of the live namespace that changed since the last compile: what reading it produced
// before and now (null: it was added / removed). Both point into outcomes the caller keeps.
struct ResourceChange {
  // Exactly one of each pair is set where the object is of that kind.
  const PodResource* old_pod = nullptr;
  const PodResource* new_pod = nullptr;
  const EndpointSliceResource* old_slice = nullptr;
  const EndpointSliceResource* new_slice = nullptr;
  const VirtualServiceSpec* old_vs = nullptr;
  const VirtualServiceSpec* new_vs = nullptr;
  const DestinationRuleSpec* old_dr = nullptr;
  const DestinationRuleSpec* new_dr = nullptr;
  const HttpRouteResource* old_route = nullptr;
  const HttpRouteResource* new_route = nullptr;
  const AuthzPolicySpec* old_policy = nullptr;
  const AuthzPolicySpec* new_policy = nullptr;
  const ServiceResource* old_service = nullptr;
  const ServiceResource* new_service = nullptr;
};

class Compiler {
 public:
  Compiler();
  ~Compiler();
  Compiler(const Compiler&) = delete;
  Compiler& operator=(const Compiler&) = delete;

  // Everything anew from `res` into `snapshot` (bootstrap set); reports to `diag`. `keep`: remember
  // what update() needs (the API mode; the pointers of `res` must stay valid until the next call).
  void compile(const Resources& res, Diagnostics& diag, Snapshot& snapshot, bool keep);

  // The changes on top of the last compile() or update(), whose Snapshot is `previous`: fills `next`
  // (a copy of `previous` whose pieces the changes touch are rebuilt) and returns true, or returns
  // false when the changes need a compile from scratch (a Service, a Gateway or a policy targeting
  // it changed, a binding moved, an error, a pod the waypoint does not know). A policy targeting
  // Services (added, changed or removed) rebuilds their policy sets and chains. `diag` holds the objects' own
  // reports (in object order); the compile's are appended as compile() would.
  bool update(const std::vector<ResourceChange>& changes, const Snapshot& previous, Diagnostics& diag, Snapshot& next);

  // Forget what compile() kept (the next update() returns false).
  void reset();

  struct State;

 private:
  std::unique_ptr<State> st_;
};

}  // namespace wp::config
