#pragma once
// One kind of one namespace kept in step with the API server, as client-go's reflector does it
// (SPEC §7 "Sync"): a paginated LIST, then a WATCH from the list's resourceVersion, re-opened from
// the last version seen when it ends, a fresh LIST on 410 Gone or on a stream that cannot be
// trusted, capped jittered exponential back-off on failures. It runs on its own thread and reports
// through callbacks called on that thread.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "waypoint/kube/access.h"
#include "waypoint/kube/client.h"

namespace wp::kube {

struct Kind {
  std::string kind;           // "Service"
  std::string group_version;  // "v1" or "discovery.k8s.io/v1"
  std::string plural;         // "services"
  // /api/v1/namespaces/NS/PLURAL for the core group, /apis/GROUP/VERSION/namespaces/NS/PLURAL else;
  // an empty namespace: every namespace (/api/v1/PLURAL).
  std::string path(const std::string& namespace_) const;
};

// One line of a watch stream, decoded: {"type": ..., "object": {...}}.
struct WatchLine {
  enum class Type { Blank, Added, Modified, Deleted, Bookmark, Expired, Error, Unknown, Malformed };
  Type type = Type::Blank;
  nlohmann::json object;         // Added/Modified/Deleted/Bookmark: the object; Expired/Error: the Status
  std::string resource_version;  // the object's metadata.resourceVersion, "" when it has none
  std::string detail;            // Expired/Error: "code N Reason: message"; Unknown: the type; Malformed: why
};
// Expired is an ERROR event whose Status has code 410; Malformed is anything that is not JSON (or
// not UTF-8), not an object, or lacks a string "type" or an object "object". Never throws.
WatchLine decode_watch_line(std::string_view line);

// JSON from the API server. nlohmann's parser (and its dump) recurse once per nesting level, so a
// document nested deeper than kMaxJsonDepth (a hostile or broken object: 100,000 `[` crash it) is
// not parsed: the result is discarded (is_discarded()), as for text that is not JSON. Kubernetes
// objects, managedFields included, stay far below it.
constexpr size_t kMaxJsonDepth = 128;
// Percent-encodes all but RFC 3986's unreserved characters (query values: continue tokens, RVs).
std::string query_escape(std::string_view s);
bool json_depth_ok(std::string_view text, size_t max_depth = kMaxJsonDepth);
nlohmann::json parse_json(std::string_view text);
std::string_view to_string(WatchLine::Type type);  // "ADDED", "MODIFIED", ... as on the wire

struct ReflectorOptions {
  int page_size = 500;                         // LIST limit=
  std::chrono::seconds watch_timeout{300};     // timeoutSeconds is drawn from [N, 2N) as client-go does
  std::chrono::milliseconds stall_timeout{0};  // no byte for this long ends a watch; 0: timeoutSeconds + 30 s
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds healthy_watch{1000};  // a watch that lasted this long, or delivered a line,
                                                  // resets the back-off; a shorter empty one counts as failed
  std::chrono::milliseconds absent_retry{60000};  // after a 404 on the LIST (CRD not installed)
  ClientOptions client;
};

class Reflector {
 public:
  struct Callbacks {  // all called on the reflector's thread, one at a time; any may be empty; none may throw
    // After each complete LIST (the first and every relist): every item, with kind and apiVersion
    // filled in (a list's items lack them), and the list's resourceVersion.
    std::function<void(const Kind&, std::vector<nlohmann::json> items, const std::string& rv)> replaced;
    // Optional: each LIST item (kind and apiVersion filled in) as its page is read, so that only one
    // page's JSON trees are alive at a time; `replaced` then gets no items. `list_started` comes
    // before a LIST's first page (the items handed over before it belong to a LIST given up).
    std::function<void(const Kind&)> list_started;
    std::function<void(const Kind&, nlohmann::json&& item)> list_item;
    // A watch event, in the order the server sent them. type: ADDED, MODIFIED or DELETED.
    std::function<void(const Kind&, std::string_view type, nlohmann::json object)> event;
    // Every failed request, failed or stalled watch, ERROR event and undecodable line.
    std::function<void(const Kind&, const std::string& what)> error;
    // 404 (CRD not installed: retried every absent_retry) or 403 (retried with back-off) on the LIST.
    std::function<void(const Kind&, int status)> absent;
  };

  enum class Phase { Idle, Listing, Watching, Waiting, Stopped };

  Reflector(Access access, std::string namespace_, Kind kind, Callbacks callbacks, ReflectorOptions options = {});
  ~Reflector();  // stop()
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  // Starts the thread (once; after stop() it does nothing).
  void start();
  // Sets the stop flag and joins the thread: it returns within about 100 ms plus the time of the
  // callback running at that moment. Idempotent. From a callback it only sets the flag (the thread
  // ends after the callback returns); the Reflector must not be destroyed from its own callbacks.
  void stop();

  const Kind& kind() const { return kind_; }
  Phase phase() const { return phase_.load(); }
  // Counters for tests and /stats, safe from any thread.
  uint64_t lists() const { return lists_.load(); }      // complete LISTs (replaced calls)
  uint64_t watches() const { return watches_.load(); }  // WATCH requests sent
  std::string resource_version() const;                 // the current resume point

 private:
  enum class Step { List, Watch, Stop };

  void run();
  Step list();
  Step watch();
  // Waits `delay` or until stop; false when stopped.
  bool wait(std::chrono::milliseconds delay);
  std::chrono::milliseconds next_backoff();
  void report(const std::string& what);
  void set_rv(std::string rv);
  std::string describe(const Response& response) const;

  const Kind kind_;
  const std::string namespace_;
  const std::string base_path_;
  Callbacks cb_;
  ReflectorOptions options_;
  std::atomic<bool> stop_{false};
  Client client_;
  std::thread thread_;
  mutable std::mutex mu_;  // rv_ and the wait
  std::condition_variable wake_;
  std::string rv_;
  std::atomic<Phase> phase_{Phase::Idle};
  std::atomic<uint64_t> lists_{0}, watches_{0};
  std::chrono::milliseconds backoff_{0};  // the last back-off drawn; 0 after a reset
  std::mt19937_64 rng_;
};

}  // namespace wp::kube
