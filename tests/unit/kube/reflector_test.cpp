// wp::kube::Reflector against tests/support/fake_apiserver.py on 127.0.0.1: LIST pages, WATCH
// events, bookmarks, 410, drops, stalls, auth, absent kinds, limits, stop.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "apiserver_fixture.h"
#include "waypoint/kube/reflector.h"

using namespace std::chrono_literals;
using nlohmann::json;
using wp::kube::Kind;
using wp::kube::Reflector;
using wp::kube::ReflectorOptions;
using wp::kube::testing::FakeApiServer;
using wp::kube::testing::service;

namespace {

// Records a reflector's callbacks; wait() blocks until a predicate over the record holds.
class Recorder {
 public:
  struct Event {
    std::string type, name, rv;
  };
  Reflector::Callbacks callbacks();

  // Waits up to `timeout` for pred() (called with the lock held, on every callback and at least
  // every 20 ms, since it may look at the fake server too); false on timeout.
  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(8000)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock<std::mutex> lock(mu);
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return false;
      }
      cv.wait_for(lock, std::chrono::milliseconds(20));
    }
    return true;
  }

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::vector<nlohmann::json>> lists;  // each replaced() call's items
  std::vector<std::string> list_rvs;
  std::vector<Event> events;
  std::vector<std::string> errors;
  std::vector<int> absent;
};

// Options with short timings for tests.

Reflector::Callbacks Recorder::callbacks() {
  Reflector::Callbacks cb;
  cb.replaced = [this](const Kind&, std::vector<nlohmann::json> items, const std::string& rv) {
    std::lock_guard<std::mutex> lock(mu);
    lists.push_back(std::move(items));
    list_rvs.push_back(rv);
    cv.notify_all();
  };
  cb.event = [this](const Kind&, std::string_view type, nlohmann::json object) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(
        {std::string(type), object["metadata"].value("name", ""), object["metadata"].value("resourceVersion", "")});
    cv.notify_all();
  };
  cb.error = [this](const Kind&, const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    errors.push_back(what);
    cv.notify_all();
  };
  cb.absent = [this](const Kind&, int status) {
    std::lock_guard<std::mutex> lock(mu);
    absent.push_back(status);
    cv.notify_all();
  };
  return cb;
}

ReflectorOptions fast_options() {
  ReflectorOptions o;
  o.watch_timeout = std::chrono::seconds(30);
  o.backoff_initial = std::chrono::milliseconds(50);
  o.backoff_max = std::chrono::milliseconds(200);
  o.healthy_watch = std::chrono::milliseconds(200);
  o.absent_retry = std::chrono::milliseconds(300);
  o.client.connect_timeout = std::chrono::milliseconds(2000);
  o.client.read_timeout = std::chrono::milliseconds(5000);
  return o;
}

const Kind kServices{"Service", "v1", "services"};
const Kind kVirtualServices{"VirtualService", "networking.istio.io/v1", "virtualservices"};
const std::string kServicesPath = "/api/v1/namespaces/shop/services";

json pod(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "shop"}}},
          {"spec", {{"containers", {{{"name", "c"}, {"image", "i"}}}}}}};
}

// The resourceVersion the fake gave the first object of an apply.
std::string applied_rv(const json& reply) {
  return reply["results"][0]["resourceVersion"];
}

std::string query_value(const std::string& query, const std::string& key) {
  std::string needle = key + "=";
  size_t at = 0;
  while ((at = query.find(needle, at)) != std::string::npos) {
    if (at == 0 || query[at - 1] == '&') {
      size_t end = query.find('&', at);
      return query.substr(at + needle.size(), end == std::string::npos ? std::string::npos : end - at - needle.size());
    }
    ++at;
  }
  return "";
}

std::vector<json> watch_requests(FakeApiServer& api, const std::string& path = kServicesPath) {
  std::vector<json> out;
  for (auto& e : api.log_for(path)) {
    if (query_value(e["query"], "watch") == "1") {
      out.push_back(e);
    }
  }
  return out;
}

