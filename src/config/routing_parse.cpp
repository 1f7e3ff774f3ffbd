// VirtualService, DestinationRule and HTTPRoute → the specs of config/routing.h. Read leniently
// like the other Kubernetes resources (unknown fields are ignored), but every field the waypoint
// uses is checked, with FILE:LINE:COL at the offending node.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include <re2/re2.h>

#include "config/routing.h"

namespace wp::config {

namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// RE2's syntax (Envoy's safe_regex, which Istio's regex fields use), full-match semantics at the
// call site. A pattern whose compiled program is bigger than Istio's bound for Envoy
// (re2.max_program_size.error_level = 32768) is an error, so no config regex can be slow to match.
constexpr int kMaxRegexProgramSize = 32768;

std::optional<std::shared_ptr<const re2::RE2>> compile_regex(Reader& r, const Node& node,
                                                             const std::string& path, const std::string& pattern,
                                                             bool icase) {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_case_sensitive(!icase);
  options.set_max_mem(8 << 20);
  auto re = std::make_shared<const re2::RE2>(pattern, options);
  if (!re->ok()) {
    std::string shown = pattern.size() > 80 ? pattern.substr(0, 80) + "..." : pattern;
    r.error(node, path, "bad regex \"" + shown + "\" (RE2 syntax): " + re->error());
    return std::nullopt;
  }
  if (re->ProgramSize() > kMaxRegexProgramSize) {
    std::string shown = pattern.size() > 80 ? pattern.substr(0, 80) + "..." : pattern;
    r.error(node, path,
            "regex \"" + shown + "\" is too complex (program size " + std::to_string(re->ProgramSize()) +
                " > " + std::to_string(kMaxRegexProgramSize) + ")");
    return std::nullopt;
  }
  return re;
}

// Istio StringMatch {exact|prefix|regex: s}. `allow_empty` accepts {} (presence) → nullopt + true.
struct StringMatchResult {
  bool ok = false;
  std::optional<StringMatch> match;
};

StringMatchResult string_match(Reader& r, const Node& node, const std::string& path, bool icase = false) {
  if (!r.expect_map(node, path)) {
    return {};
  }
  StringMatchResult out{true, std::nullopt};
  int kinds = 0;
  for (const auto& [key, kind] :
       {std::pair{"exact", StringMatch::Kind::Exact}, std::pair{"prefix", StringMatch::Kind::Prefix},
        std::pair{"regex", StringMatch::Kind::Regex}}) {
    Node value = child(node, key);
    if (!present(value)) {
      continue;
    }
    std::string field_path = path + "." + key;
    if (++kinds > 1) {
      r.error(value, field_path, "give only one of exact, prefix, regex");
      return {};
    }
    auto text = r.string(value, field_path);
    if (!text) {
      return {};
    }
    StringMatch m;
    m.kind = kind;
    m.value = *text;
    m.ignore_case = icase;
    if (kind == StringMatch::Kind::Regex) {
      auto re = compile_regex(r, value, field_path, *text, icase);
      if (!re) {
        return {};
      }
      m.regex = std::move(*re);
    }
    out.match = std::move(m);
  }
  if (kinds == 0 && node.size() != 0) {
    // {} asks for presence; anything else (a typo, "suffix") must not silently widen the match.
    r.error(node, path, "expected one of exact, prefix, regex");
    return {};
  }
  return out;
}

// A Gateway API {type, value} string match for headers and query parameters.
std::optional<StringMatch> gateway_value_match(Reader& r, const Node& node, const std::string& path) {
  StringMatch m;
  std::string type = "Exact";
  if (Node t = child(node, "type"); present(t)) {
    type = r.string(t, path + ".type").value_or("");
  }
  auto value = r.required_string(node, "value", path + ".value");
  if (!value) {
    return std::nullopt;
  }
  m.value = *value;
  if (type == "Exact") {
    m.kind = StringMatch::Kind::Exact;
  } else if (type == "RegularExpression") {
    auto re = compile_regex(r, child(node, "value"), path + ".value", *value, false);
    if (!re) {
      return std::nullopt;
    }
    m.kind = StringMatch::Kind::Regex;
    m.regex = std::move(*re);
  } else {
    r.error(child(node, "type"), path + ".type", "\"" + type + "\" is not Exact or RegularExpression");
    return std::nullopt;
  }
  return m;
}

// A percentage 0..100 (Istio Percent {value: double}, or Gateway API percent) as per million.
std::optional<uint32_t> percentage(Reader& r, const Node& node, const std::string& path) {
  if (!node.IsScalar()) {
    r.error(node, path, "expected a number, got a structure");
    return std::nullopt;
  }
  const std::string& text = node.Scalar();
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value) || value < 0 || value > 100) {
    r.error(node, path, "bad percentage \"" + text + "\" (0 to 100)");
    return std::nullopt;
  }
  return static_cast<uint32_t>(std::llround(value * 10'000));
}

// Istio's `percentage: {value: X}` or the deprecated integer `percent`; nullopt when neither.
std::optional<uint32_t> istio_percentage(Reader& r, const Node& parent, const std::string& path, bool& bad) {
  if (Node p = child(parent, "percentage"); present(p)) {
    if (!r.expect_map(p, path + ".percentage")) {
      bad = true;
      return std::nullopt;
    }
    Node value = child(p, "value");
    if (!present(value)) {
      return 0;
    }
    auto out = percentage(r, value, path + ".percentage.value");
    bad = !out;
    return out;
  }
  if (Node p = child(parent, "percent"); present(p)) {
    auto out = r.integer(p, path + ".percent", 0, 100, "a percentage");
    bad = !out;
    return out ? std::optional<uint32_t>(static_cast<uint32_t>(*out * 10'000)) : std::nullopt;
  }
  return std::nullopt;
}

std::optional<Millis> duration_field(Reader& r, const Node& parent, const char* key, const std::string& path,
                                     bool& bad) {
  Node node = child(parent, key);
  if (!present(node)) {
    return std::nullopt;
  }
  auto value = r.duration(node, path + "." + key);
  bad = bad || !value;
  return value;
}

uint32_t u32_field(Reader& r, const Node& parent, const char* key, const std::string& path, uint32_t fallback,
                   bool& bad) {
  Node node = child(parent, key);
  if (!present(node)) {
    return fallback;
  }
  auto value = r.integer(node, path + "." + key, 0, 0xFFFFFFFFll);
  bad = bad || !value;
  return value ? static_cast<uint32_t>(*value) : fallback;
}

// ---- VirtualService -------------------------------------------------------------------------

std::optional<DestinationRef> istio_destination(Reader& r, const Node& node, const std::string& path) {
  if (!present(node)) {
    r.error(node, path, "required");
    return std::nullopt;
  }
  if (!r.expect_map(node, path)) {
    return std::nullopt;
  }
  DestinationRef d;
  d.path = path;
  auto host = r.required_string(node, "host", path + ".host");
  if (!host) {
    return std::nullopt;
  }
  d.host = *host;
  d.host_at = mark_of(child(node, "host"));
  if (Node subset = child(node, "subset"); present(subset)) {
    auto s = r.nonempty_string(subset, path + ".subset");
    if (!s) {
      return std::nullopt;
    }
    d.subset = *s;
    d.subset_at = mark_of(subset);
  }
  if (Node port = child(node, "port"); present(port)) {
    Node number = child(port, "number");
    if (!present(number)) {
      r.error(port, path + ".port.number", "required");
      return std::nullopt;
    }
    auto p = r.port(number, path + ".port.number");
    if (!p) {
      return std::nullopt;
    }
    d.port = *p;
    d.port_at = mark_of(number);
  }
  return d;
}

// Weights: all omitted (one destination: 100 %, several: equal shares) or summing to 100.
bool check_weights(Reader& r, const Node& list, const std::string& path, std::vector<DestinationRef>& dests,
                   const std::vector<Node>& weight_nodes) {
  bool any = std::any_of(weight_nodes.begin(), weight_nodes.end(), [](const Node& n) { return present(n); });
  if (!any) {
    uint32_t share = dests.empty() ? 0 : 100 / static_cast<uint32_t>(dests.size());
    for (size_t i = 0; i < dests.size(); ++i) {
      dests[i].weight = share + (i < 100 % dests.size() ? 1 : 0);
    }
    return true;
  }
  uint32_t sum = 0;
  for (const auto& d : dests) {
    sum += d.weight;
  }
  if (dests.size() == 1 && sum == 0 && !present(weight_nodes[0])) {
    dests[0].weight = 100;
    return true;
  }
  if (sum != 100) {
    r.error(list, path, "weights add up to " + std::to_string(sum) + ", not 100");
    return false;
  }
  return true;
}

void header_operations(Reader& r, const Node& node, const std::string& path, HeaderMutation& out) {
  if (!r.expect_map(node, path)) {
    return;
  }
  for (const char* key : {"set", "add"}) {
    auto values = r.string_map(child(node, key), path + "." + key);
    auto& target = std::string_view(key) == "set" ? out.set : out.add;
    for (auto& [name, value] : values) {
      target.emplace_back(lower(name), value);
    }
  }
  for_each_item(r, node, "remove", path, [&](const Node& item, const std::string& item_path) {
    if (auto name = r.nonempty_string(item, item_path)) {
      out.remove.push_back(lower(*name));
    }
  });
}

bool parse_retries(Reader& r, const Node& node, const std::string& path, RetryPolicy& policy) {
  if (!r.expect_map(node, path)) {
    return false;
  }
  bool bad = false;
  // Istio: retries with attempts 0 (or none) disable retrying.
  policy.num_retries = u32_field(r, node, "attempts", path, 0, bad);
  policy.per_try_timeout = duration_field(r, node, "perTryTimeout", path, bad);
  if (Node on = child(node, "retryOn"); present(on)) {
    std::string text;
    if (on.IsSequence()) {  // accepted too: a YAML list of tokens
      for (const auto& item : on) {
        text += (text.empty() ? "" : ",") + (item.IsScalar() ? item.Scalar() : std::string("?"));
      }
    } else if (auto s = r.string(on, path + ".retryOn")) {
      text = *s;
    } else {
      return false;
    }
    std::string unknown = parse_retry_on(text, policy);
    if (!unknown.empty()) {
      r.error(on, path + ".retryOn",
              "unknown retryOn condition \"" + unknown +
                  "\" (5xx, gateway-error, reset, reset-before-request, connect-failure, refused-stream, "
                  "retriable-4xx, retriable-status-codes, envoy-ratelimited, cancelled, deadline-exceeded, internal, "
                  "resource-exhausted, unavailable, or a status code)");
      bad = true;
    }
  }
  return !bad;
}

bool parse_fault(Reader& r, const Node& node, const std::string& path, FaultPolicy& fault) {
  if (!r.expect_map(node, path)) {
    return false;
  }
  bool bad = false;
  if (Node delay = child(node, "delay"); present(delay) && r.expect_map(delay, path + ".delay")) {
    std::string delay_path = path + ".delay";
    Node fixed = child(delay, "fixedDelay");
    if (!present(fixed)) {
      r.error(delay, delay_path + ".fixedDelay", "required");
      bad = true;
    } else if (auto d = r.duration(fixed, delay_path + ".fixedDelay")) {
      fault.delay = *d;
    } else {
      bad = true;
    }
    auto pct = istio_percentage(r, delay, delay_path, bad);
    if (!pct && !bad) {
      r.warn(delay, delay_path + ".percentage", "not given: no request will be delayed (as Istio)");
    }
    fault.has_delay = true;
    fault.delay_per_million = pct.value_or(0);
  }
  if (Node abort = child(node, "abort"); present(abort) && r.expect_map(abort, path + ".abort")) {
    std::string abort_path = path + ".abort";
    Node status = child(abort, "httpStatus");
    if (!present(status)) {
      r.error(abort, abort_path + ".httpStatus", "required (grpcStatus aborts are not supported)");
      bad = true;
    } else if (auto s = r.integer(status, abort_path + ".httpStatus", 200, 599, "an HTTP status")) {
      fault.abort_status = static_cast<uint16_t>(*s);
    } else {
      bad = true;
    }
    auto pct = istio_percentage(r, abort, abort_path, bad);
    if (!pct && !bad) {
      r.warn(abort, abort_path + ".percentage", "not given: no request will be aborted (as Istio)");
    }
    fault.has_abort = true;
    fault.abort_per_million = pct.value_or(0);
  }
  return !bad;
}

std::optional<RouteMatch> istio_match(Reader& r, const Node& node, const std::string& path, uint16_t& port) {
  if (!r.expect_map(node, path)) {
    return std::nullopt;
  }
  RouteMatch m;
  bool bad = false;
  if (Node name = child(node, "name"); present(name)) {
    m.name = r.string(name, path + ".name").value_or("");
  }
  bool icase = false;
  if (Node ignore = child(node, "ignoreUriCase"); present(ignore)) {
    icase = ignore.IsScalar() && ignore.Scalar() == "true";
  }
  auto one = [&](const char* key, std::optional<StringMatch>& target, bool case_insensitive) {
    if (Node n = child(node, key); present(n)) {
      auto result = string_match(r, n, path + "." + key, case_insensitive);
      bad = bad || !result.ok;
      target = std::move(result.match);
    }
  };
  one("uri", m.uri, icase);
  one("method", m.method, false);
  one("authority", m.authority, false);
  for (const auto& [key, invert] : {std::pair{"headers", false}, std::pair{"withoutHeaders", true}}) {
    Node headers = child(node, key);
    if (!present(headers) || !r.expect_map(headers, path + "." + key)) {
      continue;
    }
    for (const auto& entry : headers) {
      std::string name = entry.first.IsScalar() ? entry.first.Scalar() : "";
      auto result = string_match(r, entry.second, path + "." + key + "." + name);
      bad = bad || !result.ok;
      m.headers.push_back(KeyMatch{lower(name), std::move(result.match), invert});
    }
  }
  if (Node params = child(node, "queryParams"); present(params) && r.expect_map(params, path + ".queryParams")) {
    for (const auto& entry : params) {
      std::string name = entry.first.IsScalar() ? entry.first.Scalar() : "";
      auto result = string_match(r, entry.second, path + ".queryParams." + name);
      bad = bad || !result.ok;
      m.query_params.push_back(KeyMatch{name, std::move(result.match), false});
    }
  }
  if (Node p = child(node, "port"); present(p)) {
    auto value = r.port(p, path + ".port");
    bad = bad || !value;
    port = value.value_or(0);
  }
  // Conditions the waypoint cannot evaluate: ignoring them would widen the match, so they fail.
  for (const char* unsupported : {"sourceLabels", "sourceNamespace", "gateways", "scheme"}) {
    if (Node n = child(node, unsupported); present(n)) {
      r.error(n, path + "." + unsupported, "not supported by the waypoint");
      bad = true;
    }
  }
  if (bad) {
    return std::nullopt;
  }
  return m;
}

std::optional<HttpRouteSpec> istio_http_route(Reader& r, const Node& node, const std::string& path,
                                              const std::string& vs_name, size_t index) {
  if (!r.expect_map(node, path)) {
    return std::nullopt;
  }
  HttpRouteSpec spec;
  Route& route = spec.route;
  route.source = "VirtualService " + vs_name;
  route.name = vs_name + "." + std::to_string(index);
  bool bad = false;
  if (Node name = child(node, "name"); present(name)) {
    route.name = r.string(name, path + ".name").value_or(route.name);
  }
  for_each_item(r, node, "match", path, [&](const Node& item, const std::string& item_path) {
    uint16_t port = 0;
    if (auto m = istio_match(r, item, item_path, port)) {
      route.matches.push_back(std::move(*m));
      spec.match_ports.push_back(port);
    } else {
      bad = true;
    }
  });
  const Node routes = child(node, "route");
  std::vector<Node> weight_nodes;
  for_each_item(r, node, "route", path, [&](const Node& item, const std::string& item_path) {
    auto d = istio_destination(r, child(item, "destination"), item_path + ".destination");
    Node weight = child(item, "weight");
    if (d && present(weight)) {
      auto w = r.integer(weight, item_path + ".weight", 0, 100, "a weight");
      d->weight = static_cast<uint32_t>(w.value_or(0));
      bad = bad || !w;
    }
    if (d) {
      spec.destinations.push_back(std::move(*d));
      weight_nodes.push_back(weight);
    } else {
      bad = true;
    }
  });
  if (!bad && !spec.destinations.empty()) {
    bad = !check_weights(r, routes, path + ".route", spec.destinations, weight_nodes);
  }
  if (Node redirect = child(node, "redirect"); present(redirect) && r.expect_map(redirect, path + ".redirect")) {
    Redirect out;
    std::string rp = path + ".redirect";
    if (Node uri = child(redirect, "uri"); present(uri)) {
      out.path = r.string(uri, rp + ".uri").value_or("");
      out.path_kind = PathRewrite::Full;
    }
    if (Node a = child(redirect, "authority"); present(a)) {
      out.authority = r.string(a, rp + ".authority").value_or("");
    }
    if (Node s = child(redirect, "scheme"); present(s)) {
      out.scheme = r.string(s, rp + ".scheme").value_or("");
    }
    if (Node p = child(redirect, "port"); present(p)) {
      out.port = r.port(p, rp + ".port").value_or(0);
    }
    if (Node code = child(redirect, "redirectCode"); present(code)) {
      auto c = r.integer(code, rp + ".redirectCode", 300, 399, "a redirect status");
      bad = bad || !c;
      out.status = static_cast<uint16_t>(c.value_or(301));
    }
    route.redirect = out;
    if (!spec.destinations.empty()) {
      r.error(redirect, rp, "a route has either route or redirect, not both");
      bad = true;
    }
  }
  if (Node direct = child(node, "directResponse");
      present(direct) && r.expect_map(direct, path + ".directResponse")) {
    Node status = child(direct, "status");
    if (!present(status)) {
      r.error(direct, path + ".directResponse.status", "required");
      bad = true;
    } else if (auto code = r.integer(status, path + ".directResponse.status", 200, 599, "an HTTP status")) {
      route.direct_status = static_cast<uint16_t>(*code);
    } else {
      bad = true;
    }
    if (Node body = child(child(direct, "body"), "string"); present(body)) {
      route.direct_body = r.string(body, path + ".directResponse.body.string").value_or("");
    }
  }
  int actions = (spec.destinations.empty() ? 0 : 1) + (route.redirect ? 1 : 0) + (route.direct_status != 0 ? 1 : 0);
  if (actions == 0) {
    r.error(node, path + ".route", "required (or redirect, or directResponse)");
    bad = true;
  } else if (actions > 1 && !(route.redirect && !spec.destinations.empty())) {
    r.error(node, path, "give only one of route, redirect, directResponse");
    bad = true;
  }
  if (Node cors = child(node, "corsPolicy"); present(cors)) {
    r.warn(cors, path + ".corsPolicy", "not supported by the waypoint; ignored");
  }
  if (Node delegate = child(node, "delegate"); present(delegate)) {
    r.error(delegate, path + ".delegate", "not supported by the waypoint");
    bad = true;
  }
  if (Node retries = child(node, "retries"); present(retries)) {
    bad = !parse_retries(r, retries, path + ".retries", route.retry) || bad;
  }
  if (Node timeout = child(node, "timeout"); present(timeout)) {
    auto t = r.duration(timeout, path + ".timeout");
    bad = bad || !t;
    if (t && t->count() > 0) {  // Istio: 0s disables the timeout
      route.timeout = *t;
    }
  }
  if (Node fault = child(node, "fault"); present(fault)) {
    bad = !parse_fault(r, fault, path + ".fault", route.fault) || bad;
  }
  if (Node headers = child(node, "headers"); present(headers) && r.expect_map(headers, path + ".headers")) {
    if (Node req = child(headers, "request"); present(req)) {
      header_operations(r, req, path + ".headers.request", route.request_headers);
    }
    if (Node resp = child(headers, "response"); present(resp)) {
      header_operations(r, resp, path + ".headers.response", route.response_headers);
    }
  }
  if (Node rewrite = child(node, "rewrite"); present(rewrite) && r.expect_map(rewrite, path + ".rewrite")) {
    if (Node uri = child(rewrite, "uri"); present(uri)) {
      route.rewrite.path = r.string(uri, path + ".rewrite.uri").value_or("");
      route.rewrite.path_kind = PathRewrite::Prefix;
    }
    if (Node a = child(rewrite, "authority"); present(a)) {
      route.rewrite.authority = r.string(a, path + ".rewrite.authority").value_or("");
    }
  }
  for_each_item(r, node, "mirrors", path, [&](const Node& item, const std::string& item_path) {
    auto d = istio_destination(r, child(item, "destination"), item_path + ".destination");
    bool pct_bad = false;
    if (auto pct = istio_percentage(r, item, item_path, pct_bad); pct && d) {
      d->per_million = *pct;
    }
    if (d && !pct_bad) {
      spec.mirrors.push_back(std::move(*d));
    } else {
      bad = true;
    }
  });
  if (Node mirror = child(node, "mirror"); present(mirror)) {
    auto d = istio_destination(r, mirror, path + ".mirror");
    bool pct_bad = false;
    if (Node pct = child(node, "mirrorPercentage");
        present(pct) && r.expect_map(pct, path + ".mirrorPercentage")) {
      if (Node v = child(pct, "value"); present(v)) {
        auto value = percentage(r, v, path + ".mirrorPercentage.value");
        pct_bad = !value;
        if (d && value) {
          d->per_million = *value;
        }
      }
    }
    if (d && !pct_bad) {
      spec.mirrors.push_back(std::move(*d));
    } else {
      bad = true;
    }
  }
  if (bad) {
    return std::nullopt;
  }
  return spec;
}

}  // namespace

namespace {
// Envoy's retry_on names, one per RetryOn bit, in the order Istio writes its default policy.
constexpr struct {
  std::string_view name;
  uint32_t bit;
} kRetryOnTokens[] = {
    {"5xx", kRetry5xx},
    {"gateway-error", kRetryGatewayError},
    {"reset", kRetryReset},
    {"reset-before-request", kRetryResetBeforeRequest},
    {"connect-failure", kRetryConnectFailure},
    {"refused-stream", kRetryRefusedStream},
    {"unavailable", kRetryGrpcUnavailable},
    {"cancelled", kRetryGrpcCancelled},
    {"deadline-exceeded", kRetryGrpcDeadlineExceeded},
    {"internal", kRetryGrpcInternal},
    {"resource-exhausted", kRetryGrpcResourceExhausted},
    {"retriable-4xx", kRetryRetriable4xx},
    {"envoy-ratelimited", kRetryEnvoyRateLimited},
    {"retriable-status-codes", kRetryRetriableStatusCodes},
};
}  // namespace

std::string retry_on_names(uint32_t bits) {
  std::string out;
  for (const auto& t : kRetryOnTokens) {
    if ((bits & t.bit) != 0) {
      if (!out.empty()) {
        out += ',';
      }
      out += t.name;
    }
  }
  return out;
}

const Route& direct_route() {
  static const Route r = [] {
    Route route;
    route.name = "default";
    route.source = "direct";
    return route;
  }();
  return r;
}

std::string parse_retry_on(std::string_view text, RetryPolicy& policy) {
  // Istio: a given retryOn replaces the default conditions and status codes; bare status codes
  // imply retriable-status-codes.
  policy.retry_on = 0;
  policy.retriable_status_codes.clear();
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view token = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    while (!token.empty() && token.front() == ' ') {
      token.remove_prefix(1);
    }
    while (!token.empty() && token.back() == ' ') {
      token.remove_suffix(1);
    }
    if (token.empty()) {
      continue;
    }
    auto known = std::find_if(std::begin(kRetryOnTokens), std::end(kRetryOnTokens),
                              [&](const auto& t) { return t.name == token; });
    if (known != std::end(kRetryOnTokens)) {
      policy.retry_on |= known->bit;
      continue;
    }
    bool digits =
        token.size() == 3 && std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; });
    int code = digits ? std::atoi(std::string(token).c_str()) : 0;
    if (code < 100 || code > 599) {
      return std::string(token);
    }
    policy.retry_on |= kRetryRetriableStatusCodes;
    policy.retriable_status_codes.push_back(static_cast<uint16_t>(code));
  }
  return "";
}

