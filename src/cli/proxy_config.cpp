// `waypoint proxy-config`: fetch one listing from the admin API and print it as istioctl does.
// CLI code: errors are exceptions, turned into a message and an exit code in proxy_config_main.
#include "cli/proxy_config.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>

#include "waypoint/common/json.h"
#include "waypoint/config/names.h"
#include "waypoint/net/address.h"
#include "waypoint/net/order.h"

namespace wp::cli {

namespace {

using Rows = std::vector<std::vector<std::string>>;

constexpr const char* kUsage =
    "usage: waypoint proxy-config listener|clusters|routes|endpoints [--admin HOST:PORT] [--name NAME]\n"
    "                             [-o table|json|yaml] [--direction inbound|outbound]\n";

enum class Kind { Listener, Clusters, Routes, Endpoints };

std::optional<Kind> parse_kind(const std::string& kind) {
  if (kind == "listener" || kind == "listeners") {
    return Kind::Listener;
  }
  if (kind == "clusters" || kind == "cluster") {
    return Kind::Clusters;
  }
  if (kind == "routes" || kind == "route") {
    return Kind::Routes;
  }
  if (kind == "endpoints" || kind == "endpoint") {
    return Kind::Endpoints;
  }
  return std::nullopt;
}

const char* admin_path(Kind kind) {
  switch (kind) {
    case Kind::Listener:
      return "/listeners";
    case Kind::Clusters:
      return "/clusters";
    case Kind::Routes:
      return "/routes";
    case Kind::Endpoints:
      return "/endpoints";
  }
  return "/";
}

// ---- reading the admin API's JSON (as YAML::Load parsed it) --------------------------------------

std::string text(const YAML::Node& node, const char* key, const std::string& fallback = "") {
  YAML::Node v = node[key];
  return v && v.IsScalar() ? v.Scalar() : fallback;
}

std::vector<std::string> texts(const YAML::Node& node, const char* key) {
  std::vector<std::string> out;
  YAML::Node v = node[key];
  if (v && v.IsSequence()) {
    for (const auto& item : v) {
      out.push_back(item.IsScalar() ? item.Scalar() : "");
    }
  }
  return out;
}

std::vector<YAML::Node> elements(const YAML::Node& node) {
  std::vector<YAML::Node> out;
  if (node && node.IsSequence()) {
    for (const auto& item : node) {
      out.push_back(item);
    }
  }
  return out;
}

std::vector<YAML::Node> elements(const YAML::Node& node, const char* key) {
  return elements(node[key]);
}

// ---- tables -------------------------------------------------------------------------------------

std::string destination(const YAML::Node& chain) {
  std::string route = text(chain, "route");
  return route.empty() ? "Cluster: " + text(chain, "cluster") : "Route: " + route;
}

// The MATCH cells of one chain, one per application protocol the chain tells apart. A service port
// that is HTTP (or TCP) only takes every tunnel: its protocols are not a match condition.
std::vector<std::string> chain_matches(const YAML::Node& entry, const YAML::Node& chain) {
  std::string kind = text(entry, "kind");
  if (kind == "socket") {
    return {"ALL"};
  }
  std::string base = "ip=" + text(entry, "ip");
  std::string arrow = " -> ";
  if (kind == "service") {
    base += " -> port=" + text(entry, "port");
    if (text(entry, "protocol") != "sniff") {
      return {base};
    }
    arrow = " ";
  }
  std::vector<std::string> protocols = texts(chain, "application_protocols");
  if (protocols.empty()) {
    return {kind == "service" ? base : base + arrow + "ANY"};
  }
  std::vector<std::string> out;
  for (const auto& p : protocols) {
    out.push_back(base + arrow + "application-protocol='" + p + "'");
  }
  return out;
}

Rows listener_rows(const YAML::Node& items, const std::string& name) {
  Rows rows{{"LISTENER", "CHAIN", "MATCH", "DESTINATION"}};
  for (const auto& entry : elements(items)) {
    bool whole = name.empty() || text(entry, "name") == name;
    for (const auto& chain : elements(entry, "chains")) {
      std::string chain_name = text(chain, "name");
      if (!whole && chain_name != name) {
        continue;
      }
      for (const auto& match : chain_matches(entry, chain)) {
        rows.push_back({"envoy://" + text(entry, "listener"), chain_name, match, destination(chain)});
      }
    }
  }
  return rows;
}

bool cluster_selected(const YAML::Node& c, const std::string& name) {
  return name.empty() || text(c, "name") == name || text(c, "service_fqdn") == name;
}

Rows cluster_rows(const YAML::Node& items, const std::string& name) {
  Rows rows{{"SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"}};
  for (const auto& c : elements(items)) {
    if (!cluster_selected(c, name)) {
      continue;
    }
    auto parts = config::split_inbound_name(text(c, "name"));
    std::string type = text(c, "type"), rule = text(c, "destination_rule");
    if (parts) {
      rows.push_back({parts->fqdn, std::to_string(parts->port), parts->protocol.empty() ? "-" : parts->protocol,
                      parts->direction, type, rule});
    } else {
      rows.push_back({text(c, "name"), "-", "-", "-", type, rule});
    }
  }
  return rows;
}

// "name=value", "name=prefix*", "name~regex", or just "name" for a presence check; "!" inverts.
std::string condition_text(const std::string& name, const YAML::Node& value, bool invert) {
  std::string out = (invert ? "!" : "") + name;
  if (!value) {
    return out;
  }
  std::string kind = text(value, "kind"), v = text(value, "value");
  if (kind == "regex") {
    return out + "~" + v;
  }
  return out + "=" + v + (kind == "prefix" ? "*" : "");
}

// istioctl's path forms: "/exact", "/prefix*", "PathPrefix:/segment", "regex <pattern>".
std::string uri_text(const YAML::Node& uri) {
  std::string kind = text(uri, "kind"), v = text(uri, "value");
  if (kind == "prefix") {
    return v + "*";
  }
  if (kind == "path_prefix") {
    return "PathPrefix:" + v;
  }
  if (kind == "regex") {
    return "regex " + v;
  }
  return v;
}

std::string match_text(const YAML::Node& m) {
  std::string out = m["uri"] ? uri_text(m["uri"]) : "/*";
  std::vector<std::string> conditions;
  if (YAML::Node method = m["method"]) {
    conditions.push_back(text(method, "kind") == "exact" ? text(method, "value")
                                                         : condition_text("method", method, false));
  }
  if (YAML::Node authority = m["authority"]) {
    conditions.push_back(condition_text(":authority", authority, false));
  }
  for (const auto& h : elements(m, "headers")) {
    conditions.push_back(condition_text(text(h, "name"), h["value"], text(h, "invert") == "true"));
  }
  for (const auto& q : elements(m, "query_params")) {
    conditions.push_back(condition_text("?" + text(q, "name"), q["value"], text(q, "invert") == "true"));
  }
  if (conditions.empty()) {
    return out;
  }
  std::string joined;
  for (const auto& c : conditions) {
    joined += (joined.empty() ? "" : ", ") + c;
  }
  return out + " (" + joined + ")";
}

// One row per match block (Envoy has one route per block); a route without blocks matches all.
std::vector<std::string> route_matches(const YAML::Node& table, const YAML::Node& route) {
  if (text(table, "type") == "tcp") {
    return {"ANY"};
  }
  std::vector<std::string> out;
  for (const auto& m : elements(route, "matches")) {
    out.push_back(match_text(m));
  }
  if (out.empty()) {
    out.push_back("/*");
  }
  return out;
}

Rows route_rows(const YAML::Node& items, const std::string& name) {
  Rows rows{{"NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"}};
  for (const auto& table : elements(items)) {
    bool whole = name.empty() || text(table, "name") == name;
    std::string domains;
    for (const auto& d : texts(table, "domains")) {
      domains += (domains.empty() ? "" : ",") + d;
    }
    for (const auto& route : elements(table, "routes")) {
      if (!whole && text(route, "name") != name) {
        continue;
      }
      for (const auto& match : route_matches(table, route)) {
        rows.push_back(
            {text(table, "name"), domains.empty() ? "-" : domains, match, text(route, "virtual_service", "-")});
      }
    }
  }
  return rows;
}

// By numeric address, then port, then cluster name (bytewise for an address that does not parse).
struct EndpointRow {
  std::vector<std::string> cells;
  std::optional<net::SockAddr> address;
};

bool endpoint_row_less(const EndpointRow& a, const EndpointRow& b) {
  if (a.address && b.address) {
    if (!(*a.address == *b.address)) {
      return net::addr_less(*a.address, *b.address);
    }
  } else if (a.cells[0] != b.cells[0]) {
    return a.cells[0] < b.cells[0];
  }
  return a.cells[3] < b.cells[3];
}

Rows endpoint_rows(const YAML::Node& items, const std::string& name) {
  std::vector<EndpointRow> body;
  for (const auto& c : elements(items)) {
    std::string cluster = text(c, "cluster");
    if (!name.empty() && cluster != name) {
      continue;
    }
    for (const auto& ep : elements(c, "endpoints")) {
      std::string address = text(ep, "address");
      body.push_back({{"envoy://connect_originate/" + address, text(ep, "health"), text(ep, "outlier", "OK"), cluster},
                      net::SockAddr::parse(address)});
    }
  }
  std::stable_sort(body.begin(), body.end(), endpoint_row_less);
  Rows rows{{"ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"}};
  for (auto& row : body) {
    rows.push_back(std::move(row.cells));
  }
  return rows;
}

// ---- json and yaml ------------------------------------------------------------------------------

// The objects --name selects, whole (a route table narrowed to the matching routes when the name
// is a route's rather than the table's).
YAML::Node select(Kind kind, const YAML::Node& items, const std::string& name) {
  YAML::Node out(YAML::NodeType::Sequence);
  for (const auto& item : elements(items)) {
    bool keep = name.empty();
    switch (kind) {
      case Kind::Listener:
        keep = keep || text(item, "name") == name;
        for (const auto& chain : elements(item, "chains")) {
          keep = keep || text(chain, "name") == name;
        }
        break;
      case Kind::Clusters:
        keep = cluster_selected(item, name);
        break;
      case Kind::Endpoints:
        keep = keep || text(item, "cluster") == name;
        break;
      case Kind::Routes:
        if (!keep && text(item, "name") != name) {
          YAML::Node routes(YAML::NodeType::Sequence);
          for (const auto& route : elements(item, "routes")) {
            if (text(route, "name") == name) {
              routes.push_back(route);
            }
          }
          if (routes.size() > 0) {
            YAML::Node narrowed = YAML::Clone(item);
            narrowed["routes"] = routes;
            out.push_back(narrowed);
          }
          continue;
        }
        keep = true;
        break;
    }
    if (keep) {
      out.push_back(item);
    }
  }
  return out;
}

bool is_json_number(const std::string& s) {
  size_t i = 0, n = s.size();
  auto digits = [&] {
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      ++i;
    }
    return i > start;
  };
  if (i < n && s[i] == '-') {
    ++i;
  }
  if (!digits()) {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (!digits()) {
      return false;
    }
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
      ++i;
    }
    if (!digits()) {
      return false;
    }
  }
  return i == n;
}