bool contains(const std::vector<std::string>& errors, const std::string& text) {
  for (const auto& e : errors) {
    if (e.find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("Kind::path: core group, named groups, all namespaces", "[kube][reflector]") {
  CHECK(kServices.path("shop") == "/api/v1/namespaces/shop/services");
  CHECK(kVirtualServices.path("shop") == "/apis/networking.istio.io/v1/namespaces/shop/virtualservices");
  CHECK(Kind{"EndpointSlice", "discovery.k8s.io/v1", "endpointslices"}.path("") ==
        "/apis/discovery.k8s.io/v1/endpointslices");
}

TEST_CASE("decode_watch_line: events, bookmarks, 410 and other ERRORs, and what cannot be trusted",
          "[kube][reflector]") {
  using wp::kube::decode_watch_line;
  using T = wp::kube::WatchLine::Type;
  auto ev =
      decode_watch_line(R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"17"}}})");
  CHECK(ev.type == T::Added);
  CHECK(ev.object["metadata"]["name"] == "a");
  CHECK(ev.resource_version == "17");
  CHECK(wp::kube::to_string(ev.type) == "ADDED");
  CHECK(decode_watch_line(R"({"type":"MODIFIED","object":{}})").type == T::Modified);
  ev = decode_watch_line(R"({"type":"DELETED","object":{"metadata":{}}})");
  CHECK(ev.type == T::Deleted);
  CHECK(ev.resource_version.empty());
  ev = decode_watch_line(R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"abc/opaque"}}})");
  CHECK(ev.type == T::Bookmark);
  CHECK(ev.resource_version == "abc/opaque");
  ev = decode_watch_line(
      R"j({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 5 (9)"}})j");
  CHECK(ev.type == T::Expired);
  CHECK(ev.detail == "code 410 Expired: too old resource version: 5 (9)");
  ev = decode_watch_line(R"({"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError"}})");
  CHECK(ev.type == T::Error);
  CHECK_THAT(ev.detail, Catch::StartsWith("code 500 InternalError"));
  CHECK(decode_watch_line(R"({"type":"ERROR","object":{"code":"410"}})").type == T::Error);  // a string is no code
  ev = decode_watch_line(R"({"type":"SOMETHING","object":{}})");
  CHECK(ev.type == T::Unknown);
  CHECK(ev.detail == "SOMETHING");
  CHECK(decode_watch_line("").type == T::Blank);
  CHECK(decode_watch_line(" \t").type == T::Blank);
  std::vector<std::string> malformed = {R"({"type":"ADDED","object":{"metadata":)",  // cut short
                                        R"([1,2])",
                                        R"("ADDED")",
                                        R"({"object":{}})",
                                        R"({"type":1,"object":{}})",
                                        R"({"type":"ADDED","object":[]})",
                                        R"({"type":"ADDED"})",
                                        "{\"type\":\"ADDED\",\"object\":{\"x\":\"\xff\"}}",  // not UTF-8
                                        "null",
                                        "} {"};
  for (const std::string& bad : malformed) {
    INFO(bad);
    ev = decode_watch_line(bad);
    CHECK(ev.type == T::Malformed);
    CHECK_FALSE(ev.detail.empty());
  }
}

TEST_CASE("decode_watch_line: an object nested 100,000 deep is refused before parsing, not a crash",
          "[kube][reflector]") {
  std::string deep = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"spec\":" + std::string(100000, '[') +
                     std::string(100000, ']') + "}}";
  auto line = wp::kube::decode_watch_line(deep);
  CHECK(line.type == wp::kube::WatchLine::Type::Malformed);
  CHECK(line.detail.find("nested deeper than 128") != std::string::npos);
  // Brackets inside strings do not count; 128 levels are fine, 129 are not.
  CHECK(wp::kube::json_depth_ok("{\"a\":\"[[[[[[[[[[[[\\\"[[[[\"}", 2));
  CHECK(wp::kube::json_depth_ok(std::string(128, '[') + std::string(128, ']')));
  CHECK_FALSE(wp::kube::json_depth_ok(std::string(129, '[') + std::string(129, ']')));
  CHECK(wp::kube::parse_json(std::string(129, '[') + std::string(129, ']')).is_discarded());
  CHECK(wp::kube::parse_json(std::string(128, '[') + std::string(128, ']')).is_array());
}