void parse_virtual_service(const Node& doc, const ObjectMeta& meta, Diagnostics& diag, RoutingResources& out) {
  size_t errors_before = diag.error_count();
  Reader r(diag, "VirtualService " + meta.name);
  VirtualServiceSpec vs;
  vs.name = meta.name;
  vs.at = mark_of(doc);
  Node spec = child(doc, "spec");
  if (!present(spec)) {
    r.error(doc, "spec", "required (hosts and http or tcp routes)");
    return;
  }
  if (!r.expect_map(spec, "spec")) {
    return;
  }
  if (Node gateways = child(spec, "gateways"); present(gateways) && gateways.IsSequence()) {
    bool mesh = std::any_of(gateways.begin(), gateways.end(),
                            [](const Node& g) { return g.IsScalar() && g.Scalar() == "mesh"; });
    if (!mesh) {
      r.warn(gateways, "spec.gateways", "bound to gateways, not to the mesh; ignored by the waypoint");
      return;
    }
  }
  for_each_item(r, spec, "hosts", "spec", [&](const Node& item, const std::string& path) {
    if (auto host = r.nonempty_string(item, path)) {
      vs.hosts.push_back(HostRef{*host, mark_of(item), path});
    }
  });
  if (!present(child(spec, "hosts"))) {
    r.error(spec, "spec.hosts", "required");
  }
  size_t index = 0;
  for_each_item(r, spec, "http", "spec", [&](const Node& item, const std::string& path) {
    if (auto route = istio_http_route(r, item, path, vs.name, index++)) {
      vs.http.push_back(std::move(*route));
    }
  });
  for_each_item(r, spec, "tcp", "spec", [&](const Node& item, const std::string& path) {
    if (!r.expect_map(item, path)) {
      return;
    }
    TcpRouteSpec tcp;
    for_each_item(r, item, "match", path, [&](const Node& m, const std::string& match_path) {
      if (Node p = child(m, "port"); present(p)) {
        if (auto port = r.port(p, match_path + ".port")) {
          tcp.ports.push_back(*port);
        }
      }
    });
    std::vector<Node> weight_nodes;
    for_each_item(r, item, "route", path, [&](const Node& dest, const std::string& dest_path) {
      auto d = istio_destination(r, child(dest, "destination"), dest_path + ".destination");
      Node weight = child(dest, "weight");
      if (d && present(weight)) {
        d->weight = static_cast<uint32_t>(r.integer(weight, dest_path + ".weight", 0, 100, "a weight").value_or(0));
      }
      if (d) {
        tcp.destinations.push_back(std::move(*d));
        weight_nodes.push_back(weight);
      }
    });
    if (tcp.destinations.empty()) {
      r.error(item, path + ".route", "required");
      return;
    }
    check_weights(r, child(item, "route"), path + ".route", tcp.destinations, weight_nodes);
    vs.tcp.push_back(std::move(tcp));
  });
  for (const char* unsupported : {"tls"}) {
    if (present(child(spec, unsupported))) {
      r.warn(child(spec, unsupported), std::string("spec.") + unsupported, "not supported by the waypoint; ignored");
    }
  }
  if (diag.error_count() == errors_before) {
    out.virtual_services.push_back(std::move(vs));
  }
}

