#include <catch2/catch.hpp>

#include "waypoint/filters/authz.h"
#include "waypoint/http/headers.h"

#include <functional>

using wp::filters::Action;
using wp::filters::Attributes;
using wp::filters::Cidr;
using wp::filters::Condition;
using wp::filters::Operation;
using wp::filters::Policy;
using wp::filters::PolicySet;
using wp::filters::Rule;
using wp::filters::Source;
using wp::filters::StringMatch;
using wp::net::IpAddr;

namespace {

constexpr const char* kPrincipal = "spiffe://cluster.local/ns/default/sa/productpage";

IpAddr ip(const char* text) {
  auto a = IpAddr::parse(text);
  REQUIRE(a.has_value());
  return *a;
}

Cidr cidr(const char* text) {
  auto c = Cidr::parse(text);
  REQUIRE(c.has_value());
  return *c;
}

std::vector<StringMatch> pats(std::initializer_list<const char*> patterns, bool ignore_case = false) {
  std::vector<StringMatch> out;
  for (const char* p : patterns) {
    out.push_back(StringMatch::parse(p, ignore_case));
  }
  return out;
}

std::vector<Cidr> cidrs(std::initializer_list<const char*> texts) {
  std::vector<Cidr> out;
  for (const char* t : texts) {
    out.push_back(cidr(t));
  }
  return out;
}

// A request from productpage (10.0.0.1, originally 192.168.1.7) to reviews (10.0.1.5:9080).
struct Request {
  wp::http::HeaderMap headers;
  Attributes a;
  Request() {
    headers.add("X-User", "alice");
    headers.add("x-empty", "");
    a.principal = kPrincipal;
    a.source_ip = ip("10.0.0.1");
    a.remote_ip = ip("192.168.1.7");
    a.destination_ip = ip("10.0.1.5");
    a.destination_port = 9080;
    a.sni = "outbound_.9080_._.reviews.default.svc.cluster.local";
    a.http = true;
    a.host = "reviews:9080";
    a.method = "GET";
    a.path = "/api/v1/reviews";
    a.header = [](const void* ctx, std::string_view name) {
      return static_cast<const wp::http::HeaderMap*>(ctx)->get(name);
    };
    a.header_ctx = &headers;
  }
  Request(const Request&) = delete;  // `a` points at `headers`
};

Policy policy(const char* name, Action action, std::vector<Rule> rules) {
  Policy p;
  p.name = name;
  p.action = action;
  p.rules = std::move(rules);
  return p;
}

// Whether a set holding one policy with the single rule `rule` allows the request. (Returns only the
// verdict's bool: decided_by would point into the set, which dies here.)
bool allowed_by_one(Action action, Rule rule, const Attributes& a) {
  PolicySet set;
  set.add(policy("ns/p", action, {std::move(rule)}));
  return set.evaluate(a).allowed;
}

// Whether a single-rule ALLOW policy built by `build` lets the request through.
bool allows(const std::function<void(Rule&)>& build, const Attributes& a) {
  Rule r;
  build(r);
  return allowed_by_one(Action::Allow, std::move(r), a);
}

struct RuleCase {
  const char* name;
  std::function<void(Rule&)> build;
  std::function<void(Attributes&)> tweak;  // may be empty
  bool matches;
};

void run(const std::vector<RuleCase>& cases) {
  for (const auto& c : cases) {
    INFO(c.name);
    Request req;
    if (c.tweak) {
      c.tweak(req.a);
    }
    CHECK(allows(c.build, req.a) == c.matches);
  }
}

void no_principal(Attributes& a) {
  a.principal = "";
}

std::function<void(Rule&)> from(std::function<void(Source&)> f) {
  return [f](Rule& r) { f(r.from.emplace_back()); };
}
std::function<void(Rule&)> to(std::function<void(Operation&)> f) {
  return [f](Rule& r) { f(r.to.emplace_back()); };
}
std::function<void(Rule&)> when(Condition::Key key, std::function<void(Condition&)> f) {
  return [key, f](Rule& r) {
    Condition& c = r.when.emplace_back();
    c.key = key;
    f(c);
  };
}

}  // namespace

TEST_CASE("authz: StringMatch parses Istio's wildcard forms", "[authz]") {
  using K = StringMatch::Kind;
  struct Case {
    const char* pattern;
    K kind;
    const char* value;
  };
  const Case cases[] = {
      {"*", K::Any, ""},
      {"abc*", K::Prefix, "abc"},
      {"*abc", K::Suffix, "abc"},
      {"abc", K::Exact, "abc"},
      {"", K::Exact, ""},
      {"a*b", K::Exact, "a*b"},
      {"**", K::Suffix, "*"},
      {"*a*", K::Suffix, "a*"},
      {"/api/*", K::Prefix, "/api/"},
      {"*.com", K::Suffix, ".com"},
  };
  for (const auto& c : cases) {
    INFO(c.pattern);
    auto m = StringMatch::parse(c.pattern, true);
    CHECK(m.kind == c.kind);
    CHECK(m.value == c.value);
    CHECK(m.ignore_case);
  }
  CHECK_FALSE(StringMatch::parse("abc").ignore_case);
}

