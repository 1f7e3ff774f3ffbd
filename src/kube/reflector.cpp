// LIST then WATCH for one kind, on one thread (SPEC §7 "Sync"; client-go's tools/cache reflector).
//
//   Listing ──all pages──▶ replaced() ──▶ Watching ──server ends it──▶ Watching (from the last RV)
//      ▲                                     │
//      ├──── 410 (status or ERROR event) ────┤  immediately
//      ├──── other ERROR event, bad line ────┤  after back-off
//      └──── oversize line ──────────────────┤  after back-off
//                                            └── failed / dropped / stalled ──▶ back-off ──▶ Watching
//
// Every list is a fresh, consistent read (no resourceVersion): simpler than client-go's "0" from the
// watch cache, and the only form in which the server honours limit= anyway.
#include "waypoint/kube/reflector.h"

#include <algorithm>
#include <cctype>

namespace wp::kube {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const json* member(const json& j, const char* key) {
  if (!j.is_object()) {
    return nullptr;
  }
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string string_member(const json& j, const char* key) {
  const json* v = member(j, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::string();
}

std::string resource_version_of(const json& object) {
  const json* metadata = member(object, "metadata");
  return metadata != nullptr ? string_member(*metadata, "resourceVersion") : std::string();
}

std::string excerpt(std::string_view s, size_t max = 200) {
  std::string out(s.substr(0, max));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) {
      c = ' ';
    }
  }
  if (s.size() > max) {
    out += "...";
  }
  return out;
}

bool blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

std::string ms_text(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

}  // namespace

std::string_view to_string(WatchLine::Type type) {
  switch (type) {
    case WatchLine::Type::Blank:
      return "";
    case WatchLine::Type::Added:
      return "ADDED";
    case WatchLine::Type::Modified:
      return "MODIFIED";
    case WatchLine::Type::Deleted:
      return "DELETED";
    case WatchLine::Type::Bookmark:
      return "BOOKMARK";
    case WatchLine::Type::Expired:
    case WatchLine::Type::Error:
      return "ERROR";
    case WatchLine::Type::Unknown:
      return "UNKNOWN";
    case WatchLine::Type::Malformed:
      return "MALFORMED";
  }
  return "";
}

// Percent-encodes everything but RFC 3986 unreserved characters (continue tokens are base64).
std::string query_escape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool json_depth_ok(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) {
        return false;
      }
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return true;
}

json parse_json(std::string_view text) {
  if (!json_depth_ok(text)) {
    return json(json::value_t::discarded);
  }
  return json::parse(text.begin(), text.end(), nullptr, false);
}

WatchLine decode_watch_line(std::string_view line) {
  WatchLine out;
  if (blank(line)) {
    return out;
  }
  json ev = parse_json(line);
  const json* type = member(ev, "type");
  const json* object = member(ev, "object");
  if (ev.is_discarded() || type == nullptr || !type->is_string() || object == nullptr || !object->is_object()) {
    out.type = WatchLine::Type::Malformed;
    out.detail =
        std::string(ev.is_discarded() ? (json_depth_ok(line) ? "not JSON" : "not JSON, or nested deeper than 128")
                                      : "not a watch event") +
        " (" + excerpt(line) + ")";
    return out;
  }
  const std::string t = type->get<std::string>();
  out.object = std::move(ev["object"]);
  out.resource_version = resource_version_of(out.object);
  if (t == "ADDED") {
    out.type = WatchLine::Type::Added;
  } else if (t == "MODIFIED") {
    out.type = WatchLine::Type::Modified;
  } else if (t == "DELETED") {
    out.type = WatchLine::Type::Deleted;
  } else if (t == "BOOKMARK") {
    out.type = WatchLine::Type::Bookmark;
  } else if (t == "ERROR") {
    const json* code = member(out.object, "code");
    int64_t status = code != nullptr && code->is_number_integer() ? code->get<int64_t>() : 0;
    out.type = status == 410 ? WatchLine::Type::Expired : WatchLine::Type::Error;
    out.detail = "code " + std::to_string(status) + " " + string_member(out.object, "reason") + ": " +
                 excerpt(string_member(out.object, "message"));
  } else {
    out.type = WatchLine::Type::Unknown;
    out.detail = excerpt(t);
  }
  return out;
}

std::string Kind::path(const std::string& namespace_) const {
  std::string out = group_version.find('/') == std::string::npos ? "/api/" : "/apis/";
  out += group_version;
  if (!namespace_.empty()) {
    out += "/namespaces/" + namespace_;
  }
  out += "/" + plural;
  return out;
}

Reflector::Reflector(Access access, std::string namespace_, Kind kind, Callbacks callbacks, ReflectorOptions options)
    : kind_(std::move(kind)),
      namespace_(std::move(namespace_)),
      base_path_(kind_.path(this->namespace_)),
      cb_(std::move(callbacks)),
      options_(std::move(options)),
      client_(std::move(access), stop_, options_.client),
      rng_(std::random_device{}()) {}