// ---- DestinationRule ------------------------------------------------------------------------

namespace {

bool parse_traffic_policy(Reader& r, const Node& node, const std::string& path, PolicySpec& out) {
  if (!r.expect_map(node, path)) {
    return false;
  }
  bool bad = false;
  ClusterPolicy& p = out.policy;
  if (Node lb = child(node, "loadBalancer"); present(lb) && r.expect_map(lb, path + ".loadBalancer")) {
    out.has_load_balancer = true;
    if (Node simple = child(lb, "simple"); present(simple)) {
      auto value = r.string(simple, path + ".loadBalancer.simple").value_or("");
      if (value == "ROUND_ROBIN" || value == "UNSPECIFIED") {
        p.load_balancer = LoadBalancer::RoundRobin;
      } else if (value == "LEAST_REQUEST" || value == "LEAST_CONN") {
        p.load_balancer = LoadBalancer::LeastRequest;
      } else if (value == "RANDOM") {
        p.load_balancer = LoadBalancer::Random;
      } else {
        r.error(simple, path + ".loadBalancer.simple", "\"" + value + "\" is not ROUND_ROBIN, LEAST_REQUEST or RANDOM");
        bad = true;
      }
    } else if (Node hash = child(lb, "consistentHash"); present(hash)) {
      Node header = child(hash, "httpHeaderName");
      if (!present(header)) {
        r.error(hash, path + ".loadBalancer.consistentHash.httpHeaderName",
                "required (other hash keys are not supported)");
        bad = true;
      } else if (auto name = r.nonempty_string(header, path + ".loadBalancer.consistentHash.httpHeaderName")) {
        p.load_balancer = LoadBalancer::ConsistentHash;
        p.hash_header = lower(*name);
      } else {
        bad = true;
      }
    }
  }
  if (Node pool = child(node, "connectionPool"); present(pool) && r.expect_map(pool, path + ".connectionPool")) {
    out.has_connection_pool = true;
    std::string pp = path + ".connectionPool";
    if (Node tcp = child(pool, "tcp"); present(tcp)) {
      p.max_connections = u32_field(r, tcp, "maxConnections", pp + ".tcp", 0, bad);
    }
    if (Node http = child(pool, "http"); present(http)) {
      p.http1_max_pending_requests = u32_field(r, http, "http1MaxPendingRequests", pp + ".http", 0, bad);
      p.http2_max_requests = u32_field(r, http, "http2MaxRequests", pp + ".http", 0, bad);
      p.max_requests_per_connection = u32_field(r, http, "maxRequestsPerConnection", pp + ".http", 0, bad);
      p.max_retries = u32_field(r, http, "maxRetries", pp + ".http", 0, bad);
    }
  }
  if (Node od = child(node, "outlierDetection"); present(od) && r.expect_map(od, path + ".outlierDetection")) {
    out.has_outlier_detection = true;
    std::string op = path + ".outlierDetection";
    p.outlier_detection = true;
    uint32_t legacy = u32_field(r, od, "consecutiveErrors", op, 5, bad);
    p.consecutive_5xx_errors = u32_field(r, od, "consecutive5xxErrors", op, legacy, bad);
    p.outlier_interval = duration_field(r, od, "interval", op, bad).value_or(p.outlier_interval);
    p.base_ejection_time = duration_field(r, od, "baseEjectionTime", op, bad).value_or(p.base_ejection_time);
    if (Node max = child(od, "maxEjectionPercent"); present(max)) {
      auto v = r.integer(max, op + ".maxEjectionPercent", 0, 100, "a percentage");
      bad = bad || !v;
      p.max_ejection_percent = static_cast<uint32_t>(v.value_or(10));
    }
  }
  return !bad;
}

}  // namespace