TEST_CASE("authz: StringMatch matches exact, prefix, suffix and any", "[authz]") {
  struct Case {
    const char* pattern;
    bool ignore_case;
    const char* input;
    bool matches;
  };
  const Case cases[] = {
      {"*", false, "", true},          {"*", false, "anything", true},
      {"abc", false, "abc", true},     {"abc", false, "abcd", false},
      {"abc", false, "ab", false},     {"abc", false, "ABC", false},
      {"abc", true, "ABC", true},      {"", false, "", true},
      {"", false, "x", false},         {"abc*", false, "abc", true},
      {"abc*", false, "abcdef", true}, {"abc*", false, "xabc", false},
      {"abc*", false, "ab", false},    {"abc*", true, "ABCdef", true},
      {"*abc", false, "abc", true},    {"*abc", false, "xyzabc", true},
      {"*abc", false, "abcx", false},  {"*abc", false, "bc", false},
      {"*abc", true, "XYZaBc", true},  {"*abc", false, "XYZaBc", false},
      {"a*b", false, "a*b", true},  // a '*' in the middle is literal
      {"a*b", false, "axb", false},
  };
  for (const auto& c : cases) {
    INFO(c.pattern << " ~ " << c.input << " icase=" << c.ignore_case);
    CHECK(StringMatch::parse(c.pattern, c.ignore_case).matches(c.input) == c.matches);
  }
}

TEST_CASE("authz: Cidr parses IPv4 and IPv6 prefixes and clears host bits", "[authz]") {
  struct Case {
    const char* text;
    const char* base;  // nullptr: rejected
    int prefix;
  };
  const Case cases[] = {
      {"10.0.0.0/8", "10.0.0.0", 8},
      {"10.1.2.3/8", "10.0.0.0", 8},
      {"10.1.2.3", "10.1.2.3", 32},
      {"10.1.2.3/32", "10.1.2.3", 32},
      {"0.0.0.0/0", "0.0.0.0", 0},
      {"255.255.255.255/0", "0.0.0.0", 0},
      {"172.31.255.255/12", "172.16.0.0", 12},
      {"192.168.1.129/25", "192.168.1.128", 25},
      {"2001:db8::/32", "2001:db8::", 32},
      {"2001:db8:ffff::1/33", "2001:db8:8000::", 33},
      {"::1", "::1", 128},
      {"::1/128", "::1", 128},
      {"::/0", "::", 0},
      {"fe80::1234/10", "fe80::", 10},
      {"::ffff:10.1.2.3/104", "::ffff:10.0.0.0", 104},
      {"10.0.0.0/33", nullptr, 0},
      {"::/129", nullptr, 0},
      {"10.0.0.0/", nullptr, 0},
      {"10.0.0.0/+8", nullptr, 0},
      {"10.0.0.0/-1", nullptr, 0},
      {"10.0.0.0/08", nullptr, 0},
      {"10.0.0.0/8a", nullptr, 0},
      {"10.0.0.0/ 8", nullptr, 0},
      {"10.0.0.0/8/8", nullptr, 0},
      {"10.0.0.0/1000", nullptr, 0},
      {"/8", nullptr, 0},
      {"", nullptr, 0},
      {"10.0.0/8", nullptr, 0},
      {"10.0.0.256/8", nullptr, 0},
      {" 10.0.0.0/8", nullptr, 0},
      {"10.0.0.0 /8", nullptr, 0},
      {"[::1]", nullptr, 0},
      {"[2001:db8::]/32", nullptr, 0},
      {"fe80::1%eth0/64", nullptr, 0},
      {"example.com/8", nullptr, 0},
      {"garbage", nullptr, 0},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto parsed = Cidr::parse(c.text);
    if (c.base == nullptr) {
      CHECK_FALSE(parsed.has_value());
    } else {
      REQUIRE(parsed.has_value());
      CHECK(parsed->base.to_string() == c.base);
      CHECK(int(parsed->prefix) == c.prefix);
    }
  }
}

TEST_CASE("authz: Cidr contains respects the prefix length and never crosses families", "[authz]") {
  struct Case {
    const char* cidr;
    const char* ip;
    bool contains;
  };
  const Case cases[] = {
      {"10.0.0.0/8", "10.255.1.2", true},
      {"10.0.0.0/8", "11.0.0.0", false},
      {"10.1.2.3/8", "10.9.9.9", true},  // host bits cleared
      {"10.1.2.3", "10.1.2.3", true},
      {"10.1.2.3", "10.1.2.4", false},
      {"0.0.0.0/0", "255.255.255.255", true},
      {"0.0.0.0/0", "::", false},
      {"172.16.0.0/12", "172.31.255.255", true},
      {"172.16.0.0/12", "172.32.0.0", false},
      {"172.16.0.0/12", "172.15.255.255", false},
      {"192.168.1.128/25", "192.168.1.127", false},
      {"192.168.1.128/25", "192.168.1.255", true},
      {"2001:db8::/32", "2001:db8:1234::1", true},
      {"2001:db8::/32", "2001:db9::1", false},
      {"2001:db8::/33", "2001:db8:7fff::1", true},
      {"2001:db8::/33", "2001:db8:8000::1", false},
      {"::1", "::1", true},
      {"::1/128", "::2", false},
      {"::/0", "2001:db8::1", true},
      {"::/0", "10.0.0.1", false},
      {"fe80::/10", "febf::1", true},
      {"fe80::/10", "fec0::1", false},
      // An IPv4-mapped IPv6 address is an IPv6 address: it does not match an IPv4 CIDR, and an
      // IPv4 address does not match a mapped IPv6 CIDR.
      {"10.0.0.0/8", "::ffff:10.0.0.1", false},
      {"::ffff:10.0.0.0/104", "10.0.0.1", false},
      {"::ffff:10.0.0.0/104", "::ffff:10.0.0.1", true},
  };
  for (const auto& c : cases) {
    INFO(c.cidr << " contains " << c.ip);
    CHECK(cidr(c.cidr).contains(ip(c.ip)) == c.contains);
  }
}