// A scalar the JSON had unquoted (a number, true, false): YAML::Load tags quoted scalars "!".
bool is_plain_literal(const YAML::Node& n) {
  if (n.Tag() == "!") {
    return false;
  }
  const std::string& s = n.Scalar();
  return s == "true" || s == "false" || s == "null" || is_json_number(s);
}

void to_json(json::Writer& w, const YAML::Node& n);

void scalar_to_json(json::Writer& w, const YAML::Node& n) {
  if (!is_plain_literal(n)) {
    w.string(n.Scalar());
  } else if (n.Scalar() == "true" || n.Scalar() == "false") {
    w.boolean(n.Scalar() == "true");
  } else if (n.Scalar() == "null") {
    w.null();
  } else if (n.Scalar().find_first_of(".eE") == std::string::npos) {
    n.Scalar()[0] == '-' ? w.number(std::stoll(n.Scalar())) : w.number(std::stoull(n.Scalar()));
  } else {
    w.number(std::stod(n.Scalar()));
  }
}

void to_json(json::Writer& w, const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      w.begin_object();
      for (const auto& kv : n) {
        w.key(kv.first.Scalar());
        to_json(w, kv.second);
      }
      w.end_object();
      break;
    case YAML::NodeType::Sequence:
      w.begin_array();
      for (const auto& item : n) {
        to_json(w, item);
      }
      w.end_array();
      break;
    case YAML::NodeType::Scalar:
      scalar_to_json(w, n);
      break;
    default:
      w.null();
  }
}