void parse_destination_rule(const Node& doc, const ObjectMeta& meta, Diagnostics& diag, RoutingResources& out) {
  size_t errors_before = diag.error_count();
  Reader r(diag, "DestinationRule " + meta.name);
  DestinationRuleSpec dr;
  dr.name = meta.name;
  dr.at = mark_of(doc);
  Node spec = child(doc, "spec");
  if (!present(spec)) {
    r.error(doc, "spec", "required (host)");
    return;
  }
  if (!r.expect_map(spec, "spec")) {
    return;
  }
  auto host = r.required_string(spec, "host", "spec.host");
  if (!host) {
    return;
  }
  dr.host.host = *host;
  dr.host.at = mark_of(child(spec, "host"));
  dr.host.path = "spec.host";
  if (Node policy = child(spec, "trafficPolicy"); present(policy)) {
    parse_traffic_policy(r, policy, "spec.trafficPolicy", dr.policy);
    if (Node ports = child(policy, "portLevelSettings"); present(ports)) {
      r.warn(ports, "spec.trafficPolicy.portLevelSettings", "not supported by the waypoint; ignored");
    }
  }
  for_each_item(r, spec, "subsets", "spec", [&](const Node& item, const std::string& path) {
    if (!r.expect_map(item, path)) {
      return;
    }
    SubsetSpec subset;
    auto name = r.required_string(item, "name", path + ".name");
    if (!name) {
      return;
    }
    subset.name = *name;
    for (const auto& other : dr.subsets) {
      if (other.name == subset.name) {
        r.error(child(item, "name"), path + ".name", "subset " + subset.name + " is defined twice");
      }
    }
    subset.labels = r.string_map(child(item, "labels"), path + ".labels");
    if (Node policy = child(item, "trafficPolicy"); present(policy)) {
      subset.has_policy = parse_traffic_policy(r, policy, path + ".trafficPolicy", subset.policy);
    }
    dr.subsets.push_back(std::move(subset));
  });
  if (diag.error_count() == errors_before) {
    out.destination_rules.push_back(std::move(dr));
  }
}