TEST_CASE("authz: SPIFFE IDs yield a namespace and service account only in the exact shape", "[authz]") {
  struct Case {
    const char* id;
    const char* ns;  // "" when not of the shape
    const char* sa;
  };
  const Case cases[] = {
      {"spiffe://cluster.local/ns/default/sa/productpage", "default", "default/productpage"},
      {"spiffe://td/ns/a/sa/b", "a", "a/b"},
      {"spiffe://td/ns/sa/sa/ns", "sa", "sa/ns"},
      {"", "", ""},
      {"cluster.local/ns/default/sa/x", "", ""},
      {"SPIFFE://td/ns/a/sa/b", "", ""},
      {"http://td/ns/a/sa/b", "", ""},
      {"spiffe://", "", ""},
      {"spiffe:///ns/a/sa/b", "", ""},
      {"spiffe://td/ns//sa/b", "", ""},
      {"spiffe://td/ns/a/sa/", "", ""},
      {"spiffe://td/ns/a/sa", "", ""},
      {"spiffe://td/ns/a", "", ""},
      {"spiffe://td/ns/a/sa/b/", "", ""},
      {"spiffe://td/ns/a/sa/b/c", "", ""},
      {"spiffe://td/x/ns/a/sa/b", "", ""},
      {"spiffe://td/NS/a/sa/b", "", ""},
      {"spiffe://td/ns/a/SA/b", "", ""},
      {"spiffe://td/ns/a/xx/b", "", ""},
      {"spiffe://td/sa/b/ns/a", "", ""},
      {"spiffe://td//ns/a/sa/b", "", ""},
  };
  for (const auto& c : cases) {
    INFO(c.id);
    CHECK(wp::filters::spiffe_namespace(c.id) == c.ns);
    CHECK(wp::filters::spiffe_service_account(c.id) == c.sa);
  }
  std::string_view id = kPrincipal;
  auto ns = wp::filters::spiffe_namespace(id);
  CHECK((ns.data() >= id.data() && ns.data() + ns.size() <= id.data() + id.size()));
}

