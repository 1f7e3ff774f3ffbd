#include "waypoint/server/server.h"

#include <spdlog/spdlog.h>

#include <malloc.h>
#include <sched.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "waypoint/admin/admin.h"
#include "waypoint/admin/config_dump.h"
#include "waypoint/config/snapshot.h"
#include "waypoint/kube/source.h"
#include "waypoint/server/worker.h"
#include "waypoint/stats/prometheus.h"
#include "waypoint/tls/context.h"

namespace wp::server {

namespace {

// How long a scrape or a config dump waits for the workers' samples before it answers with what
// it has (a worker that has just ended never answers).
constexpr std::chrono::milliseconds kGatherTimeout{1'000};

// File events come in bursts (an editor's write + rename, a ConfigMap's symlink swap): act once
// the directory has been quiet this long.
constexpr std::chrono::milliseconds kReloadDebounce{100};
constexpr std::chrono::milliseconds kReloadMaxDelay{1'000};
// Kubernetes API changes within this long become one new snapshot (SPEC §7).
constexpr std::chrono::milliseconds kKubeBatch{50};
// After a quiet spell a change waits this long for the ones written with it (a pod and its
// EndpointSlice arrive on two watches, in either order): one reload for both, and a slice whose
// pod came with it needs no stand-in (which would force a compile from scratch).
constexpr std::chrono::milliseconds kKubeGather{3};

// concurrency 0: one worker per CPU this process may actually use — the CPUs it is allowed to run
// on, and at most the cgroup's CPU quota (a container limited to 2 CPUs on a 64-core node gets 2
// workers, not 64).
int effective_cpus() {
  cpu_set_t set;
  int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
                                                          : static_cast<int>(std::thread::hardware_concurrency());
  std::ifstream max("/sys/fs/cgroup/cpu.max");  // cgroup v2: "<quota> <period>" or "max <period>"
  std::string quota;
  long period = 0;
  if (max >> quota >> period && quota != "max" && period > 0) {
    long q = std::atol(quota.c_str());
    if (q > 0) {
      cpus = std::min<int>(cpus, static_cast<int>((q + period - 1) / period));
    }
  }
  return std::max(1, cpus);
}

// The bytes that decide the TLS contexts: the three files and the trust domain.
bool read_tls_inputs(const config::Bootstrap& b, std::string* bytes, std::string* error) {
  bytes->clear();
  for (const std::string* path : {&b.tls.cert_chain, &b.tls.private_key, &b.tls.root_cert}) {
    std::ifstream in(*path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    if (!in) {
      *error = *path + ": cannot read";
      return false;
    }
    *bytes += s.str();
    *bytes += '\0';
  }
  *bytes += b.trust_domain;
  return true;
}

// Settings that only take effect at start-up; a reload that changes them says so.
std::vector<std::string> restart_only_changes(const config::Bootstrap& a, const config::Bootstrap& b) {
  std::vector<std::string> out;
  auto check = [&out](bool same, const char* what) {
    if (!same) {
      out.push_back(what);
    }
  };
  check(a.listeners.hbone == b.listeners.hbone && a.listeners.admin == b.listeners.admin &&
            a.listeners.metrics == b.listeners.metrics && a.listeners.health == b.listeners.health,
        "spec.listeners");
  check(a.concurrency == b.concurrency, "spec.concurrency");
  check(a.access_log == b.access_log, "spec.log.accessLog");
  check(a.upstream.hbone_port == b.upstream.hbone_port && a.upstream.connect_timeout == b.upstream.connect_timeout &&
            a.upstream.max_streams_per_connection == b.upstream.max_streams_per_connection &&
            a.upstream.idle_timeout == b.upstream.idle_timeout,
        "spec.upstream");
  return out;
}

admin::Response text(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body)};
}

admin::Response json(std::string body) {
  return {200, "application/json", std::move(body)};
}

// The process on its main thread: workers, the admin/metrics/health listeners, signals.
class Process {
 public:
  Process(const RunOptions& options, config::SnapshotPtr snapshot, std::unique_ptr<kube::Source> kube = nullptr)
      : options_(options), snapshot_(std::move(snapshot)), kube_(std::move(kube)) {}

  int run();

 private:
  // The state of one fan_out: the answers so far, and what to do with them.
  template <typename T>
  struct FanOut {
    std::vector<T> answers;
    size_t pending = 0;
    std::function<void(std::vector<T>)> done;
    std::unique_ptr<event::Timer> timeout;
    void complete() {
      if (done) {
        timeout->stop();
        auto d = std::move(done);
        done = nullptr;
        d(std::move(answers));
      }
    }
  };
  // Asks every running worker for a T: `ask` runs on the main thread and hands the worker a
  // reply, which the worker calls once on its own thread. `done` runs on the main thread with the
  // answers — once all are in, or after `timeout` (when not zero) with those that came: a worker
  // that has just ended never answers. The workers never wait for the main thread.
  template <typename T>
  void fan_out(const std::function<void(Worker&, std::function<void(T)>)>& ask,
               std::function<void(std::vector<T>)> done, std::chrono::milliseconds timeout);

  // One reload's work, done on libuv's thread pool so that parsing a large file never stalls the
  // admin listeners; the result is applied on the main thread.
  struct Reload {
    uv_work_t req{};
    Process* self = nullptr;
    // in
    std::string path;
    std::string current_version;
    std::string current_tls;
    config::Bootstrap current_bootstrap;
    // The Kubernetes API mode: the objects to compile with the file's bootstrap, and whether every
    // kind had been listed when they were copied.
    bool kube = false;
    std::string kube_namespace;
    config::SourceObjects objects;
    bool kube_synced = false;
    config::ObjectCache* cache = nullptr;  // the Process's: reloads run one at a time
    // out
    config::SnapshotPtr snapshot;  // a new, different config
    bool incremental = false;      // applied on top of the previous compile (Compiler::update)
    uint64_t decoded = 0;          // objects read anew (not from the cache)
    double cpu_seconds = 0;        // the job's own, on its thread
    std::string config_error;
    std::string tls_bytes;
    tls::ContextPtr server_tls, client_tls;  // new certificates
    std::string tls_error;
  };
  void request_reload(const char* why);
  static void load(Reload& job);
  static void load_config(Reload& job);
  void apply(std::unique_ptr<Reload> job);
  // `trim`: the load freed much (a compile from scratch), worth a malloc_trim.
  void publish(const config::SnapshotPtr& snapshot, bool trim = true);
  void watch_files();

  bool start_workers(const tls::ContextPtr& server_tls, const tls::ContextPtr& client_tls);
  bool start_listeners();
  void install_signals();
  void drain(const char* why);
  // Collects a sample from every running worker (at most kGatherTimeout), then calls `done`.
  void gather(std::function<void(std::vector<WorkerSample>)> done);
  std::vector<const stats::Block*> blocks() const;
  stats::ProcessMetrics process_metrics() const;
  admin::HostLookup host_lookup(std::shared_ptr<const std::vector<WorkerSample>> samples) const;

  void admin_request(const admin::Request& r, admin::Reply reply);
  void metrics_request(const admin::Request& r, admin::Reply reply);
  void health_request(const admin::Request& r, admin::Reply reply);
  void prometheus(admin::Reply reply);

  const RunOptions& options_;
  config::SnapshotPtr snapshot_;
  // The Kubernetes API source (SPEC §7), when spec.kubernetes is set. Its changes start at most
  // one reload per kKubeBatch (on_kube_change); readiness waits for the first snapshot built after
  // every kind's first LIST.
  std::unique_ptr<kube::Source> kube_;
  // What the previous reload read of each object (API mode); only the reload job touches it.
  config::ObjectCache object_cache_;
  std::unique_ptr<event::Timer> kube_batch_;
  bool kube_ready_ = false;
  std::set<std::string> rejected_logged_;  // kind/name@resourceVersion already logged
  void on_kube_change();
  bool serving_ready() const { return ready_ && (kube_ == nullptr || kube_ready_); }
  event::Loop loop_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<bool> running_;
  size_t exited_ = 0;
  bool ready_ = false;
  bool draining_ = false;
  int signals_seen_ = 0;
  stats::Block main_stats_;  // the main thread's own counters (admin listeners)
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<admin::AdminServer> metrics_;
  std::unique_ptr<admin::AdminServer> health_;
  std::vector<uv_signal_t*> signal_handles_;
  tls::ContextPtr server_tls_;
  tls::ContextPtr client_tls_;
  std::string tls_bytes_;  // what the contexts in force were built from
  bool loading_ = false;
  bool reload_again_ = false;
  int64_t config_loads_ok_ = 1;  // the start-up load
  int64_t config_loads_failed_ = 0;
  int64_t config_loads_incremental_ = 0;
  double config_load_cpu_seconds_ = 0;                      // the reload jobs' (start-up excluded)
  std::chrono::steady_clock::time_point kube_reload_at_{};  // the last reload the API source asked for
  int64_t tls_loads_ok_ = 1;
  int64_t tls_loads_failed_ = 0;
  struct Watch {
    uv_fs_event_t* handle = nullptr;
    std::set<std::string> names;  // the entries of the directory that matter
  };
  void on_file_event(const std::string& dir, const char* name);
  std::map<std::string, Watch> watches_;  // by directory
  std::unique_ptr<event::Timer> debounce_;
  // Gives freed heap back to the kernel (malloc_trim) after a reload or once many connections have
  // closed: glibc keeps freed chunks of every thread's arena otherwise (TLS buffers of connections
  // that came and went, the parse trees of the reload threads), and RSS would only ever grow.
  std::unique_ptr<event::Timer> trim_timer_;
  int64_t closed_at_trim_ = 0;
  bool trim_due_ = false;
  void maybe_trim();
  std::chrono::steady_clock::time_point first_event_{};  // of the burst the debounce is waiting out
};

template <typename T>
void Process::fan_out(const std::function<void(Worker&, std::function<void(T)>)>& ask,
                      std::function<void(std::vector<T>)> done, std::chrono::milliseconds timeout) {
  auto f = std::make_shared<FanOut<T>>();
  f->done = std::move(done);
  // The timer holds the state weakly: the workers' replies own it, and it goes when the last is in.
  f->timeout = std::make_unique<event::Timer>(loop_, [weak = std::weak_ptr<FanOut<T>>(f)] {
    if (auto s = weak.lock()) {
      s->complete();
    }
  });
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (!running_[i]) {
      continue;
    }
    ++f->pending;
    ask(*workers_[i], [this, f](T answer) {
      loop_.post([f, answer = std::move(answer)]() mutable {
        f->answers.push_back(std::move(answer));
        if (--f->pending == 0) {
          f->complete();
        }
      });
    });
  }
  if (f->pending == 0) {
    f->complete();
  } else if (timeout.count() > 0) {
    f->timeout->start(timeout);
  }
}

// From a reflector's thread. A change after a quiet spell is loaded kKubeGather later (with the
// changes written with it); the changes that follow within kKubeBatch of that reload wait for the
// batch timer and become one reload, and those arriving while a reload runs one more after it: at
// most one reload per kKubeBatch under constant churn, and a quiet namespace's change waits 3 ms.
void Process::on_kube_change() {
  loop_.post([this] {
    if (kube_batch_ == nullptr || kube_batch_->armed() || draining_) {
      return;
    }
    auto since = std::chrono::steady_clock::now() - kube_reload_at_;
    if (since >= kKubeBatch) {
      kube_batch_->start(kKubeGather);
    } else {
      kube_batch_->start(std::chrono::duration_cast<std::chrono::milliseconds>(kKubeBatch - since) +
                         std::chrono::milliseconds(1));
    }
  });
}

void Process::request_reload(const char* why) {
  if (draining_) {
    return;
  }
  if (loading_) {
    reload_again_ = true;  // the file may have changed after that load read it
    return;
  }
  loading_ = true;
  spdlog::debug("reload ({}): reading {}", why, options_.config_path);
  auto job = std::make_unique<Reload>();
  job->self = this;
  job->path = options_.config_path;
  job->current_version = snapshot_->version;
  job->current_tls = tls_bytes_;
  job->current_bootstrap = snapshot_->bootstrap;
  if (kube_ != nullptr) {
    job->kube = true;
    job->kube_namespace = kube_->namespace_name();
    job->kube_synced = kube_->synced();  // before the copy: what is copied is at least that complete
    job->objects = kube_->objects();
    job->cache = &object_cache_;
  }
  job->req.data = job.get();
  uv_queue_work(
      loop_.uv(), &job.release()->req, [](uv_work_t* req) { load(*static_cast<Reload*>(req->data)); },
      [](uv_work_t* req, int) {
        std::unique_ptr<Reload> owned(static_cast<Reload*>(req->data));
        owned->self->apply(std::move(owned));
      });
}

// On the thread pool: touches nothing of the process, only the job.
void Process::load(Reload& job) {
  timespec t0{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  load_config(job);
  timespec t1{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  job.cpu_seconds = static_cast<double>(t1.tv_sec - t0.tv_sec) + static_cast<double>(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

void Process::load_config(Reload& job) {
  try {
    if (job.kube && !job.kube_synced) {
      // The first LISTs are still arriving: what has come is read (in parallel with the rest
      // arriving), nothing is compiled or served. A namespace served by halves would route a
      // Service before its VirtualService came and admit requests before the DENY policies had,
      // and each half-load's snapshot (stand-in pods for every endpoint whose Pod was not listed
      // yet) stayed alive into the full one: 44 MB of 10,000 × 10's peak.
      const uint64_t misses = job.cache->misses();
      config::read_into_cache(config::read_config_text(job.path), job.path, job.kube_namespace, job.objects,
                              *job.cache);
      job.decoded = job.cache->misses() - misses;
      job.objects.clear();
    } else if (job.kube) {
      const uint64_t incremental = job.cache->incremental(), misses = job.cache->misses();
      job.snapshot = config::load_snapshot_from_objects(config::read_config_text(job.path), job.path,
                                                        job.kube_namespace, job.objects, true, job.cache);
      job.incremental = job.cache->incremental() != incremental;
      job.decoded = job.cache->misses() - misses;
      job.objects.clear();
      if (job.snapshot->version == job.current_version) {
        job.snapshot.reset();  // nothing changed
      }
    } else {
      job.snapshot = config::load_snapshot_if_changed(job.path, job.current_version);
    }
  } catch (const config::ConfigError& e) {
    job.config_error = e.what();
  }
  const config::Bootstrap& boot = job.snapshot ? job.snapshot->bootstrap : job.current_bootstrap;
  if (!read_tls_inputs(boot, &job.tls_bytes, &job.tls_error) || job.tls_bytes == job.current_tls) {
    return;
  }
  try {
    job.server_tls = tls::Context::make(tls::Context::Role::Server, boot.tls, boot.trust_domain);
    job.client_tls = tls::Context::make(tls::Context::Role::Client, boot.tls, boot.trust_domain);
  } catch (const std::exception& e) {
    job.server_tls.reset();
    job.tls_error = e.what();
  }
}

void Process::apply(std::unique_ptr<Reload> job) {
  loading_ = false;
  if (draining_) {
    return;
  }
  config_load_cpu_seconds_ += job->cpu_seconds;
  if (!job->config_error.empty()) {
    ++config_loads_failed_;
    spdlog::error("config reload rejected; version {} stays in force:\n{}", snapshot_->version, job->config_error);
  } else if (job->snapshot) {
    for (const auto& what : restart_only_changes(snapshot_->bootstrap, job->snapshot->bootstrap)) {
      spdlog::warn("config reload: {} changed; it takes effect at the next start", what);
    }
    for (const auto& w : job->snapshot->warnings) {
      spdlog::warn("config: {}", w);
    }
    spdlog::set_level(spdlog::level::from_str(job->snapshot->bootstrap.log_level));
    for (const auto& r : job->snapshot->rejected) {
      if (rejected_logged_.insert(r.kind + "/" + r.name + "@" + r.resource_version).second) {
        spdlog::warn("kubernetes: {} {} (resourceVersion {}) rejected, the rest is served:\n{}", r.kind, r.name,
                     r.resource_version, r.reason);
      }
    }
    config_loads_incremental_ += job->incremental ? 1 : 0;
    // A compile from scratch, or many objects read (the first LISTs arriving as changes), frees
    // much: trimmed at once. One change applied incrementally frees little: trimmed later.
    constexpr uint64_t kTrimAfterObjects = 64;
    publish(job->snapshot, !job->incremental || job->decoded >= kTrimAfterObjects);
  }
  if (job->kube_synced && !kube_ready_ && job->config_error.empty()) {
    // The snapshot in force (just published, or unchanged) holds every kind's first LIST.
    kube_ready_ = true;
    spdlog::info("kubernetes: every kind listed; ready");
  }
  if (!job->tls_error.empty()) {
    ++tls_loads_failed_;
    spdlog::error("certificate reload rejected; the certificates in force stay: {}", job->tls_error);
  } else if (job->server_tls) {
    server_tls_ = job->server_tls;
    client_tls_ = job->client_tls;
    tls_bytes_ = job->tls_bytes;
    for (auto& w : workers_) {
      w->set_tls(server_tls_, client_tls_);
    }
    ++tls_loads_ok_;
    spdlog::info("certificates reloaded: new handshakes use {}", server_tls_->own_identity());
  }
  watch_files();
  if (reload_again_) {
    reload_again_ = false;
    request_reload("changed while loading");
  }
}

// Every worker switches; the snapshot becomes the one the admin API shows (and counts as
// loaded) once all have, so /config_dump never shows a config some worker is not running.
void Process::maybe_trim() {
  // Connections closed so far (accepted or dialled, minus those open): a burst that comes and goes
  // between two checks still counts.
  auto all = blocks();
  int64_t closed = stats::sum(all, stats::Id::downstream_cx_total) - stats::sum(all, stats::Id::downstream_cx_active) +
                   stats::sum(all, stats::Id::upstream_cx_total) - stats::sum(all, stats::Id::upstream_cx_active);
  constexpr int64_t kClosedBeforeTrim = 64;
  if (trim_due_ || closed - closed_at_trim_ >= kClosedBeforeTrim) {
    trim_due_ = false;
    closed_at_trim_ = closed;
    malloc_trim(0);  // every arena; a few ms at most, and only after such events
  }
}

void Process::publish(const config::SnapshotPtr& snapshot, bool trim) {
  fan_out<bool>(
      [&snapshot](Worker& w, std::function<void(bool)> reply) {
        w.set_snapshot(snapshot, [reply = std::move(reply)] { reply(true); });
      },
      [this, snapshot, trim](std::vector<bool>) {
        spdlog::info("config reloaded: version {} -> {}", snapshot_->version, snapshot->version);
        snapshot_ = snapshot;
        ++config_loads_ok_;
        // The old snapshot and the parse tree are free now (or soon): trimmed at once after a big
        // load, else by the next tick of trim_timer_ (2 s), so that under churn one trim serves
        // many small incremental loads instead of costing more than each of them.
        trim_due_ = true;
        if (trim) {
          maybe_trim();
        }
      },
      std::chrono::milliseconds(0));  // every worker must have switched: no timeout
}

// Watch the directories, not the files: editors replace files (a new inode), and Kubernetes
// swaps a `..data` symlink in the mounted directory. An event on one of the entries that lead to
// the config or a certificate (the name, the first hop of its symlink, the resolved file)
// triggers a debounced reload, which re-reads the config and the certificates and applies only
// what changed. Other files in those directories (a log file, say) are ignored.
void Process::watch_files() {
  std::map<std::string, std::set<std::string>> wanted;
  auto add = [&wanted](const std::string& path) {
    std::error_code ec;
    std::filesystem::path p = std::filesystem::absolute(path, ec);
    wanted[p.parent_path().string()].insert(p.filename().string());
    std::filesystem::path link = std::filesystem::read_symlink(p, ec);
    if (!ec && link.is_relative() && !link.empty()) {
      wanted[p.parent_path().string()].insert(link.begin()->string());  // "..data" of "..data/config.yaml"
    }
    auto real = std::filesystem::canonical(p, ec);
    if (!ec) {
      wanted[real.parent_path().string()].insert(real.filename().string());
    }
  };
  add(options_.config_path);
  const config::TlsFiles& t = snapshot_->bootstrap.tls;
  for (const auto* f : {&t.cert_chain, &t.private_key, &t.root_cert}) {
    add(*f);
  }
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (wanted.count(it->first) == 0) {
      event::close_and_delete(it->second.handle);
      it = watches_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [dir, names] : wanted) {
    auto it = watches_.find(dir);
    if (it != watches_.end()) {
      it->second.names = std::move(names);
      continue;
    }
    auto* h = new uv_fs_event_t;
    uv_fs_event_init(loop_.uv(), h);
    h->data = this;
    int rc = uv_fs_event_start(
        h,
        [](uv_fs_event_t* handle, const char* name, int, int) {
          char path[4096];
          size_t size = sizeof(path);
          if (uv_fs_event_getpath(handle, path, &size) == 0) {
            static_cast<Process*>(handle->data)->on_file_event(std::string(path, size), name);
          }
        },
        dir.c_str(), 0);
    if (rc != 0) {
      spdlog::warn("cannot watch {} for changes ({}); reload with SIGHUP", dir, uv_strerror(rc));
      event::close_and_delete(h);
      continue;
    }
    watches_.emplace(dir, Watch{h, std::move(names)});
  }
}

void Process::on_file_event(const std::string& dir, const char* name) {
  auto it = watches_.find(dir);
  if (it == watches_.end()) {
    return;
  }
  // Kubernetes' atomic writer renames "..data_tmp" over "..data": the event names "..data", the
  // first hop of the config's symlink, which is among the names watched.
  if (name != nullptr && *name != '\0' && it->second.names.count(name) == 0) {
    return;
  }
  // Wait for the burst to end, but not for ever: a file rewritten without pause still reloads.
  auto now = std::chrono::steady_clock::now();
  if (!debounce_->armed()) {
    first_event_ = now;
  }
  if (now - first_event_ < kReloadMaxDelay) {
    debounce_->start(kReloadDebounce);
  }
}

bool Process::start_workers(const tls::ContextPtr& server_tls, const tls::ContextPtr& client_tls) {
  const config::Bootstrap& boot = snapshot_->bootstrap;
  int n = boot.concurrency > 0 ? boot.concurrency : effective_cpus();
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>(i, snapshot_, server_tls, client_tls);
    std::string err;
    if (!w->bind(&err)) {
      std::fprintf(stderr, "%s\n", err.c_str());
      return false;
    }
    workers_.push_back(std::move(w));
  }
  running_.assign(workers_.size(), true);
  return true;
}

bool Process::start_listeners() {
  const config::Listeners& l = snapshot_->bootstrap.listeners;
  const config::AdminListenerSettings& a = snapshot_->bootstrap.admin_listeners;
  admin::ServerLimits limits;
  limits.max_connections = a.max_connections;
  limits.idle_timeout = a.idle_timeout;
  limits.max_request_bytes = a.max_request_bytes;
  // The three listeners together never hold more than a quarter of the descriptors the process
  // may open, whatever the config says: the rest is for HBONE.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    auto share = static_cast<uint32_t>(std::max<rlim_t>(4, nofile.rlim_cur / 12));
    if (share < limits.max_connections) {
      spdlog::info("admin listeners: at most {} connections each (a twelfth of the descriptor limit {})", share,
                   nofile.rlim_cur);
      limits.max_connections = share;
    }
  }
  admin::ServerLimits probe_limits = limits;
  limits.loopback_host_only = !l.allow_non_loopback_admin;
  admin_ = std::make_unique<admin::AdminServer>(
      loop_, [this](const admin::Request& r, admin::Reply reply) { admin_request(r, std::move(reply)); }, limits,
      main_stats_);
  metrics_ = std::make_unique<admin::AdminServer>(
      loop_, [this](const admin::Request& r, admin::Reply reply) { metrics_request(r, std::move(reply)); },
      probe_limits, main_stats_);
  health_ = std::make_unique<admin::AdminServer>(
      loop_, [this](const admin::Request& r, admin::Reply reply) { health_request(r, std::move(reply)); }, probe_limits,
      main_stats_);
  std::string err;
  if (!admin_->listen(l.admin, &err) || !metrics_->listen(l.metrics, &err) || !health_->listen(l.health, &err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return false;
  }
  return true;
}

void Process::gather(std::function<void(std::vector<WorkerSample>)> done) {
  fan_out<WorkerSample>([](Worker& w, std::function<void(WorkerSample)> reply) { w.sample(std::move(reply)); },
                        std::move(done), kGatherTimeout);
}

std::vector<const stats::Block*> Process::blocks() const {
  std::vector<const stats::Block*> out;
  out.push_back(&main_stats_);
  for (const auto& w : workers_) {
    out.push_back(&w->stats());
  }
  return out;
}

stats::ProcessMetrics Process::process_metrics() const {
  stats::ProcessMetrics p;
  p.workers = static_cast<int64_t>(workers_.size());
  p.config_loads_ok = config_loads_ok_;
  p.config_loads_failed = config_loads_failed_;
  p.config_loads_incremental = config_loads_incremental_;
  p.config_load_cpu_seconds = config_load_cpu_seconds_;
  p.certificate_loads_ok = tls_loads_ok_;
  p.certificate_loads_failed = tls_loads_failed_;
  p.config_loaded_at = std::chrono::duration<double>(snapshot_->loaded_at.time_since_epoch()).count();
  p.ready = serving_ready();
  if (kube_ != nullptr) {
    p.kubernetes = kube_->metrics();
    for (const auto& kind : kube::Source::kinds()) {
      p.rejected_objects[kind.kind] = 0;
    }
    for (const auto& r : snapshot_->rejected) {
      ++p.rejected_objects[r.kind];
    }
  }
  return p;
}

// Endpoint state merged over workers: ejected when any worker has ejected it (each worker runs its
// own outlier detection), counts summed.
admin::HostLookup Process::host_lookup(std::shared_ptr<const std::vector<WorkerSample>> samples) const {
  return [samples](const config::RoutedCluster& cluster, size_t index) {
    admin::HostRuntime h;
    for (const auto& s : *samples) {
      auto it = s.hosts.find(cluster.name);
      if (it == s.hosts.end() || index >= it->second.size()) {
        continue;
      }
      const admin::HostRuntime& w = it->second[index];
      h.ejected = h.ejected || w.ejected;
      h.ejected_on_workers += w.ejected_on_workers;
      h.consecutive_5xx = std::max(h.consecutive_5xx, w.consecutive_5xx);
      h.active_requests += w.active_requests;
    }
    return h;
  };
}

void Process::prometheus(admin::Reply reply) {
  gather([this, reply = std::move(reply)](std::vector<WorkerSample> samples) {
    std::vector<stats::MetricsSample> metrics;
    for (auto& s : samples) {
      metrics.push_back(std::move(s.metrics));
    }
    reply({200, "text/plain; version=0.0.4; charset=utf-8",
           stats::render_prometheus(stats::merge(metrics), blocks(), process_metrics())});
  });
}

void Process::admin_request(const admin::Request& r, admin::Reply reply) {
  const std::string& p = r.path;
  if (r.method == "POST") {
    if (p == "/logging") {
      auto level = r.param("level");
      if (!level || (spdlog::level::from_str(*level) == spdlog::level::off && *level != "off")) {
        reply(text(400, "usage: POST /logging?level=trace|debug|info|warn|error|critical|off\n"));
        return;
      }
      spdlog::set_level(spdlog::level::from_str(*level));
      spdlog::info("admin: log level set to {}", *level);
      reply(text(200, "log level: " + *level + "\n"));
    } else if (p == "/drain_listeners") {
      // As Envoy's: the HBONE listeners close, open connections go on being served (with
      // ?graceful they get a GOAWAY), and the process exits only on SIGTERM / SIGINT.
      bool graceful = r.param("graceful").has_value();
      if (!ready_) {
        spdlog::info("admin POST /drain_listeners: listeners already closed");
      } else {
        spdlog::info(
            "admin POST /drain_listeners{}: HBONE listeners closed, readiness 503; open connections "
            "are still served; exit on SIGTERM",
            graceful ? "?graceful" : "");
      }
      ready_ = false;
      for (auto& w : workers_) {
        w->drain_listeners(graceful);
      }
      reply(text(200, "OK\n"));
    } else {
      reply(text(404, "not found\n"));
    }
    return;
  }
  if (r.method != "GET") {
    reply(text(405, "method not allowed\n"));
    return;
  }
  if (p == "/stats") {
    reply(text(200, stats::render_text(blocks())));
  } else if (p == "/stats/prometheus") {
    prometheus(std::move(reply));
  } else if (p == "/ready") {
    reply(text(ready_ ? 200 : 503, ready_ ? "LIVE\n" : "DRAINING\n"));
  } else if (p == "/listeners") {
    reply(json(admin::listeners_json(*snapshot_)));
  } else if (p == "/clusters") {
    reply(json(admin::clusters_json(*snapshot_)));
  } else if (p == "/routes") {
    reply(json(admin::routes_json(*snapshot_)));
  } else if (p == "/endpoints" || p == "/config_dump") {
    bool dump = p == "/config_dump";
    gather([this, dump, snapshot = snapshot_, reply = std::move(reply)](std::vector<WorkerSample> samples) {
      auto lookup = host_lookup(std::make_shared<const std::vector<WorkerSample>>(std::move(samples)));
      reply(json(dump ? admin::config_dump_json(*snapshot, lookup) : admin::endpoints_json(*snapshot, lookup)));
    });
  } else if (p == "/") {
    reply(text(200,
               "GET  /config_dump /listeners /clusters /routes /endpoints\n"
               "GET  /stats /stats/prometheus /ready\n"
               "POST /logging?level=LEVEL /drain_listeners\n"));
  } else {
    reply(text(404, "not found\n"));
  }
}

void Process::metrics_request(const admin::Request& r, admin::Reply reply) {
  if (r.method != "GET") {
    reply(text(405, "method not allowed\n"));
  } else if (r.path == "/stats/prometheus" || r.path == "/metrics") {
    prometheus(std::move(reply));
  } else {
    reply(text(404, "not found\n"));
  }
}

void Process::health_request(const admin::Request& r, admin::Reply reply) {
  if (r.method != "GET") {
    reply(text(405, "method not allowed\n"));
  } else if (r.path == "/healthz/ready") {
    bool ready = serving_ready();
    reply(text(ready ? 200 : 503,
               ready ? "ready\n"
                     : (ready_ ? "not ready: waiting for the first sync of the Kubernetes API\n" : "not ready\n")));
  } else {
    reply(text(404, "not found\n"));
  }
}

void Process::drain(const char* why) {
  if (!draining_) {
    spdlog::info("{}: readiness 503, no new tunnels", why);
  }
  draining_ = true;
  ready_ = false;
}

// SIGTERM/SIGINT: stop accepting, GOAWAY, drain up to drain_time, exit 0. A second signal: exit now.
void Process::install_signals() {
  for (int signum : {SIGTERM, SIGINT}) {
    auto* h = new uv_signal_t;
    uv_signal_init(loop_.uv(), h);
    h->data = this;
    uv_signal_start(
        h,
        [](uv_signal_t* s, int num) {
          auto* self = static_cast<Process*>(s->data);
          if (++self->signals_seen_ > 1) {
            spdlog::warn("second signal: exiting without draining");
            std::_Exit(0);
          }
          spdlog::info("signal {}: draining for up to {} ms", num, self->options_.drain_time.count());
          self->drain("shutdown");
          for (auto& w : self->workers_) {
            w->shutdown(self->options_.drain_time);
          }
        },
        signum);
    signal_handles_.push_back(h);
  }
  auto* hup = new uv_signal_t;
  uv_signal_init(loop_.uv(), hup);
  hup->data = this;
  uv_signal_start(
      hup, [](uv_signal_t* s, int) { static_cast<Process*>(s->data)->request_reload("SIGHUP"); }, SIGHUP);
  signal_handles_.push_back(hup);
}

int Process::run() {
  const config::Bootstrap& boot = snapshot_->bootstrap;
  std::string error;
  if (!read_tls_inputs(boot, &tls_bytes_, &error)) {
    std::fprintf(stderr, "%s: tls: %s\n", options_.config_path.c_str(), error.c_str());
    return 1;
  }
  try {
    server_tls_ = tls::Context::make(tls::Context::Role::Server, boot.tls, boot.trust_domain);
    client_tls_ = tls::Context::make(tls::Context::Role::Client, boot.tls, boot.trust_domain);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: tls: %s\n", options_.config_path.c_str(), e.what());
    return 1;
  }
  if (!start_workers(server_tls_, client_tls_) || !start_listeners()) {
    return 1;
  }
  debounce_ = std::make_unique<event::Timer>(loop_, [this] { request_reload("file change"); });
  if (kube_ != nullptr) {
    kube_batch_ = std::make_unique<event::Timer>(loop_, [this] {
      kube_reload_at_ = std::chrono::steady_clock::now();
      request_reload("kubernetes");
    });
  }
  trim_timer_ = std::make_unique<event::Timer>(loop_, [this] { maybe_trim(); });
  trim_timer_->start(std::chrono::seconds(2), std::chrono::seconds(2));
  watch_files();
  // Each worker says when its thread ends; the main loop stops after the last one (the listeners
  // keep answering, readiness 503, meanwhile).
  for (size_t i = 0; i < workers_.size(); ++i) {
    workers_[i]->start([this, i] {
      loop_.post([this, i] {
        running_[i] = false;
        if (++exited_ == workers_.size()) {
          loop_.stop();
        }
      });
    });
  }
  ready_ = true;
  spdlog::info(
      "waypoint ready: hbone {} ({} workers), admin {}, metrics {}, health {}, namespace {}, config {} "
      "version {}",
      boot.listeners.hbone.to_string(), workers_.size(), boot.listeners.admin.to_string(),
      boot.listeners.metrics.to_string(), boot.listeners.health.to_string(), boot.namespace_, options_.config_path,
      snapshot_->version);
  install_signals();
  if (kube_ != nullptr) {
    kube_->set_changed([this] { on_kube_change(); });
    kube_->start();
  }
  loop_.run();
  if (kube_ != nullptr) {
    kube_->stop();
  }
  while (loading_) {  // a reload in flight: let it finish (it sees draining_ and changes nothing)
    uv_run(loop_.uv(), UV_RUN_ONCE);
  }
  for (auto* h : signal_handles_) {
    event::close_and_delete(h);
  }
  for (auto& [dir, w] : watches_) {
    event::close_and_delete(w.handle);
  }
  watches_.clear();
  debounce_.reset();
  kube_batch_.reset();
  trim_timer_.reset();
  for (auto& w : workers_) {
    w->join();
  }
  spdlog::info("waypoint stopped");
  return 0;
}

}  // namespace

int run(const RunOptions& options) {
  std::signal(SIGPIPE, SIG_IGN);
  config::SnapshotPtr snapshot;
  std::unique_ptr<kube::Source> kube;
  try {
    std::string text = config::read_config_text(options.config_path);
    // The bootstrap decides the mode; only a file that can hold spec.kubernetes is read twice.
    std::optional<config::Bootstrap> boot;
    if (text.find("kubernetes") != std::string::npos) {
      boot = config::load_bootstrap(text, options.config_path);
    }
    if (boot && boot->kubernetes.enabled) {
      std::string error;
      auto access =
          kube::resolve_access(options.kubeconfig.empty() ? boot->kubernetes.kubeconfig : options.kubeconfig, error);
      if (!access) {
        std::fprintf(stderr, "%s: spec.kubernetes: %s\n", options.config_path.c_str(), error.c_str());
        return 1;
      }
      std::string ns = kube::watched_namespace(boot->kubernetes.namespace_, *access, boot->namespace_);
      // Nothing is known yet: the bootstrap alone (readiness waits for the first sync).
      snapshot = config::load_snapshot_from_objects(text, options.config_path, ns, config::SourceObjects{});
      spdlog::info("kubernetes: namespace {} from {} ({})", ns, access->server, access->origin);
      kube = std::make_unique<kube::Source>(std::move(*access), ns);
    } else {
      snapshot = config::load_snapshot_from_string(text, options.config_path);
    }
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  // Parsing holds the whole YAML tree (about 50x the file's size in yaml-cpp nodes); once it is
  // freed, give those pages back instead of keeping them as the process's RSS for its lifetime.
  malloc_trim(0);
  spdlog::set_level(spdlog::level::from_str(snapshot->bootstrap.log_level));
  for (const auto& w : snapshot->warnings) {
    spdlog::warn("config: {}", w);
  }
  Process process(options, snapshot, std::move(kube));
  return process.run();
}

}  // namespace wp::server