// ---- HTTPRoute ------------------------------------------------------------------------------

namespace {

std::optional<RouteMatch> gateway_match(Reader& r, const Node& node, const std::string& path) {
  if (!r.expect_map(node, path)) {
    return std::nullopt;
  }
  RouteMatch m;
  bool bad = false;
  StringMatch uri;
  uri.kind = StringMatch::Kind::PathPrefix;
  uri.value = "/";
  if (Node p = child(node, "path"); present(p) && r.expect_map(p, path + ".path")) {
    std::string type = "PathPrefix";
    if (Node t = child(p, "type"); present(t)) {
      type = r.string(t, path + ".path.type").value_or("");
    }
    if (Node v = child(p, "value"); present(v)) {
      uri.value = r.string(v, path + ".path.value").value_or("/");
    }
    if (type == "PathPrefix") {
      uri.kind = StringMatch::Kind::PathPrefix;
      if (uri.value.empty() || uri.value.front() != '/') {
        r.error(child(p, "value"), path + ".path.value", "a PathPrefix must start with /");
        bad = true;
      }
    } else if (type == "Exact") {
      uri.kind = StringMatch::Kind::Exact;
    } else if (type == "RegularExpression") {
      uri.kind = StringMatch::Kind::Regex;
      auto re = compile_regex(r, child(p, "value"), path + ".path.value", uri.value, false);
      bad = bad || !re;
      if (re) {
        uri.regex = std::move(*re);
      }
    } else {
      r.error(child(p, "type"), path + ".path.type", "\"" + type + "\" is not PathPrefix, Exact or RegularExpression");
      bad = true;
    }
  }
  m.uri = std::move(uri);
  for_each_item(r, node, "headers", path, [&](const Node& item, const std::string& item_path) {
    auto name = r.required_string(item, "name", item_path + ".name");
    auto value = gateway_value_match(r, item, item_path);
    if (name && value) {
      m.headers.push_back(KeyMatch{lower(*name), std::move(value), false});
    } else {
      bad = true;
    }
  });
  for_each_item(r, node, "queryParams", path, [&](const Node& item, const std::string& item_path) {
    auto name = r.required_string(item, "name", item_path + ".name");
    auto value = gateway_value_match(r, item, item_path);
    if (name && value) {
      m.query_params.push_back(KeyMatch{*name, std::move(value), false});
    } else {
      bad = true;
    }
  });
  if (Node method = child(node, "method"); present(method)) {
    if (auto value = r.nonempty_string(method, path + ".method")) {
      m.method = StringMatch{StringMatch::Kind::Exact, *value, {}, false};
    } else {
      bad = true;
    }
  }
  if (bad) {
    return std::nullopt;
  }
  return m;
}

// A Service backendRef {name, port, weight} (also RequestMirror's backendRef, without weight).
std::optional<DestinationRef> backend_ref(Reader& r, const Node& node, const std::string& path, bool weighted) {
  if (!r.expect_map(node, path)) {
    return std::nullopt;
  }
  std::string kind = "Service";
  if (Node k = child(node, "kind"); present(k)) {
    kind = r.string(k, path + ".kind").value_or("");
  }
  if (kind != "Service") {
    r.error(child(node, "kind"), path + ".kind", "only Service backends are supported");
    return std::nullopt;
  }
  DestinationRef d;
  d.path = path;
  d.host_key = "name";
  auto name = r.required_string(node, "name", path + ".name");
  if (!name) {
    return std::nullopt;
  }
  d.host = *name;
  d.host_at = mark_of(child(node, "name"));
  if (Node port = child(node, "port"); present(port)) {
    auto p = r.port(port, path + ".port");
    if (!p) {
      return std::nullopt;
    }
    d.port = *p;
    d.port_at = mark_of(port);
  }
  d.weight = 1;  // Gateway API default
  if (Node weight = child(node, "weight"); weighted && present(weight)) {
    auto w = r.integer(weight, path + ".weight", 0, 1'000'000, "a weight");
    if (!w) {
      return std::nullopt;
    }
    d.weight = static_cast<uint32_t>(*w);
  }
  return d;
}

void gateway_header_modifier(Reader& r, const Node& node, const std::string& path, HeaderMutation& out) {
  if (!r.expect_map(node, path)) {
    return;
  }
  for (const char* key : {"set", "add"}) {
    auto& target = std::string_view(key) == "set" ? out.set : out.add;
    for_each_item(r, node, key, path, [&](const Node& item, const std::string& item_path) {
      auto name = r.required_string(item, "name", item_path + ".name");
      Node value = child(item, "value");
      auto text = present(value) ? r.string(value, item_path + ".value") : std::optional<std::string>("");
      if (name && text) {
        target.emplace_back(lower(*name), *text);
      }
    });
  }
  for_each_item(r, node, "remove", path, [&](const Node& item, const std::string& item_path) {
    if (auto name = r.nonempty_string(item, item_path)) {
      out.remove.push_back(lower(*name));
    }
  });
}

// HTTPPathModifier {type: ReplaceFullPath|ReplacePrefixMatch, replaceFullPath|replacePrefixMatch}.
bool path_modifier(Reader& r, const Node& node, const std::string& path, PathRewrite& kind, std::string& out) {
  if (!r.expect_map(node, path)) {
    return false;
  }
  auto type = r.required_string(node, "type", path + ".type");
  if (type == "ReplaceFullPath") {
    kind = PathRewrite::Full;
    out = r.string(child(node, "replaceFullPath"), path + ".replaceFullPath").value_or("/");
  } else if (type == "ReplacePrefixMatch") {
    kind = PathRewrite::Prefix;
    out = r.string(child(node, "replacePrefixMatch"), path + ".replacePrefixMatch").value_or("/");
  } else if (type) {
    r.error(child(node, "type"), path + ".type", "\"" + *type + "\" is not ReplaceFullPath or ReplacePrefixMatch");
    return false;
  } else {
    return false;
  }
  return true;
}

bool gateway_filter(Reader& r, const Node& node, const std::string& path, HttpRouteSpec& spec) {
  if (!r.expect_map(node, path)) {
    return false;
  }
  auto type = r.required_string(node, "type", path + ".type");
  if (!type) {
    return false;
  }
  Route& route = spec.route;
  if (*type == "RequestHeaderModifier" || *type == "ResponseHeaderModifier") {
    std::string key = *type == "RequestHeaderModifier" ? "requestHeaderModifier" : "responseHeaderModifier";
    gateway_header_modifier(r, child(node, key), path + "." + key,
                            key == "requestHeaderModifier" ? route.request_headers : route.response_headers);
    return true;
  }
  if (*type == "URLRewrite") {
    Node rewrite = child(node, "urlRewrite");
    if (!r.expect_map(rewrite, path + ".urlRewrite")) {
      return false;
    }
    if (Node host = child(rewrite, "hostname"); present(host)) {
      route.rewrite.authority = r.string(host, path + ".urlRewrite.hostname").value_or("");
    }
    if (Node p = child(rewrite, "path"); present(p)) {
      return path_modifier(r, p, path + ".urlRewrite.path", route.rewrite.path_kind, route.rewrite.path);
    }
    return true;
  }
  if (*type == "RequestRedirect") {
    Node redirect = child(node, "requestRedirect");
    std::string rp = path + ".requestRedirect";
    if (!r.expect_map(redirect, rp)) {
      return false;
    }
    Redirect out;
    out.status = 302;  // Gateway API default
    bool ok = true;
    if (Node s = child(redirect, "scheme"); present(s)) {
      out.scheme = r.string(s, rp + ".scheme").value_or("");
    }
    if (Node h = child(redirect, "hostname"); present(h)) {
      out.authority = r.string(h, rp + ".hostname").value_or("");
    }
    if (Node p = child(redirect, "port"); present(p)) {
      auto port = r.port(p, rp + ".port");
      ok = ok && port;
      out.port = port.value_or(0);
    }
    if (Node code = child(redirect, "statusCode"); present(code)) {
      auto c = r.integer(code, rp + ".statusCode", 301, 302, "a redirect status (301 or 302)");
      ok = ok && c;
      out.status = static_cast<uint16_t>(c.value_or(302));
    }
    if (Node p = child(redirect, "path"); present(p)) {
      ok = path_modifier(r, p, rp + ".path", out.path_kind, out.path) && ok;
    }
    route.redirect = out;
    return ok;
  }
  if (*type == "RequestMirror") {
    Node mirror = child(node, "requestMirror");
    std::string mp = path + ".requestMirror";
    if (!r.expect_map(mirror, mp)) {
      return false;
    }
    auto d = backend_ref(r, child(mirror, "backendRef"), mp + ".backendRef", false);
    if (!d) {
      return false;
    }
    if (Node pct = child(mirror, "percent"); present(pct)) {
      auto value = percentage(r, pct, mp + ".percent");
      if (!value) {
        return false;
      }
      d->per_million = *value;
    } else if (Node fraction = child(mirror, "fraction"); present(fraction)) {
      auto num = r.integer(child(fraction, "numerator"), mp + ".fraction.numerator", 0, 1'000'000);
      int64_t den = 100;
      if (Node dn = child(fraction, "denominator"); present(dn)) {
        den = r.integer(dn, mp + ".fraction.denominator", 1, 1'000'000).value_or(0);
      }
      if (!num || den == 0 || *num > den) {
        r.error(fraction, mp + ".fraction", "bad fraction (numerator ≤ denominator)");
        return false;
      }
      d->per_million = static_cast<uint32_t>(*num * 1'000'000 / den);
    }
    spec.mirrors.push_back(std::move(*d));
    return true;
  }
  r.error(child(node, "type"), path + ".type",
          "\"" + *type +
              "\" is not supported (RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect, "
              "RequestMirror)");
  return false;
}

}  // namespace