TEST_CASE("authz: from.source fields and their not-forms", "[authz]") {
  run({
      {"principal exact, without spiffe://",
       from([](Source& s) { s.principals = pats({"cluster.local/ns/default/sa/productpage"}); }),
       {},
       true},
      {"principal with spiffe:// in the pattern does not match",
       from([](Source& s) { s.principals = pats({kPrincipal}); }),
       {},
       false},
      {"principal other", from([](Source& s) { s.principals = pats({"cluster.local/ns/default/sa/x"}); }), {}, false},
      {"principals OR",
       from([](Source& s) {
         s.principals = pats({"x", "*/sa/productpage"});
       }),
       {},
       true},
      {"principal prefix", from([](Source& s) { s.principals = pats({"cluster.local/ns/default/*"}); }), {}, true},
      {"principal * needs an identity", from([](Source& s) { s.principals = pats({"*"}); }), no_principal, false},
      {"principal * with an identity", from([](Source& s) { s.principals = pats({"*"}); }), {}, true},
      {"not principal listed", from([](Source& s) { s.not_principals = pats({"*/sa/productpage"}); }), {}, false},
      {"not principal unlisted", from([](Source& s) { s.not_principals = pats({"*/sa/other"}); }), {}, true},
      {"not principal * without identity (deny-unauthenticated idiom)",
       from([](Source& s) { s.not_principals = pats({"*"}); }), no_principal, true},
      {"not principal * with identity", from([](Source& s) { s.not_principals = pats({"*"}); }), {}, false},

      {"namespace exact", from([](Source& s) { s.namespaces = pats({"default"}); }), {}, true},
      {"namespace prefix", from([](Source& s) { s.namespaces = pats({"def*"}); }), {}, true},
      {"namespace other", from([](Source& s) { s.namespaces = pats({"other"}); }), {}, false},
      {"namespace without identity", from([](Source& s) { s.namespaces = pats({"*"}); }), no_principal, false},
      {"namespace of a non-k8s SPIFFE ID", from([](Source& s) { s.namespaces = pats({"*"}); }),
       [](Attributes& a) { a.principal = "spiffe://td/workload/x"; }, false},
      {"not namespace listed", from([](Source& s) { s.not_namespaces = pats({"default"}); }), {}, false},
      {"not namespace unlisted", from([](Source& s) { s.not_namespaces = pats({"other"}); }), {}, true},
      {"not namespace without identity", from([](Source& s) { s.not_namespaces = pats({"default"}); }), no_principal,
       true},

      {"service account exact", from([](Source& s) { s.service_accounts = pats({"default/productpage"}); }), {}, true},
      {"service account ns/*", from([](Source& s) { s.service_accounts = pats({"default/*"}); }), {}, true},
      {"service account */sa", from([](Source& s) { s.service_accounts = pats({"*/productpage"}); }), {}, true},
      {"service account partial", from([](Source& s) { s.service_accounts = pats({"default/product*"}); }), {}, true},
      {"service account bare sa", from([](Source& s) { s.service_accounts = pats({"productpage"}); }), {}, false},
      {"service account longer",
       from([](Source& s) { s.service_accounts = pats({"default/productpage/"}); }),
       {},
       false},
      {"service account other ns",
       from([](Source& s) { s.service_accounts = pats({"other/productpage"}); }),
       {},
       false},
      {"service account without identity", from([](Source& s) { s.service_accounts = pats({"*"}); }), no_principal,
       false},
      {"not service account listed",
       from([](Source& s) { s.not_service_accounts = pats({"default/productpage"}); }),
       {},
       false},
      {"not service account unlisted",
       from([](Source& s) { s.not_service_accounts = pats({"default/ratings"}); }),
       {},
       true},
      {"not service account without identity",
       from([](Source& s) { s.not_service_accounts = pats({"default/productpage"}); }), no_principal, true},

      {"ip block", from([](Source& s) { s.ip_blocks = cidrs({"10.0.0.0/8"}); }), {}, true},
      {"ip block other", from([](Source& s) { s.ip_blocks = cidrs({"10.0.0.2"}); }), {}, false},
      {"ip block is source.ip, not remote.ip",
       from([](Source& s) { s.ip_blocks = cidrs({"192.168.0.0/16"}); }),
       {},
       false},
      {"ip blocks OR",
       from([](Source& s) {
         s.ip_blocks = cidrs({"2001:db8::/32", "10.0.0.1"});
       }),
       {},
       true},
      {"not ip block listed", from([](Source& s) { s.not_ip_blocks = cidrs({"10.0.0.0/24"}); }), {}, false},
      {"not ip block unlisted", from([](Source& s) { s.not_ip_blocks = cidrs({"10.0.1.0/24"}); }), {}, true},
      {"remote ip block", from([](Source& s) { s.remote_ip_blocks = cidrs({"192.168.0.0/16"}); }), {}, true},
      {"remote ip block is remote.ip", from([](Source& s) { s.remote_ip_blocks = cidrs({"10.0.0.0/8"}); }), {}, false},
      {"not remote ip block listed",
       from([](Source& s) { s.not_remote_ip_blocks = cidrs({"192.168.1.7"}); }),
       {},
       false},
      {"not remote ip block unlisted",
       from([](Source& s) { s.not_remote_ip_blocks = cidrs({"10.0.0.0/8"}); }),
       {},
       true},

      {"empty source matches", from([](Source&) {}), {}, true},
      {"fields AND: all match",
       from([](Source& s) {
         s.namespaces = pats({"default"});
         s.ip_blocks = cidrs({"10.0.0.0/8"});
       }),
       {},
       true},
      {"fields AND: one fails",
       from([](Source& s) {
         s.namespaces = pats({"default"});
         s.ip_blocks = cidrs({"11.0.0.0/8"});
       }),
       {},
       false},
      {"field and its not-form together",
       from([](Source& s) {
         s.ip_blocks = cidrs({"10.0.0.0/8"});
         s.not_ip_blocks = cidrs({"10.0.0.1"});
       }),
       {},
       false},
      {"sources OR",
       [](Rule& r) {
         r.from.emplace_back().namespaces = pats({"other"});
         r.from.emplace_back().ip_blocks = cidrs({"10.0.0.0/8"});
       },
       {},
       true},
  });
}