// A string YAML would read back as something else unless quoted ("9080", "true", "", "~").
bool needs_quotes(const std::string& s) {
  static const char* const kReserved[] = {"true", "false", "null", "True",  "False", "Null", "TRUE", "FALSE",
                                          "NULL", "~",     "yes",  "no",    "Yes",   "No",   "YES",  "NO",
                                          "on",   "off",   "On",   "Off",   "ON",    "OFF",  "y",    "n",
                                          "Y",    "N",     ".inf", "-.inf", ".nan",  ".NaN", ".Inf", "-.Inf"};
  if (s.empty() || is_json_number(s)) {
    return true;
  }
  if (std::find(std::begin(kReserved), std::end(kReserved), s) != std::end(kReserved)) {
    return true;
  }
  // Other number forms YAML 1.1/1.2 resolve: "+1", "0x1f", "1_000", ".5", "1.".
  char c = s[0];
  return c == '+' || c == '.' ||
         (c >= '0' && c <= '9' && s.find_first_not_of("0123456789._:eE+-xXabcdefABCDEF") == std::string::npos);
}

void to_yaml(YAML::Emitter& e, const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      if (n.size() == 0) {
        e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        break;
      }
      e << YAML::BeginMap;
      for (const auto& kv : n) {
        e << YAML::Key << kv.first.Scalar() << YAML::Value;
        to_yaml(e, kv.second);
      }
      e << YAML::EndMap;
      break;
    case YAML::NodeType::Sequence:
      if (n.size() == 0) {
        e << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        break;
      }
      e << YAML::BeginSeq;
      for (const auto& item : n) {
        to_yaml(e, item);
      }
      e << YAML::EndSeq;
      break;
    case YAML::NodeType::Scalar:
      if (is_plain_literal(n)) {
        e << n.Scalar();
      } else if (needs_quotes(n.Scalar())) {
        e << YAML::DoubleQuoted << n.Scalar();
      } else {
        e << n.Scalar();
      }
      break;
    default:
      e << YAML::Null;
  }
}