TEST_CASE("Reflector: a LIST of several pages is delivered once, whole, then the WATCH starts from it",
          "[kube][reflector]") {
  FakeApiServer api({"--bookmark-interval", "0"});
  json batch = json::array();
  for (int i = 0; i < 1203; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "svc-%04d", i);
    batch.push_back(service(name));
  }
  batch.push_back(service("elsewhere", "other-namespace"));
  std::string rv = api.apply(batch)["resourceVersion"];
  api.control("POST", "/fake/reset-stats");

  Recorder rec;
  Reflector reflector(api.access(), "shop", kServices, rec.callbacks(), fast_options());
  reflector.start();
  REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }));
  REQUIRE(rec.wait([&] { return !watch_requests(api).empty(); }));
  reflector.stop();

  const auto& items = rec.lists[0];
  REQUIRE(items.size() == 1203);
  std::set<std::string> names;
  for (const auto& item : items) {
    CHECK(item["kind"] == "Service");  // filled in: a typed list's items carry none
    CHECK(item["apiVersion"] == "v1");
    CHECK(item["metadata"]["namespace"] == "shop");
    names.insert(item["metadata"]["name"].get<std::string>());
  }
  CHECK(names.size() == 1203);
  CHECK(rec.list_rvs[0] == rv);
  CHECK(reflector.lists() == 1);

  std::vector<json> pages;
  for (auto& e : api.log_for(kServicesPath)) {
    if (query_value(e["query"], "watch").empty()) {
      pages.push_back(e);
    }
  }
  REQUIRE(pages.size() == 3);  // 500 + 500 + 203
  for (size_t i = 0; i < pages.size(); ++i) {
    CHECK(query_value(pages[i]["query"], "limit") == "500");
    CHECK(query_value(pages[i]["query"], "continue").empty() == (i == 0));
    CHECK(pages[i]["status"] == 200);
  }
  auto watches = watch_requests(api);
  REQUIRE(watches.size() >= 1);
  std::string q = watches[0]["query"];
  CHECK(query_value(q, "resourceVersion") == rv);
  CHECK(query_value(q, "allowWatchBookmarks") == "true");
  int timeout = std::stoi(query_value(q, "timeoutSeconds"));
  CHECK(timeout >= 30);  // watch_timeout 30 s, drawn from [30, 60)
  CHECK(timeout < 60);
  CHECK(rec.errors.empty());
}

TEST_CASE("Reflector: with list_item, a LIST's items are handed over as its pages arrive, each LIST announced first",
          "[kube][reflector]") {
  FakeApiServer api({"--bookmark-interval", "0"});
  json batch = json::array();
  for (int i = 0; i < 1203; ++i) {
    batch.push_back(service("svc-" + std::to_string(i)));
  }
  api.apply(batch);
  Recorder rec;
  Reflector::Callbacks cb = rec.callbacks();
  std::vector<std::string> calls;  // "start", or an item's name; guarded by rec.mu
  cb.list_started = [&](const Kind&) {
    std::lock_guard<std::mutex> lock(rec.mu);
    calls.push_back("start");
  };
  cb.list_item = [&](const Kind& kind, json&& item) {
    std::lock_guard<std::mutex> lock(rec.mu);
    CHECK(kind.kind == "Service");
    CHECK(item["kind"] == "Service");  // filled in, as for replaced()
    calls.push_back(item["metadata"]["name"]);
  };
  {
    Reflector reflector(api.access(), "shop", kServices, cb, fast_options());
    reflector.start();
    REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }));
    reflector.stop();
  }
  REQUIRE(calls.size() == 1204);
  CHECK(calls.front() == "start");
  CHECK(std::set<std::string>(calls.begin() + 1, calls.end()).size() == 1203);
  CHECK(rec.lists[0].empty());  // replaced() gets none: list_item took them

  // A LIST restarted from its first page (expired continue token) is announced again, so the
  // items handed over before can be dropped.
  FakeApiServer expiring({"--continue-ttl", "0"});
  expiring.apply(batch);
  calls.clear();
  Recorder again;
  cb = again.callbacks();
  cb.list_started = [&](const Kind&) {
    std::lock_guard<std::mutex> lock(again.mu);
    calls.push_back("start");
  };
  cb.list_item = [&](const Kind&, json&&) {
    std::lock_guard<std::mutex> lock(again.mu);
    calls.push_back("item");
  };
  ReflectorOptions options = fast_options();
  options.backoff_initial = 1000ms;
  Reflector reflector(expiring.access(), "shop", kServices, cb, options);
  reflector.start();
  REQUIRE(again.wait([&] { return again.errors.size() >= 2; }));
  reflector.stop();
  // start, page 1 (500 items), 410, start, page 1 again, 410.
  REQUIRE(calls.size() >= 1002);
  CHECK(calls[0] == "start");
  CHECK(calls[501] == "start");
  CHECK(std::count(calls.begin(), calls.begin() + 1002, "start") == 2);
  CHECK(again.lists.empty());
}