TEST_CASE("authz: to.operation fields and their not-forms", "[authz]") {
  run({
      {"host exact with port", to([](Operation& o) { o.hosts = pats({"reviews:9080"}, true); }), {}, true},
      {"host is case-insensitive", to([](Operation& o) { o.hosts = pats({"REVIEWS:9080"}, true); }), {}, true},
      {"host without the port matches the Host value with one (as Istio)",
       to([](Operation& o) { o.hosts = pats({"reviews"}, true); }),
       {},
       true},
      {"a host pattern with another port does not match",
       to([](Operation& o) { o.hosts = pats({"reviews:8080"}, true); }),
       {},
       false},
      {"not-host without the port excludes the Host value with one",
       to([](Operation& o) { o.not_hosts = pats({"reviews"}, true); }),
       {},
       false},
      {"an IPv6 authority keeps its brackets",
       to([](Operation& o) { o.hosts = pats({"[2001:db8::1]"}, true); }),
       [](Attributes& a) { a.host = "[2001:db8::1]:9080"; },
       true},
      {"host prefix", to([](Operation& o) { o.hosts = pats({"reviews*"}, true); }), {}, true},
      {"host suffix", to([](Operation& o) { o.hosts = pats({"*:9080"}, true); }), {}, true},
      {"host suffix, other case", to([](Operation& o) { o.hosts = pats({"*EWS:9080"}, true); }), {}, true},
      {"host other", to([](Operation& o) { o.hosts = pats({"ratings*"}, true); }), {}, false},
      {"not host listed", to([](Operation& o) { o.not_hosts = pats({"Reviews*"}, true); }), {}, false},
      {"not host unlisted", to([](Operation& o) { o.not_hosts = pats({"ratings*"}, true); }), {}, true},

      {"port",
       to([](Operation& o) {
         o.ports = {80, 9080};
       }),
       {},
       true},
      {"port other", to([](Operation& o) { o.ports = {80}; }), {}, false},
      {"not port listed", to([](Operation& o) { o.not_ports = {9080}; }), {}, false},
      {"not port unlisted", to([](Operation& o) { o.not_ports = {80}; }), {}, true},

      {"method",
       to([](Operation& o) {
         o.methods = {"POST", "GET"};
       }),
       {},
       true},
      {"method is case-sensitive", to([](Operation& o) { o.methods = {"get"}; }), {}, false},
      {"method other", to([](Operation& o) { o.methods = {"POST"}; }), {}, false},
      {"not method listed", to([](Operation& o) { o.not_methods = {"GET"}; }), {}, false},
      {"not method unlisted", to([](Operation& o) { o.not_methods = {"DELETE"}; }), {}, true},

      {"path exact", to([](Operation& o) { o.paths = pats({"/api/v1/reviews"}); }), {}, true},
      {"path exact is not a prefix", to([](Operation& o) { o.paths = pats({"/api"}); }), {}, false},
      {"path prefix", to([](Operation& o) { o.paths = pats({"/api/*"}); }), {}, true},
      {"path suffix", to([](Operation& o) { o.paths = pats({"*/reviews"}); }), {}, true},
      {"path is case-sensitive", to([](Operation& o) { o.paths = pats({"/API/*"}); }), {}, false},
      {"path * matches an empty path", to([](Operation& o) { o.paths = pats({"*"}); }),
       [](Attributes& a) { a.path = ""; }, true},
      {"not path listed", to([](Operation& o) { o.not_paths = pats({"/api/*"}); }), {}, false},
      {"not path unlisted", to([](Operation& o) { o.not_paths = pats({"/admin/*"}); }), {}, true},

      {"empty operation matches", to([](Operation&) {}), {}, true},
      {"fields AND",
       to([](Operation& o) {
         o.methods = {"GET"};
         o.paths = pats({"/admin/*"});
       }),
       {},
       false},
      {"operations OR",
       [](Rule& r) {
         r.to.emplace_back().methods = {"POST"};
         r.to.emplace_back().ports = {9080};
       },
       {},
       true},
  });
}