std::string render_structured(const YAML::Node& selected, const std::string& output) {
  if (output == "json") {
    json::Writer w(4);
    to_json(w, selected);
    return w.take() + "\n";
  }
  YAML::Emitter e;
  e.SetNullFormat(YAML::LowerNull);  // "null", as JSON and istioctl's YAML write it
  to_yaml(e, selected);
  return std::string(e.c_str()) + "\n";
}

// ---- the admin API client -----------------------------------------------------------------------

struct HttpResponse {
  int status = 0;
  std::string body;
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

using Deadline = std::chrono::steady_clock::time_point;

int millis_left(Deadline deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// Waits for `events` on fd; false on timeout.
bool wait_for(int fd, short events, Deadline deadline) {
  pollfd p{fd, events, 0};
  int n;
  do {
    n = ::poll(&p, 1, millis_left(deadline));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
  }
  return n > 0;
}

int connect_to(const std::string& host, const std::string& port, Deadline deadline) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    throw std::runtime_error(std::string("cannot resolve ") + host + ": " + ::gai_strerror(rc));
  }
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
      if (!wait_for(fd, POLLOUT, deadline)) {
        ::close(fd);
        last_error = "connect timed out";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc == 0) {
      ::freeaddrinfo(res);
      return fd;
    }
    last_error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  throw std::runtime_error(last_error);
}