TEST_CASE("Reflector: watch events arrive in order, each advancing the resourceVersion", "[kube][reflector]") {
  // split:7 cuts every event over many chunks.
  FakeApiServer api({"--bookmark-interval", "0", "--chunking", "split:7"});
  api.apply(service("before"));
  Recorder rec;
  Reflector reflector(api.access(), "shop", kServices, rec.callbacks(), fast_options());
  reflector.start();
  REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }));
  REQUIRE(rec.lists[0].size() == 1);
  REQUIRE(rec.wait([&] { return !watch_requests(api).empty(); }));

  std::vector<std::string> rvs;
  rvs.push_back(applied_rv(api.apply(service("a"))));
  json a = service("a");
  a["metadata"]["labels"] = {{"version", "2"}};
  rvs.push_back(applied_rv(api.apply(a)));
  rvs.push_back(applied_rv(api.apply(service("b"))));
  rvs.push_back(applied_rv(api.control("POST", "/fake/delete", R"({"kind":"Service","name":"a","namespace":"shop"})")));
  api.apply(pod("not-a-service"));  // another kind: no event here
  REQUIRE(rec.wait([&] { return rec.events.size() >= 4; }));
  std::this_thread::sleep_for(200ms);
  reflector.stop();

  REQUIRE(rec.events.size() == 4);
  CHECK(rec.events[0].type == "ADDED");
  CHECK(rec.events[0].name == "a");
  CHECK(rec.events[1].type == "MODIFIED");
  CHECK(rec.events[1].name == "a");
  CHECK(rec.events[2].type == "ADDED");
  CHECK(rec.events[2].name == "b");
  CHECK(rec.events[3].type == "DELETED");
  CHECK(rec.events[3].name == "a");
  for (size_t i = 0; i < 4; ++i) {
    CHECK(rec.events[i].rv == rvs[i]);
  }
  CHECK(reflector.resource_version() == rvs[3]);
  CHECK(reflector.lists() == 1);
  CHECK(rec.errors.empty());
}

TEST_CASE("Reflector: a BOOKMARK advances the resume point without an event", "[kube][reflector]") {
  FakeApiServer api({"--bookmark-interval", "0.1"});
  Recorder rec;
  Reflector reflector(api.access(), "shop", kServices, rec.callbacks(), fast_options());
  reflector.start();
  REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }));
  std::string list_rv = rec.list_rvs[0];
  // Another kind changes: the global resourceVersion moves, services' bookmarks carry it.
  std::string pod_rv = applied_rv(api.apply(pod("p")));
  CHECK(pod_rv != list_rv);
  REQUIRE(rec.wait([&] { return reflector.resource_version() == pod_rv; }, 3000ms));
  CHECK(rec.events.empty());

  // The watch ends (as at its timeout); the next one resumes from the bookmark's version.
  api.control("POST", "/fake/end");
  REQUIRE(rec.wait([&] { return watch_requests(api).size() >= 2; }));
  reflector.stop();
  auto watches = watch_requests(api);
  CHECK(query_value(watches[0]["query"], "resourceVersion") == list_rv);
  CHECK(query_value(watches[1]["query"], "resourceVersion") == pod_rv);
  CHECK(reflector.lists() == 1);
}