TEST_CASE("authz: when conditions for every key", "[authz]") {
  using K = Condition::Key;
  auto values = [](std::initializer_list<const char*> v) { return [v](Condition& c) { c.values = pats(v); }; };
  auto not_values = [](std::initializer_list<const char*> v) { return [v](Condition& c) { c.not_values = pats(v); }; };
  auto header = [](const char* name, std::function<void(Condition&)> f) {
    return [name, f](Condition& c) {
      c.header = name;
      f(c);
    };
  };
  run({
      {"header value", when(K::RequestHeader, header("x-user", values({"alice"}))), {}, true},
      {"header value other", when(K::RequestHeader, header("x-user", values({"bob"}))), {}, false},
      {"header prefix", when(K::RequestHeader, header("x-user", values({"ali*"}))), {}, true},
      {"header value is case-sensitive", when(K::RequestHeader, header("x-user", values({"Alice"}))), {}, false},
      {"header missing", when(K::RequestHeader, header("x-missing", values({"*"}))), {}, false},
      {"header present but empty, *", when(K::RequestHeader, header("x-empty", values({"*"}))), {}, true},
      {"not header value listed", when(K::RequestHeader, header("x-user", not_values({"alice"}))), {}, false},
      {"not header value unlisted", when(K::RequestHeader, header("x-user", not_values({"bob"}))), {}, true},
      {"not header value, header missing", when(K::RequestHeader, header("x-missing", not_values({"*"}))), {}, true},
      {"header without a header map", when(K::RequestHeader, header("x-user", values({"*"}))),
       [](Attributes& a) { a.header = nullptr; }, false},

      {"source.ip", when(K::SourceIp, [](Condition& c) { c.cidrs = cidrs({"10.0.0.0/8"}); }), {}, true},
      {"source.ip other", when(K::SourceIp, [](Condition& c) { c.cidrs = cidrs({"192.168.0.0/16"}); }), {}, false},
      {"not source.ip", when(K::SourceIp, [](Condition& c) { c.not_cidrs = cidrs({"10.0.0.1"}); }), {}, false},
      {"remote.ip", when(K::RemoteIp, [](Condition& c) { c.cidrs = cidrs({"192.168.0.0/16"}); }), {}, true},
      {"remote.ip other", when(K::RemoteIp, [](Condition& c) { c.cidrs = cidrs({"10.0.0.0/8"}); }), {}, false},
      {"not remote.ip", when(K::RemoteIp, [](Condition& c) { c.not_cidrs = cidrs({"10.0.0.0/8"}); }), {}, true},
      {"destination.ip", when(K::DestinationIp, [](Condition& c) { c.cidrs = cidrs({"10.0.1.0/24"}); }), {}, true},
      {"destination.ip other",
       when(K::DestinationIp, [](Condition& c) { c.cidrs = cidrs({"10.0.0.0/24"}); }),
       {},
       false},
      {"not destination.ip",
       when(K::DestinationIp, [](Condition& c) { c.not_cidrs = cidrs({"10.0.1.5"}); }),
       {},
       false},
      {"cidrs and not_cidrs",
       when(K::SourceIp,
            [](Condition& c) {
              c.cidrs = cidrs({"10.0.0.0/8"});
              c.not_cidrs = cidrs({"10.0.0.2"});
            }),
       {},
       true},

      {"source.namespace", when(K::SourceNamespace, values({"default"})), {}, true},
      {"source.namespace other", when(K::SourceNamespace, values({"other"})), {}, false},
      {"source.namespace without identity", when(K::SourceNamespace, values({"*"})), no_principal, false},
      {"not source.namespace", when(K::SourceNamespace, not_values({"default"})), {}, false},
      {"not source.namespace without identity", when(K::SourceNamespace, not_values({"default"})), no_principal, true},

      {"source.principal without spiffe://",
       when(K::SourcePrincipal, values({"cluster.local/ns/default/sa/productpage"})),
       {},
       true},
      {"source.principal with spiffe:// does not match", when(K::SourcePrincipal, values({kPrincipal})), {}, false},
      {"source.principal suffix", when(K::SourcePrincipal, values({"*/sa/productpage"})), {}, true},
      {"source.principal without identity", when(K::SourcePrincipal, values({"*"})), no_principal, false},
      {"not source.principal", when(K::SourcePrincipal, not_values({"*"})), {}, false},
      {"not source.principal without identity", when(K::SourcePrincipal, not_values({"*"})), no_principal, true},

      {"source.serviceAccount", when(K::SourceServiceAccount, values({"default/productpage"})), {}, true},
      {"source.serviceAccount other", when(K::SourceServiceAccount, values({"default/ratings"})), {}, false},
      {"not source.serviceAccount", when(K::SourceServiceAccount, not_values({"default/*"})), {}, false},
      {"source.serviceAccount without identity", when(K::SourceServiceAccount, values({"*"})), no_principal, false},

      {"destination.port", when(K::DestinationPort, [](Condition& c) { c.ports = {9080}; }), {}, true},
      {"destination.port other", when(K::DestinationPort, [](Condition& c) { c.ports = {80}; }), {}, false},
      {"not destination.port", when(K::DestinationPort, [](Condition& c) { c.not_ports = {9080}; }), {}, false},
      {"not destination.port unlisted", when(K::DestinationPort, [](Condition& c) { c.not_ports = {80}; }), {}, true},

      {"connection.sni", when(K::ConnectionSni, values({"*.reviews.default.svc.cluster.local"})), {}, true},
      {"connection.sni other", when(K::ConnectionSni, values({"ratings*"})), {}, false},
      {"connection.sni absent", when(K::ConnectionSni, values({"*"})), [](Attributes& a) { a.sni = ""; }, false},
      {"not connection.sni", when(K::ConnectionSni, not_values({"outbound_*"})), {}, false},
      {"not connection.sni absent", when(K::ConnectionSni, not_values({"*"})), [](Attributes& a) { a.sni = ""; }, true},

      {"empty condition matches", when(K::SourceNamespace, [](Condition&) {}), {}, true},
      {"conditions AND",
       [](Rule& r) {
         when(K::DestinationPort, [](Condition& c) { c.ports = {9080}; })(r);
         when(K::SourceNamespace, [](Condition& c) { c.values = pats({"other"}); })(r);
       },
       {},
       false},
      {"from, to and when AND",
       [](Rule& r) {
         r.from.emplace_back().namespaces = pats({"default"});
         r.to.emplace_back().methods = {"GET"};
         when(K::RequestHeader, [](Condition& c) {
           c.header = "x-user";
           c.values = pats({"alice"});
         })(r);
       },
       {},
       true},
  });
}