void send_all(int fd, const std::string& data, Deadline deadline) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!wait_for(fd, POLLOUT, deadline)) {
        throw std::runtime_error("timed out sending the request");
      }
    } else {
      throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    }
  }
}

// Everything until the server closes (the admin API answers Connection: close).
std::string read_all(int fd, Deadline deadline) {
  std::string data;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      data.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return data;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!wait_for(fd, POLLIN, deadline)) {
        throw std::runtime_error("timed out waiting for the answer");
      }
    } else {
      throw std::runtime_error(std::string("recv: ") + std::strerror(errno));
    }
  }
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string dechunk(const std::string& body) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) {
      throw std::runtime_error("truncated chunked answer");
    }
    size_t size = std::stoul(body.substr(pos, eol - pos), nullptr, 16);
    pos = eol + 2;
    if (size == 0) {
      return out;
    }
    if (pos + size > body.size()) {
      throw std::runtime_error("truncated chunked answer");
    }
    out.append(body, pos, size);
    pos += size + 2;
  }
}

HttpResponse parse_response(const std::string& raw) {
  size_t head_end = raw.find("\r\n\r\n");
  if (raw.compare(0, 5, "HTTP/") != 0 || head_end == std::string::npos) {
    throw std::runtime_error("not an HTTP answer");
  }
  HttpResponse r;
  size_t space = raw.find(' ');
  r.status = std::atoi(raw.c_str() + space + 1);
  std::string head = lower(raw.substr(0, head_end));
  r.body = raw.substr(head_end + 4);
  if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
    r.body = dechunk(r.body);
  } else if (size_t cl = head.find("\r\ncontent-length:"); cl != std::string::npos) {
    size_t length = std::stoul(head.substr(cl + 17));
    if (r.body.size() < length) {
      throw std::runtime_error("truncated answer");
    }
    r.body.resize(length);
  }
  return r;
}

HttpResponse http_get(const std::string& host, const std::string& port, const std::string& path,
                      std::chrono::milliseconds timeout) {
  Deadline deadline = std::chrono::steady_clock::now() + timeout;
  Fd fd(connect_to(host, port, deadline));
  std::string authority = host.find(':') != std::string::npos ? "[" + host + "]:" + port : host + ":" + port;
  send_all(fd.get(),
           "GET " + path + " HTTP/1.1\r\nHost: " + authority +
               "\r\nAccept: application/json\r\nUser-Agent: waypoint-proxy-config\r\nConnection: close\r\n\r\n",
           deadline);
  return parse_response(read_all(fd.get(), deadline));
}

// ---- arguments ----------------------------------------------------------------------------------

struct Args {
  std::string kind;
  std::string admin = "127.0.0.1:15000";
  std::string host, port;
  std::string name;
  std::string output = "table";
  std::string direction;
  bool help = false;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "HOST:PORT" or "[IPv6]:PORT".
void split_admin(Args& a) {
  size_t colon = a.admin.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    throw UsageError("--admin wants HOST:PORT, got \"" + a.admin + "\"");
  }
  a.host = a.admin.substr(0, colon);
  a.port = a.admin.substr(colon + 1);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']') {
    a.host = a.host.substr(1, a.host.size() - 2);
  }
  if (!net::parse_port(a.port)) {
    throw UsageError("--admin wants HOST:PORT, got \"" + a.admin + "\"");
  }
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const std::string& name) -> std::string {
      if (arg.size() > name.size() && arg.compare(0, name.size() + 1, name + "=") == 0) {
        return arg.substr(name.size() + 1);
      }
      if (i + 1 >= argc) {
        throw UsageError(name + " needs a value");
      }
      return argv[++i];
    };
    auto is = [&](const std::string& name) { return arg == name || arg.rfind(name + "=", 0) == 0; };
    if (arg == "-h" || arg == "--help") {
      a.help = true;
    } else if (is("--admin")) {
      a.admin = value("--admin");
    } else if (is("--name")) {
      a.name = value("--name");
    } else if (is("--output")) {
      a.output = value("--output");
    } else if (is("-o")) {
      a.output = value("-o");
    } else if (is("--direction")) {
      a.direction = value("--direction");
    } else if (!arg.empty() && arg[0] != '-' && a.kind.empty()) {
      a.kind = arg;
    } else {
      throw UsageError("unexpected argument: " + arg);
    }
  }
  if (a.help) {
    return a;
  }
  if (a.kind.empty()) {
    throw UsageError("which configuration? listener, clusters, routes or endpoints");
  }
  if (!parse_kind(a.kind)) {
    throw UsageError("unknown configuration \"" + a.kind + "\" (listener, clusters, routes or endpoints)");
  }
  if (a.output != "table" && a.output != "json" && a.output != "yaml") {
    throw UsageError("-o wants table, json or yaml, got \"" + a.output + "\"");
  }
  if (!a.direction.empty() && a.direction != "inbound" && a.direction != "outbound") {
    throw UsageError("--direction wants inbound or outbound, got \"" + a.direction + "\"");
  }
  split_admin(a);
  return a;
}