TEST_CASE("Reflector: 410 Gone after compaction, as an ERROR event or an HTTP status, means a fresh LIST",
          "[kube][reflector]") {
  FakeApiServer api({"--bookmark-interval", "0"});
  api.apply(service("a"));
  Recorder rec;
  Reflector reflector(api.access(), "shop", kServices, rec.callbacks(), fast_options());
  reflector.start();
  REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }));
  REQUIRE(rec.wait([&] { return !watch_requests(api).empty(); }));

  for (bool as_http : {false, true}) {
    INFO("expired_as_http " << as_http);
    api.control("POST", "/fake/config", json{{"expired_as_http", as_http}}.dump());
    size_t lists_before = rec.lists.size();
    std::string name = as_http ? "c" : "b";
    // The watch misses a change (stalled), the history is compacted past its resume point, and it
    // is cut: re-opened from the old version it gets 410, and the relist brings the change.
    api.control("POST", "/fake/stall?on=1");
    api.apply(service(name));
    api.control("POST", "/fake/compact");
    api.control("POST", "/fake/drop");
    api.control("POST", "/fake/stall?on=0");
    REQUIRE(rec.wait([&] { return rec.lists.size() == lists_before + 1; }));
    std::set<std::string> names;
    for (const auto& item : rec.lists.back()) {
      names.insert(item["metadata"]["name"].get<std::string>());
    }
    CHECK(names.count(name) == 1);
    // The request that got the 410: HTTP 200 with an ERROR event, or HTTP 410.
    auto watches = watch_requests(api);
    REQUIRE(watches.size() >= 2);
    std::vector<json> from_old;
    for (auto& w : watches) {
      if (query_value(w["query"], "resourceVersion") == rec.list_rvs[lists_before - 1]) {
        from_old.push_back(w);
      }
    }
    REQUIRE(from_old.size() == 2);  // the first watch, and the one re-opened after the drop
    CHECK(from_old[1]["status"] == (as_http ? 410 : 200));
    CHECK(rec.events.empty());
  }
  // And it watches again from the new list.
  api.apply(service("d"));
  REQUIRE(rec.wait([&] { return !rec.events.empty(); }));
  reflector.stop();
  CHECK(rec.events[0].name == "d");
  CHECK(reflector.lists() == 3);
}

TEST_CASE("Reflector: a dropped watch resumes from the last version: nothing lost, nothing twice",
          "[kube][reflector]") {
  FakeApiServer api({"--bookmark-interval", "0"});
  Recorder rec;
  ReflectorOptions options = fast_options();
  options.backoff_initial = 300ms;  // long enough for changes to land while it is disconnected
  Reflector reflector(api.access(), "shop", kServices, rec.callbacks(), options);
  reflector.start();
  REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }));
  REQUIRE(rec.wait([&] { return !watch_requests(api).empty(); }));
  api.apply(service("a"));
  std::string rv_b = applied_rv(api.apply(service("b")));
  REQUIRE(rec.wait([&] { return rec.events.size() == 2; }));

  api.control("POST", "/fake/drop");
  api.apply(service("c"));
  api.apply(service("d"));
  REQUIRE(rec.wait([&] { return rec.events.size() >= 4; }));
  // A server restart (listener closed, down 300 ms) is the same story, through refused connects.
  api.control("POST", "/fake/restart?down_ms=300");
  std::this_thread::sleep_for(500ms);  // the control API is down too
  api.apply(service("e"));
  REQUIRE(rec.wait([&] { return rec.events.size() >= 5; }));
  std::this_thread::sleep_for(200ms);
  reflector.stop();

  std::vector<std::string> names;
  for (const auto& e : rec.events) {
    CHECK(e.type == "ADDED");
    names.push_back(e.name);
  }
  CHECK(names == std::vector<std::string>{"a", "b", "c", "d", "e"});
  CHECK(reflector.lists() == 1);  // resumed, never relisted
  auto watches = watch_requests(api);
  REQUIRE(watches.size() >= 2);
  CHECK(query_value(watches[0]["query"], "resourceVersion") == rec.list_rvs[0]);
  CHECK(query_value(watches[1]["query"], "resourceVersion") == rv_b);
  CHECK(contains(rec.errors, "watch services:"));  // the drop was reported
}