Reflector::~Reflector() {
  stop();
}

void Reflector::start() {
  if (thread_.joinable() || stop_.load()) {
    return;
  }
  thread_ = std::thread([this] { run(); });
}

void Reflector::stop() {
  stop_.store(true);
  { std::lock_guard<std::mutex> lock(mu_); }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

std::string Reflector::resource_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rv_;
}

void Reflector::set_rv(std::string rv) {
  std::lock_guard<std::mutex> lock(mu_);
  rv_ = std::move(rv);
}

void Reflector::report(const std::string& what) {
  if (cb_.error) {
    cb_.error(kind_, what);
  }
}

bool Reflector::wait(std::chrono::milliseconds delay) {
  phase_.store(Phase::Waiting);
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait_for(lock, delay, [this] { return stop_.load(); });
  return !stop_.load();
}

std::chrono::milliseconds Reflector::next_backoff() {
  backoff_ = backoff_.count() == 0 ? options_.backoff_initial : std::min(backoff_ * 2, options_.backoff_max);
  std::uniform_real_distribution<double> jitter(0.75, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(backoff_.count()) * jitter(rng_)));
}

std::string Reflector::describe(const Response& response) const {
  std::string out = "HTTP " + std::to_string(response.status);
  json status = parse_json(response.body);
  std::string reason = string_member(status, "reason"), message = string_member(status, "message");
  if (!reason.empty()) {
    out += " " + reason;
  }
  if (!message.empty()) {
    out += ": " + excerpt(message);
  } else if (!response.body.empty() && status.is_discarded()) {
    out += ": " + excerpt(response.body);
  }
  return out;
}

void Reflector::run() {
  Step step = Step::List;
  while (step != Step::Stop && !stop_.load()) {
    step = step == Step::List ? list() : watch();
  }
  phase_.store(Phase::Stopped);
}

Reflector::Step Reflector::list() {
  phase_.store(Phase::Listing);
  const std::string what = "list " + kind_.plural;
  auto retry = [&](std::chrono::milliseconds delay) { return wait(delay) ? Step::List : Step::Stop; };
  std::vector<json> items;
  std::string list_rv, token;
  bool restarted = false;
  if (cb_.list_started) {
    cb_.list_started(kind_);
  }
  while (true) {
    std::string query = "?limit=" + std::to_string(options_.page_size);
    if (!token.empty()) {
      query += "&continue=" + query_escape(token);
    }
    Response response;
    Result r = client_.get(base_path_ + query, response);
    if (r.outcome == Outcome::Stopped) {
      return Step::Stop;
    }
    if (!r.complete()) {
      report(what + ": " + r.error + " (" + std::string(to_string(r.outcome)) + ")");
      return retry(next_backoff());
    }
    if (response.status == 410 && !token.empty()) {
      // The continue token expired (the list took longer than the server keeps its snapshot):
      // start again from the first page: once immediately, then after back-off.
      report(what + ": continue token expired (" + describe(response) + "); listing again");
      items.clear();
      token.clear();
      list_rv.clear();
      if (cb_.list_started) {
        cb_.list_started(kind_);
      }
      if (!restarted) {
        restarted = true;
        continue;
      }
      return retry(next_backoff());
    }
    if (response.status == 404 || response.status == 403) {
      if (cb_.absent) {
        cb_.absent(kind_, response.status);
      }
      return retry(response.status == 404 ? options_.absent_retry : next_backoff());
    }
    if (response.status != 200) {
      report(what + ": " + describe(response));
      return retry(next_backoff());
    }
    json page = parse_json(response.body);
    response.body = std::string();
    const json* metadata = member(page, "metadata");
    const json* page_items = member(page, "items");
    if (page.is_discarded() || metadata == nullptr || !metadata->is_object() ||
        (page_items != nullptr && !page_items->is_array() && !page_items->is_null())) {
      report(what + ": the response is not a list (" + (page.is_discarded() ? "not JSON" : "no metadata or items") +
             ")");
      return retry(next_backoff());
    }
    if (token.empty()) {
      list_rv = string_member(*metadata, "resourceVersion");  // every page carries the same one
    }
    if (page_items != nullptr && page_items->is_array()) {
      items.reserve(items.size() + page_items->size());
      for (json& item : page["items"]) {
        if (!item.is_object()) {
          report(what + ": an item is not an object; skipped");
          continue;
        }
        if (!item.contains("kind")) {
          item["kind"] = kind_.kind;
        }
        if (!item.contains("apiVersion")) {
          item["apiVersion"] = kind_.group_version;
        }
        if (cb_.list_item) {
          cb_.list_item(kind_, std::move(item));
        } else {
          items.push_back(std::move(item));
        }
      }
    }
    token = string_member(*metadata, "continue");
    if (token.empty()) {
      break;
    }
  }
  if (list_rv.empty()) {
    report(what + ": the list has no metadata.resourceVersion to watch from");
    return retry(next_backoff());
  }
  set_rv(list_rv);
  ++lists_;
  if (cb_.replaced) {
    cb_.replaced(kind_, std::move(items), list_rv);
  }
  return Step::Watch;
}