void parse_http_route(const Node& doc, const ObjectMeta& meta, const Bootstrap& bootstrap, Diagnostics& diag,
                      RoutingResources& out) {
  size_t errors_before = diag.error_count();
  Reader r(diag, "HTTPRoute " + meta.name);
  HttpRouteResource route;
  route.name = meta.name;
  route.at = mark_of(doc);
  Node spec = child(doc, "spec");
  if (!present(spec)) {
    r.error(doc, "spec", "required (parentRefs and rules)");
    return;
  }
  if (!r.expect_map(spec, "spec")) {
    return;
  }
  for_each_item(r, spec, "parentRefs", "spec", [&](const Node& item, const std::string& path) {
    if (!r.expect_map(item, path)) {
      return;
    }
    auto field = [&](const char* key, const char* fallback) {
      Node n = child(item, key);
      return present(n) ? r.string(n, path + "." + key).value_or("") : std::string(fallback);
    };
    std::string kind = field("kind", "Gateway");
    std::string group = field("group", "gateway.networking.k8s.io");
    std::string ns = field("namespace", "");
    if (kind != "Service" || !(group.empty() || group == "core")) {
      r.warn(item, path, "parent " + group + "/" + kind + " is not a Service; the waypoint uses only Service parents");
      return;
    }
    if (!ns.empty() && ns != bootstrap.namespace_) {
      r.warn(child(item, "namespace"), path + ".namespace", "Service in namespace " + ns + " is not this waypoint's");
      return;
    }
    ParentRef parent;
    parent.path = path;
    auto name = r.required_string(item, "name", path + ".name");
    if (!name) {
      return;
    }
    parent.service = *name;
    parent.at = mark_of(child(item, "name"));
    if (Node port = child(item, "port"); present(port)) {
      parent.port = r.port(port, path + ".port").value_or(0);
    }
    route.parents.push_back(std::move(parent));
  });
  size_t index = 0;
  for_each_item(r, spec, "rules", "spec", [&](const Node& item, const std::string& path) {
    if (!r.expect_map(item, path)) {
      return;
    }
    HttpRouteSpec rule;
    rule.route.source = "HTTPRoute " + route.name;
    rule.route.name = route.name + "." + std::to_string(index++);
    if (Node name = child(item, "name"); present(name)) {
      rule.route.name = r.string(name, path + ".name").value_or(rule.route.name);
    }
    bool bad = false;
    for_each_item(r, item, "matches", path, [&](const Node& m, const std::string& match_path) {
      if (auto match = gateway_match(r, m, match_path)) {
        rule.route.matches.push_back(std::move(*match));
        rule.match_ports.push_back(0);
      } else {
        bad = true;
      }
    });
    if (rule.route.matches.empty() && !bad) {  // Gateway API default: path prefix "/"
      RouteMatch all;
      all.uri = StringMatch{StringMatch::Kind::PathPrefix, "/", {}, false};
      rule.route.matches.push_back(std::move(all));
      rule.match_ports.push_back(0);
    }
    for_each_item(r, item, "filters", path, [&](const Node& f, const std::string& filter_path) {
      bad = !gateway_filter(r, f, filter_path, rule) || bad;
    });
    for_each_item(r, item, "backendRefs", path, [&](const Node& b, const std::string& backend_path) {
      if (auto d = backend_ref(r, b, backend_path, true)) {
        if (present(child(b, "filters"))) {
          r.warn(child(b, "filters"), backend_path + ".filters", "per-backend filters are not supported; ignored");
        }
        rule.destinations.push_back(std::move(*d));
      } else {
        bad = true;
      }
    });
    if (rule.route.redirect && !rule.destinations.empty()) {
      r.error(child(item, "backendRefs"), path + ".backendRefs", "a rule with a RequestRedirect has no backendRefs");
      bad = true;
    }
    if (Node timeouts = child(item, "timeouts");
        present(timeouts) && r.expect_map(timeouts, path + ".timeouts")) {
      auto request = duration_field(r, timeouts, "request", path + ".timeouts", bad);
      auto backend = duration_field(r, timeouts, "backendRequest", path + ".timeouts", bad);
      if (request && request->count() > 0) {
        rule.route.timeout = request;
      }
      if (backend && backend->count() > 0) {
        rule.route.retry.per_try_timeout = backend;
      }
    }
    if (!bad) {
      route.rules.push_back(std::move(rule));
    }
  });
  if (route.parents.empty() && diag.error_count() == errors_before) {
    r.warn(doc, "spec.parentRefs", "no Service parent; not used by the waypoint");
    return;
  }
  if (diag.error_count() == errors_before) {
    out.http_routes.push_back(std::move(route));
  }
}

}  // namespace wp::config