TEST_CASE("Reflector: a stalled watch (not even a bookmark) is detected and re-opened", "[kube][reflector]") {
  FakeApiServer api({"--bookmark-interval", "0.1"});
  Recorder rec;
  ReflectorOptions options = fast_options();
  options.stall_timeout = 500ms;
  Reflector reflector(api.access(), "shop", kServices, rec.callbacks(), options);
  reflector.start();
  REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }));
  std::this_thread::sleep_for(700ms);  // bookmarks every 100 ms: no stall yet
  CHECK(rec.errors.empty());

  api.control("POST", "/fake/stall?on=1");
  api.apply(service("during-stall"));  // queued on the stalled watch
  REQUIRE(rec.wait([&] { return contains(rec.errors, "stalled"); }, 3000ms));
  api.control("POST", "/fake/stall?on=0");
  REQUIRE(rec.wait([&] { return !rec.events.empty(); }, 3000ms));
  api.apply(service("after-stall"));
  REQUIRE(rec.wait([&] { return rec.events.size() >= 2; }, 3000ms));
  std::this_thread::sleep_for(200ms);
  reflector.stop();
  REQUIRE(rec.events.size() == 2);
  CHECK(rec.events[0].name == "during-stall");
  CHECK(rec.events[1].name == "after-stall");
  CHECK(reflector.lists() == 1);
  CHECK(watch_requests(api).size() >= 2);
}

TEST_CASE("Reflector: 401 with a wrong token, in sync once the token file is rotated", "[kube][reflector]") {
  FakeApiServer api;
  api.set_client_token("expired-token");
  Recorder rec;
  Reflector reflector(api.access(), "shop", kServices, rec.callbacks(), fast_options());
  reflector.start();
  REQUIRE(rec.wait([&] { return rec.errors.size() >= 2; }));
  {
    std::lock_guard<std::mutex> lock(rec.mu);
    CHECK_THAT(rec.errors[0], Catch::Contains("list services: HTTP 401 Unauthorized"));
    CHECK(rec.lists.empty());
  }
  api.set_client_token("s3cret-token");
  REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }, 3000ms));
  reflector.stop();
  CHECK(api.stats()["auth"]["rejected"].get<int>() >= 2);
}

TEST_CASE("Reflector: a kind not installed (404) is absent and retried, 403 too, with back-off", "[kube][reflector]") {
  FakeApiServer api;
  api.control("POST", "/fake/fault",
              R"([{"plural":"virtualservices","status":404},{"plural":"services","status":403}])");
  Recorder vs_rec, svc_rec;
  Reflector vs(api.access(), "shop", kVirtualServices, vs_rec.callbacks(), fast_options());
  Reflector svc(api.access(), "shop", kServices, svc_rec.callbacks(), fast_options());
  auto started = std::chrono::steady_clock::now();
  vs.start();
  svc.start();
  REQUIRE(vs_rec.wait([&] { return vs_rec.absent.size() >= 2; }));  // retried after absent_retry
  CHECK(std::chrono::steady_clock::now() - started >= 300ms);
  REQUIRE(svc_rec.wait([&] { return svc_rec.absent.size() >= 2; }));
  CHECK(vs_rec.absent[0] == 404);
  CHECK(svc_rec.absent[0] == 403);
  CHECK(vs_rec.lists.empty());
  CHECK(vs_rec.errors.empty());  // absent is not an error: one line in the log, not a watch error

  api.control("POST", "/fake/fault", R"([{"plural":"virtualservices","status":0},{"plural":"services","status":0}])");
  json v = {{"apiVersion", "networking.istio.io/v1"},
            {"kind", "VirtualService"},
            {"metadata", {{"name", "reviews"}, {"namespace", "shop"}}},
            {"spec", {{"hosts", {"reviews"}}}}};
  api.apply(v);
  REQUIRE(vs_rec.wait([&] { return vs_rec.lists.size() == 1; }, 3000ms));
  REQUIRE(svc_rec.wait([&] { return svc_rec.lists.size() == 1; }, 3000ms));
  vs.stop();
  svc.stop();
  REQUIRE(vs_rec.lists[0].size() == 1);
  CHECK(vs_rec.lists[0][0]["kind"] == "VirtualService");
  CHECK(vs_rec.lists[0][0]["apiVersion"] == "networking.istio.io/v1");
  CHECK(vs_rec.lists[0][0]["metadata"]["name"] == "reviews");
}