Reflector::Step Reflector::watch() {
  phase_.store(Phase::Watching);
  const std::string what = "watch " + kind_.plural;
  auto retry = [&](Step next, std::chrono::milliseconds delay) { return wait(delay) ? next : Step::Stop; };

  std::uniform_real_distribution<double> spread(0.0, 1.0);
  int64_t timeout_s = std::max<int64_t>(
      1, static_cast<int64_t>(static_cast<double>(options_.watch_timeout.count()) * (1.0 + spread(rng_))));
  std::chrono::milliseconds stall = options_.stall_timeout.count() > 0
                                        ? options_.stall_timeout
                                        : std::chrono::milliseconds(std::chrono::seconds(timeout_s + 30));
  std::string rv = resource_version();
  std::string query = "?watch=1&resourceVersion=" + query_escape(rv) +
                      "&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(timeout_s);

  enum class End { None, Expired, ErrorEvent, Malformed };
  End end = End::None;
  std::string end_reason;
  uint64_t lines = 0;
  auto on_line = [&](std::string_view line) -> bool {
    WatchLine ev = decode_watch_line(line);
    if (ev.type == WatchLine::Type::Blank) {
      return true;
    }
    ++lines;
    switch (ev.type) {
      case WatchLine::Type::Malformed:
        end = End::Malformed;
        end_reason = what + ": " + ev.detail + "; listing again";
        return false;
      case WatchLine::Type::Expired:
        end = End::Expired;
        return false;
      case WatchLine::Type::Error:
        end = End::ErrorEvent;
        end_reason = what + ": ERROR event: " + ev.detail + "; listing again";
        return false;
      case WatchLine::Type::Unknown:
        report(what + ": unknown event type \"" + ev.detail + "\"; ignored");
        return true;
      case WatchLine::Type::Bookmark:
        if (!ev.resource_version.empty()) {
          set_rv(std::move(ev.resource_version));
        }
        return true;
      case WatchLine::Type::Blank:
      case WatchLine::Type::Added:
      case WatchLine::Type::Modified:
      case WatchLine::Type::Deleted:
        break;
    }
    if (!ev.object.contains("kind")) {
      ev.object["kind"] = kind_.kind;
    }
    if (!ev.object.contains("apiVersion")) {
      ev.object["apiVersion"] = kind_.group_version;
    }
    if (cb_.event) {
      cb_.event(kind_, to_string(ev.type), std::move(ev.object));
    }
    if (!ev.resource_version.empty()) {
      set_rv(std::move(ev.resource_version));
    }
    return !stop_.load();
  };

  ++watches_;
  const auto started = Clock::now();
  Response response;
  Result r = client_.stream(base_path_ + query, response, on_line, stall);
  const auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  const bool healthy = lines > 0 || lasted >= options_.healthy_watch;
  if (response.status == 200 && healthy) {
    backoff_ = std::chrono::milliseconds(0);  // it worked, however it ended
  }
  if (r.outcome == Outcome::Stopped || stop_.load()) {
    return Step::Stop;
  }
  switch (r.outcome) {
    case Outcome::Aborted:
      switch (end) {
        case End::Expired:
          return Step::List;  // the resume point was compacted away: list again, at once
        case End::ErrorEvent:
        case End::Malformed:
          report(end_reason);
          return retry(Step::List, next_backoff());
        case End::None:
          return Step::Stop;  // aborted because stop was set
      }
      return Step::List;
    case Outcome::Complete:
      if (response.status == 200) {
        if (!healthy) {
          report(what + ": the server ended the watch after " + ms_text(lasted) + " without an event");
          return retry(Step::Watch, next_backoff());
        }
        return Step::Watch;  // timeoutSeconds reached: resume from the last version
      }
      if (response.status == 410) {
        return Step::List;
      }
      report(what + ": " + describe(response));
      // 404/403: the kind went away or access was revoked; the list reports it as absent.
      return retry(response.status == 404 || response.status == 403 ? Step::List : Step::Watch, next_backoff());
    case Outcome::IdleTimeout:
      report(what + ": stalled, nothing (not even a bookmark) for " + ms_text(stall) + "; reconnecting");
      return retry(Step::Watch, next_backoff());
    case Outcome::TooLarge:
      // Resuming would bring the same event again: list instead (a page has a larger limit).
      report(what + ": " + r.error + "; listing again");
      return retry(Step::List, next_backoff());
    default:
      report(what + ": " + r.error + " (" + std::string(to_string(r.outcome)) + ")");
      return retry(Step::Watch, next_backoff());
  }
}

}  // namespace wp::kube