TEST_CASE("authz: evaluation order, verdict and the deciding policy", "[authz]") {
  Request req;
  Rule get_rule;
  get_rule.to.emplace_back().methods = {"GET"};
  Rule post_rule;
  post_rule.to.emplace_back().methods = {"POST"};
  Rule from_default;
  from_default.from.emplace_back().namespaces = pats({"default"});

  SECTION("no policy: allowed, decided by nobody") {
    PolicySet set;
    CHECK(set.empty());
    auto v = set.evaluate(req.a);
    CHECK(v.allowed);
    CHECK_FALSE(v.audited);
    CHECK(v.decided_by == nullptr);
    CHECK(v.rule == -1);
  }
  SECTION("DENY beats ALLOW, whatever the order of adding") {
    PolicySet set;
    set.add(policy("ns/allow", Action::Allow, {Rule{}}));
    set.add(policy("ns/deny", Action::Deny, {post_rule, get_rule}));
    CHECK_FALSE(set.empty());
    auto v = set.evaluate(req.a);
    CHECK_FALSE(v.allowed);
    REQUIRE(v.decided_by != nullptr);
    CHECK(v.decided_by->name == "ns/deny");
    CHECK(v.rule == 1);
  }
  SECTION("the first matching DENY policy decides") {
    PolicySet set;
    set.add(policy("ns/deny-post", Action::Deny, {post_rule}));
    set.add(policy("ns/deny-get", Action::Deny, {get_rule}));
    set.add(policy("ns/deny-default", Action::Deny, {from_default}));
    auto v = set.evaluate(req.a);
    CHECK_FALSE(v.allowed);
    REQUIRE(v.decided_by != nullptr);
    CHECK(v.decided_by->name == "ns/deny-get");
    CHECK(v.rule == 0);
  }
  SECTION("only non-matching DENY policies: allowed") {
    PolicySet set;
    set.add(policy("ns/deny", Action::Deny, {post_rule}));
    auto v = set.evaluate(req.a);
    CHECK(v.allowed);
    CHECK(v.decided_by == nullptr);
    CHECK(v.rule == -1);
  }
  SECTION("the first matching ALLOW policy and rule are reported") {
    PolicySet set;
    set.add(policy("ns/allow-post", Action::Allow, {post_rule}));
    set.add(policy("ns/allow-get", Action::Allow, {post_rule, post_rule, get_rule, from_default}));
    set.add(policy("ns/allow-all", Action::Allow, {Rule{}}));
    auto v = set.evaluate(req.a);
    CHECK(v.allowed);
    REQUIRE(v.decided_by != nullptr);
    CHECK(v.decided_by->name == "ns/allow-get");
    CHECK(v.decided_by->action == Action::Allow);
    CHECK(v.rule == 2);
  }
  SECTION("ALLOW policies present but none matching: denied by nobody") {
    PolicySet set;
    set.add(policy("ns/allow-post", Action::Allow, {post_rule}));
    auto v = set.evaluate(req.a);
    CHECK_FALSE(v.allowed);
    CHECK(v.decided_by == nullptr);
    CHECK(v.rule == -1);
  }
  SECTION("allow-nothing: an ALLOW policy without rules denies everything") {
    PolicySet set;
    set.add(policy("ns/allow-nothing", Action::Allow, {}));
    auto v = set.evaluate(req.a);
    CHECK_FALSE(v.allowed);
    CHECK(v.decided_by == nullptr);
  }
  SECTION("a DENY policy without rules denies nothing") {
    PolicySet set;
    set.add(policy("ns/deny-nothing", Action::Deny, {}));
    CHECK(set.evaluate(req.a).allowed);
  }
  SECTION("allow-all: a rule {} matches everything, even without identity or HTTP") {
    PolicySet set;
    set.add(policy("ns/allow-all", Action::Allow, {Rule{}}));
    req.a.principal = "";
    req.a.http = false;
    auto v = set.evaluate(req.a);
    CHECK(v.allowed);
    REQUIRE(v.decided_by != nullptr);
    CHECK(v.rule == 0);
  }
  SECTION("a deny-all rule {} denies") {
    PolicySet set;
    set.add(policy("ns/deny-all", Action::Deny, {Rule{}}));
    CHECK_FALSE(set.evaluate(req.a).allowed);
  }
}

TEST_CASE("authz: AUDIT marks the request and never changes the verdict", "[authz]") {
  Request req;
  Rule get_rule;
  get_rule.to.emplace_back().methods = {"GET"};
  Rule post_rule;
  post_rule.to.emplace_back().methods = {"POST"};

  SECTION("alone: allowed and audited, decided by nobody") {
    PolicySet set;
    set.add(policy("ns/audit", Action::Audit, {get_rule}));
    CHECK_FALSE(set.empty());
    auto v = set.evaluate(req.a);
    CHECK(v.allowed);
    CHECK(v.audited);
    CHECK(v.decided_by == nullptr);
    CHECK(v.rule == -1);
  }
  SECTION("not matching: not audited") {
    PolicySet set;
    set.add(policy("ns/audit", Action::Audit, {post_rule}));
    set.add(policy("ns/audit-nothing", Action::Audit, {}));
    auto v = set.evaluate(req.a);
    CHECK(v.allowed);
    CHECK_FALSE(v.audited);
  }
  SECTION("with a matching DENY: denied and audited") {
    PolicySet set;
    set.add(policy("ns/deny", Action::Deny, {get_rule}));
    set.add(policy("ns/audit", Action::Audit, {Rule{}}));
    auto v = set.evaluate(req.a);
    CHECK_FALSE(v.allowed);
    CHECK(v.audited);
    REQUIRE(v.decided_by != nullptr);
    CHECK(v.decided_by->name == "ns/deny");
  }
  SECTION("with a non-matching ALLOW: denied and audited") {
    PolicySet set;
    set.add(policy("ns/allow", Action::Allow, {post_rule}));
    set.add(policy("ns/audit-post", Action::Audit, {post_rule}));
    set.add(policy("ns/audit", Action::Audit, {get_rule}));
    auto v = set.evaluate(req.a);
    CHECK_FALSE(v.allowed);
    CHECK(v.audited);
    CHECK(v.decided_by == nullptr);
  }
  SECTION("with a matching ALLOW: the ALLOW decides") {
    PolicySet set;
    set.add(policy("ns/audit", Action::Audit, {get_rule}));
    set.add(policy("ns/allow", Action::Allow, {get_rule}));
    auto v = set.evaluate(req.a);
    CHECK(v.allowed);
    CHECK(v.audited);
    REQUIRE(v.decided_by != nullptr);
    CHECK(v.decided_by->name == "ns/allow");
  }
  SECTION("an L7 rule does not audit a TCP chain") {
    PolicySet set;
    set.add(policy("ns/audit", Action::Audit, {get_rule}));
    req.a.http = false;
    CHECK_FALSE(set.evaluate(req.a).audited);
  }
}

