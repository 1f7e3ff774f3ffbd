#include "waypoint/proxy/pipeline.h"

namespace wp::proxy {

const char* to_string(Stage s) {
  switch (s) {
    case Stage::Headers:
      return "headers";
    case Stage::Authz:
      return "authorization";
    case Stage::Route:
      return "route";
    case Stage::Redirect:
      return "redirect";
    case Stage::DirectResponse:
      return "direct response";
    case Stage::Fault:
      return "fault";
  }
  return "?";
}

namespace {

void stop(StageResult& r, int status, std::string_view body, const char* flags) {
  r.stop = true;
  r.status = status;
  r.body = body;
  r.flags = flags;
}

// What the codecs leave to the pipeline, the same for HTTP/1.1 and h2c: CONNECT inside a tunnel
// (HTTP/1.1's codec answers it 501 itself) and underscore header names.
void headers_stage(const StageInput& in, StageResult& r) {
  if (in.method == "CONNECT") {
    r.count(stats::Id::downstream_rq_not_implemented);
    stop(r, 501, "CONNECT is not supported inside a tunnel", "DPE");
    return;
  }
  UnderscoreAction action = UnderscoreAction::Allow;
  switch (in.snapshot->bootstrap.http.headers_with_underscores) {
    case config::UnderscoreHeaders::Allow:
      break;
    case config::UnderscoreHeaders::DropHeader:
      action = UnderscoreAction::DropHeader;
      break;
    case config::UnderscoreHeaders::RejectRequest:
      action = UnderscoreAction::RejectRequest;
      break;
  }
  switch (check_underscores(*in.headers, action)) {
    case UnderscoreVerdict::Ok:
      break;
    case UnderscoreVerdict::Dropped:
      r.count(stats::Id::downstream_rq_underscore_headers);
      break;
    case UnderscoreVerdict::Rejected:
      r.count(stats::Id::downstream_rq_underscore_headers);
      stop(r, 400, "header name with an underscore", "DPE");
      break;
    case UnderscoreVerdict::FramingLookalike:
      r.count(stats::Id::downstream_rq_framing_rejected);
      stop(r, 400, "content_length / transfer_encoding header", "DPE");
      break;
  }
}

// AuthorizationPolicy (SPEC §4: before routing). The attributes are views into the request and
// the tunnel: nothing is allocated.
void authz_stage(const StageInput& in, StageResult& r) {
  if (in.authz == nullptr || in.authz->empty()) {
    return;
  }
  auto a = filters::Attributes::l4(in.principal, in.source_ip, in.destination);
  a.http = true;
  a.host = in.authority;
  a.method = in.method;
  a.path = in.path;
  a.header = [](const void* ctx, std::string_view name) { return static_cast<const HeaderMap*>(ctx)->get(name); };
  a.header_ctx = in.headers;
  r.verdict = in.authz->evaluate(a);
  if (r.verdict.audited) {
    r.count(stats::Id::authz_audited);
  }
  if (!r.verdict.allowed) {
    r.count(stats::Id::rq_authz_denied);
    stop(r, 403, "RBAC: access denied", "-");
  }
}

}  // namespace

StageResult run_stages(const StageInput& in, StageSink* sink) {
  StageResult r;
  auto ran = [&](Stage s) {
    r.stage = s;
    if (sink != nullptr) {
      sink->on_stage(s, in, r);
    }
    return !r.stop;
  };
  headers_stage(in, r);
  if (!ran(Stage::Headers)) {
    return r;
  }
  authz_stage(in, r);
  if (!ran(Stage::Authz)) {
    return r;
  }
  MapSource source(*in.headers);
  router::RequestView view{in.method, in.path, in.query, in.authority, in.port, &source};
  if (in.direct) {
    r.route = &config::direct_route();
  } else {
    r.route = in.routes != nullptr ? router::match(*in.routes, view) : nullptr;
    if (r.route == nullptr) {
      r.count(stats::Id::rq_no_route);
      stop(r, 404, "", "NR");
    }
  }
  if (!ran(Stage::Route)) {
    return r;
  }
  const config::Route& route = *r.route;
  if (route.redirect) {
    r.count(stats::Id::rq_redirect);
    r.extra.add("location", router::redirect_location(route, view, "http"));
    stop(r, route.redirect->status, "", "-");
    ran(Stage::Redirect);
    return r;
  }
  if (route.direct_status != 0) {
    r.count(stats::Id::rq_direct_response);
    stop(r, route.direct_status, route.direct_body, "-");
    ran(Stage::DirectResponse);
    return r;
  }
  r.fault = router::decide_fault(route.fault, in.random_delay, in.random_abort);
  if (r.fault.abort) {
    r.count(stats::Id::rq_fault_aborted);
    stop(r, r.fault.abort_status, "fault filter abort", r.fault.delay ? "DI,FI" : "FI");
  } else if (r.fault.delay && r.fault.delay_for.count() > 0) {
    r.count(stats::Id::rq_fault_delayed);
  }
  ran(Stage::Fault);
  return r;
}

}  // namespace wp::proxy