constexpr std::chrono::seconds kAdminTimeout{5};

}  // namespace

std::string tabulate(const std::vector<std::vector<std::string>>& rows, size_t padding) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    for (size_t i = 0; i + 1 < row.size(); ++i) {
      widths.resize(std::max(widths.size(), i + 1));
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(widths[i] + padding - row[i].size(), ' ');
      }
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

std::string render_proxy_config(const std::string& kind_name, const YAML::Node& items, const std::string& name,
                                const std::string& output, const std::string& direction) {
  std::optional<Kind> kind = parse_kind(kind_name);
  if (!kind) {
    throw std::invalid_argument("unknown configuration \"" + kind_name + "\"");
  }
  if (output != "table" && output != "json" && output != "yaml") {
    throw std::invalid_argument("unknown output format \"" + output + "\"");
  }
  if (!direction.empty() && direction != "inbound" && direction != "outbound") {
    throw std::invalid_argument("unknown direction \"" + direction + "\"");
  }
  if (direction == "outbound") {
    return output == "table" ? "" : "[]\n";  // a waypoint only has inbound configuration
  }
  if (output != "table") {
    return render_structured(select(*kind, items, name), output);
  }
  // Padding as istioctl's tabwriters: 1 for listeners, 5 for the others.
  switch (*kind) {
    case Kind::Listener:
      return tabulate(listener_rows(items, name), 1);
    case Kind::Clusters:
      return tabulate(cluster_rows(items, name), 5);
    case Kind::Routes:
      return tabulate(route_rows(items, name), 5);
    case Kind::Endpoints:
      return tabulate(endpoint_rows(items, name), 5);
  }
  return "";
}

int proxy_config_main(int argc, char** argv, std::ostream& out, std::ostream& err) {
  Args args;
  try {
    args = parse_args(argc, argv);
  } catch (const UsageError& e) {
    err << "waypoint proxy-config: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (args.help) {
    out << kUsage;
    return 0;
  }
  const char* path = admin_path(*parse_kind(args.kind));
  YAML::Node items;
  try {
    HttpResponse r = http_get(args.host, args.port, path, kAdminTimeout);
    if (r.status != 200) {
      std::string body = r.body.substr(0, 200);
      err << "waypoint proxy-config: the admin API at " << args.admin << " answered " << r.status << " to GET " << path
          << (body.empty() ? "" : ": " + body) << "\n";
      return 1;
    }
    items = YAML::Load(r.body);
  } catch (const YAML::Exception& e) {
    err << "waypoint proxy-config: GET " << path << " from " << args.admin << " is not JSON: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    err << "waypoint proxy-config: cannot reach the admin API at " << args.admin << ": " << e.what() << "\n";
    return 1;
  }
  if (!items.IsSequence()) {
    err << "waypoint proxy-config: GET " << path << " from " << args.admin << " did not answer a JSON array\n";
    return 1;
  }
  out << render_proxy_config(args.kind, items, args.name, args.output, args.direction);
  return out ? 0 : 1;
}

int proxy_config_main(int argc, char** argv) {
  return proxy_config_main(argc, argv, std::cout, std::cerr);
}

}  // namespace wp::cli