TEST_CASE("authz: on a TCP chain L7 rules fail closed", "[authz]") {
  using K = Condition::Key;
  Request req;
  req.a.http = false;
  req.a.host = req.a.method = req.a.path = "";
  req.a.header = nullptr;

  struct Case {
    const char* name;
    std::function<void(Rule&)> build;
    bool needs_l7;
    bool allow_matches;  // as the only rule of an ALLOW policy
    bool deny_matches;   // as the only rule of a DENY policy
  };
  auto header_is = [](const char* v) {
    return when(K::RequestHeader, [v](Condition& c) {
      c.header = "x-user";
      c.values = pats({v});
    });
  };
  const std::vector<Case> cases = {
      {"methods", to([](Operation& o) { o.methods = {"POST"}; }), true, false, true},
      {"not methods", to([](Operation& o) { o.not_methods = {"GET"}; }), true, false, true},
      {"hosts", to([](Operation& o) { o.hosts = pats({"ratings*"}, true); }), true, false, true},
      {"not hosts", to([](Operation& o) { o.not_hosts = pats({"*"}, true); }), true, false, true},
      {"paths", to([](Operation& o) { o.paths = pats({"/admin/*"}); }), true, false, true},
      {"not paths", to([](Operation& o) { o.not_paths = pats({"*"}); }), true, false, true},
      {"request header", header_is("bob"), true, false, true},
      {"L7 and a matching port", to([](Operation& o) {
         o.methods = {"POST"};
         o.ports = {9080};
       }),
       true, false, true},
      {"L7 and another port: the port decides a DENY", to([](Operation& o) {
         o.methods = {"POST"};
         o.ports = {80};
       }),
       true, false, false},
      {"L7 and another source: the source decides a DENY",
       [](Rule& r) {
         r.from.emplace_back().namespaces = pats({"other"});
         r.to.emplace_back().paths = pats({"/admin/*"});
       },
       true, false, false},
      {"request header and another port: the port decides a DENY",
       [&](Rule& r) {
         header_is("bob")(r);
         when(K::DestinationPort, [](Condition& c) { c.ports = {80}; })(r);
       },
       true, false, false},
      {"ports only (L4)", to([](Operation& o) { o.ports = {9080}; }), false, true, true},
      {"not ports only (L4)", to([](Operation& o) { o.not_ports = {9080}; }), false, false, false},
      {"source only (L4)", from([](Source& s) { s.namespaces = pats({"default"}); }), false, true, true},
      {"L4 conditions", when(K::SourceIp, [](Condition& c) { c.cidrs = cidrs({"10.0.0.0/8"}); }), false, true, true},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    Rule r;
    c.build(r);
    PolicySet allow_set, deny_set;
    allow_set.add(policy("ns/allow", Action::Allow, {r}));
    deny_set.add(policy("ns/deny", Action::Deny, {r}));
    auto allow = allow_set.evaluate(req.a);
    CHECK(allow.allowed == c.allow_matches);
    auto deny = deny_set.evaluate(req.a);
    CHECK(deny.allowed == !c.deny_matches);
    if (deny.decided_by != nullptr) {
      CHECK(deny.decided_by->rules[0].needs_l7 == c.needs_l7);
    }
    if (allow.decided_by != nullptr) {
      CHECK(allow.decided_by->rules[0].needs_l7 == c.needs_l7);
    }
  }

  SECTION("an ALLOW policy still matches through its L4 rule") {
    PolicySet set;
    Rule l7;
    l7.to.emplace_back().methods = {"GET"};
    Rule l4;
    l4.to.emplace_back().ports = {9080};
    set.add(policy("ns/allow", Action::Allow, {l7, l4}));
    auto v = set.evaluate(req.a);
    CHECK(v.allowed);
    CHECK(v.rule == 1);
    REQUIRE(v.decided_by != nullptr);
    CHECK(v.decided_by->rules[0].needs_l7);
    CHECK_FALSE(v.decided_by->rules[1].needs_l7);
  }
  SECTION("on an HTTP chain the same rules apply in full") {
    Request http;
    Rule deny_post;
    deny_post.to.emplace_back().methods = {"POST"};
    CHECK(allowed_by_one(Action::Deny, deny_post, http.a));
    CHECK_FALSE(allowed_by_one(Action::Deny, deny_post, req.a));
    Rule allow_get;
    allow_get.to.emplace_back().methods = {"GET"};
    CHECK(allowed_by_one(Action::Allow, allow_get, http.a));
    CHECK_FALSE(allowed_by_one(Action::Allow, allow_get, req.a));
  }
}
