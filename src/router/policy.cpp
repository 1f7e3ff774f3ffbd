#include "waypoint/router/policy.h"

namespace wp::router {

void apply(const config::HeaderMutation& mutation, HeaderList& headers) {
  for (const auto& name : mutation.remove) {
    headers.remove(name);
  }
  for (const auto& [name, value] : mutation.set) {
    headers.set(name, value);
  }
  for (const auto& [name, value] : mutation.add) {
    headers.add(name, value);
  }
}

bool chance(uint32_t per_million, uint32_t random) {
  // Scale the 32-bit number onto [0, 1'000'000) without modulo bias.
  return (static_cast<uint64_t>(random) * 1'000'000 >> 32) < per_million;
}

FaultDecision decide_fault(const config::FaultPolicy& fault, uint32_t random_delay, uint32_t random_abort) {
  FaultDecision out;
  if (fault.has_delay && chance(fault.delay_per_million, random_delay)) {
    out.delay = true;
    out.delay_for = fault.delay;
  }
  if (fault.has_abort && chance(fault.abort_per_million, random_abort)) {
    out.abort = true;
    out.abort_status = fault.abort_status;
  }
  return out;
}

namespace {

// `path` after a path rewrite of `kind` with `replacement`, for the block the request matched.
std::string replace_path(config::PathRewrite kind, const std::string& replacement, const config::Route& route,
                         const RequestView& request) {
  using config::StringMatch;
  if (kind == config::PathRewrite::Prefix) {
    const config::RouteMatch* block = matched_block(route, request);
    if (block != nullptr && block->uri &&
        (block->uri->kind == StringMatch::Kind::Prefix || block->uri->kind == StringMatch::Kind::PathPrefix)) {
      std::string_view prefix = block->uri->value;
      if (block->uri->kind == StringMatch::Kind::PathPrefix) {
        while (!prefix.empty() && prefix.back() == '/') {
          prefix.remove_suffix(1);
        }
      }
      std::string_view rest = request.path.substr(std::min(prefix.size(), request.path.size()));
      std::string out = replacement;
      if (block->uri->kind == StringMatch::Kind::PathPrefix) {
        // Segment-wise: "/foo" → "/bar" maps "/foo/x" to "/bar/x"; "/" never doubles a slash.
        if (!out.empty() && out.back() == '/' && !rest.empty() && rest.front() == '/') {
          out.pop_back();
        }
        if (out.empty() && rest.empty()) {
          out.push_back('/');
        }
      }
      out += rest;
      return out;
    }
  }
  if (kind == config::PathRewrite::None) {
    return std::string(request.path);
  }
  return replacement;
}

}  // namespace

std::string rewritten_path(const config::Route& route, const RequestView& request) {
  std::string out = replace_path(route.rewrite.path_kind, route.rewrite.path, route, request);
  if (!request.query.empty()) {
    out += "?";
    out += request.query;
  }
  return out;
}

std::string redirect_location(const config::Route& route, const RequestView& request, std::string_view scheme) {
  if (!route.redirect) {
    return "";
  }
  const config::Redirect& r = *route.redirect;
  std::string out(r.scheme.empty() ? scheme : std::string_view(r.scheme));
  out += "://";
  std::string_view authority = r.authority.empty() ? request.authority : std::string_view(r.authority);
  if (r.port != 0) {
    // Replace any port in the authority (IPv6 literals keep their brackets).
    size_t colon = authority.rfind(':');
    if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
      authority = authority.substr(0, colon);
    }
    out += authority;
    out += ':';
    out += std::to_string(r.port);
  } else {
    out += authority;
  }
  out += replace_path(r.path_kind, r.path, route, request);
  if (!request.query.empty()) {
    out += "?";
    out += request.query;
  }
  return out;
}

}  // namespace wp::router
