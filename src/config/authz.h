#pragma once
// Private to config/: AuthorizationPolicy resources → filters::Policy (include/waypoint/filters/authz.h)
// plus what they target.
#include <string>
#include <vector>

#include "config/reader.h"
#include "config/resources.h"
#include "waypoint/filters/authz.h"

namespace wp::config {

struct AuthzPolicySpec {
  filters::Policy policy;
  bool gateway = false;               // targets this waypoint's Gateway: every served Service
  std::vector<std::string> services;  // targeted Services, by name
  Mark mark;
};

// Reports problems to `diag`; appends the policy to `out` unless it is unusable or targets nothing
// this waypoint serves (then a warning says why it is ignored).
void parse_authorization_policy(const Node& doc, const ObjectMeta& meta, const Bootstrap& bootstrap, Diagnostics& diag,
                                std::vector<AuthzPolicySpec>& out);

// Builds snapshot.authz_gateway and snapshot.authz_services (each served Service: the Gateway's
// policies plus its own; the chains point at them once they are built). A Service target this
// waypoint does not serve is a warning.
void compile_authz(const std::vector<const AuthzPolicySpec*>& policies, Diagnostics& diag, Snapshot& snapshot);

// Service `service`'s policy set: `gateway` (the Gateway's policies) plus those targeting it, in
// the order of `policies`.
std::shared_ptr<const filters::PolicySet> policy_set_for(const std::string& service,
                                                         const std::vector<const AuthzPolicySpec*>& policies,
                                                         const filters::PolicySet& gateway);

// compile_authz's warnings alone (the snapshot's Services and policy sets built): L7 fields on TCP
// ports, targets not served. The incremental compile says them again after a policy changed.
void warn_authz(const std::vector<const AuthzPolicySpec*>& policies, const Snapshot& snapshot, Diagnostics& diag);

}  // namespace wp::config