TEST_CASE("Reflector: a watch line over the limit is an error and a relist, not a crash", "[kube][reflector]") {
  FakeApiServer api({"--bookmark-interval", "0"});
  Recorder rec;
  ReflectorOptions options = fast_options();
  options.client.max_line_bytes = 16 << 10;
  Reflector reflector(api.access(), "shop", kServices, rec.callbacks(), options);
  reflector.start();
  REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }));
  REQUIRE(rec.wait([&] { return !watch_requests(api).empty(); }));
  api.apply(service("huge", "shop", std::string(64 << 10, 'x')));
  REQUIRE(rec.wait([&] { return rec.lists.size() == 2; }));
  {
    std::lock_guard<std::mutex> lock(rec.mu);
    CHECK(contains(rec.errors, "longer than 16384 bytes"));
    REQUIRE(rec.lists[1].size() == 1);  // the page limit (64 MiB) takes it
    CHECK(rec.lists[1][0]["metadata"]["annotations"]["big"].get<std::string>().size() == 64 << 10);
  }
  api.apply(service("small"));
  REQUIRE(rec.wait([&] { return !rec.events.empty(); }));
  reflector.stop();
  CHECK(rec.events[0].name == "small");
}

TEST_CASE("Reflector: an expired continue token restarts the LIST from its first page", "[kube][reflector]") {
  FakeApiServer api({"--continue-ttl", "0"});  // every continue token has expired when it is used
  json batch = json::array();
  for (int i = 0; i < 600; ++i) {
    batch.push_back(service("svc-" + std::to_string(i)));
  }
  api.apply(batch);
  api.control("POST", "/fake/reset-stats");
  Recorder rec;
  ReflectorOptions options = fast_options();
  options.backoff_initial = 1000ms;
  Reflector reflector(api.access(), "shop", kServices, rec.callbacks(), options);
  reflector.start();
  REQUIRE(rec.wait([&] { return rec.errors.size() >= 2; }));
  reflector.stop();
  CHECK(rec.lists.empty());  // never a partial list
  CHECK_THAT(rec.errors[0], Catch::Contains("continue token expired") && Catch::Contains("410"));
  // page 1, continue → 410, page 1 again at once, continue → 410, then the back-off.
  auto log = api.log_for(kServicesPath);
  REQUIRE(log.size() == 4);
  CHECK(query_value(log[0]["query"], "continue").empty());
  CHECK(log[1]["status"] == 410);
  CHECK(query_value(log[2]["query"], "continue").empty());
  CHECK(log[3]["status"] == 410);
}

TEST_CASE("Reflector: stop() is prompt while watching, stalled or backing off", "[kube][reflector]") {
  FakeApiServer api({"--bookmark-interval", "0.1"});
  auto timed_stop = [](Reflector& r) {
    auto t = std::chrono::steady_clock::now();
    r.stop();
    return std::chrono::steady_clock::now() - t;
  };
  {
    Recorder rec;
    Reflector r(api.access(), "shop", kServices, rec.callbacks(), fast_options());
    r.start();
    REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }));
    std::this_thread::sleep_for(300ms);
    CHECK(r.phase() == Reflector::Phase::Watching);
    CHECK(timed_stop(r) < 500ms);
    CHECK(r.phase() == Reflector::Phase::Stopped);
  }
  {
    Recorder rec;
    api.control("POST", "/fake/stall?on=1");
    ReflectorOptions options = fast_options();
    options.stall_timeout = 60s;
    Reflector r(api.access(), "shop", kServices, rec.callbacks(), options);
    r.start();
    REQUIRE(rec.wait([&] { return rec.lists.size() == 1; }));  // LIST is not stalled, the watch is
    std::this_thread::sleep_for(300ms);
    CHECK(timed_stop(r) < 500ms);
    api.control("POST", "/fake/stall?on=0");
  }
  {
    Recorder rec;
    api.set_client_token("wrong");
    ReflectorOptions options = fast_options();
    options.backoff_initial = 30s;
    Reflector r(api.access(), "shop", kServices, rec.callbacks(), options);
    r.start();
    REQUIRE(rec.wait([&] { return !rec.errors.empty(); }));
    std::this_thread::sleep_for(100ms);
    CHECK(r.phase() == Reflector::Phase::Waiting);
    CHECK(timed_stop(r) < 500ms);
  }
}
