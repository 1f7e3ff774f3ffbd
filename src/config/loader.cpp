// load_snapshot: file → YAML documents, one at a time (config/node.h) → one entry per resource
// (List items flattened) → the bootstrap (it names the namespace; resources before it wait) → each
// other resource read (an Outcome: reports and typed result) and applied, dispatched by apiVersion
// and kind → certificates → compile. Every problem is collected; the load fails once, with all of
// them. The API mode reads each object's JSON the same way (load_snapshot_from_objects).
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <sstream>
#include <unordered_map>

#include "config/authz.h"
#include "config/compiler.h"
#include "config/files.h"
#include "config/node.h"
#include "config/resources.h"
#include "config/routing.h"

namespace wp::config {

namespace {

enum class Handling {
  Bootstrap,
  Gateway,
  Service,
  Pod,
  EndpointSlice,
  VirtualService,
  DestinationRule,
  HTTPRoute,
  AuthorizationPolicy,
  NotApplied,
  Foreign
};

struct KnownKind {
  std::string_view kind;
  Handling handling;
  std::string_view note;  // for NotApplied: what arrives later
};

// The API groups the waypoint reads. In a strict group every kind is the waypoint's business, so an
// unknown kind or version is a typo; in the core group ("v1") other kinds belong to someone else.
struct KnownGroup {
  std::string_view group;
  bool strict;
  std::vector<std::string_view> versions;
  std::vector<KnownKind> kinds;
};

const std::vector<KnownGroup>& known_groups() {
  static const std::vector<KnownGroup> groups = {
      {"", false, {"v1"}, {{"Service", Handling::Service, ""}, {"Pod", Handling::Pod, ""}}},
      {"discovery.k8s.io", false, {"v1"}, {{"EndpointSlice", Handling::EndpointSlice, ""}}},
      {"waypoint.proxy", true, {"v1alpha1"}, {{"WaypointBootstrap", Handling::Bootstrap, ""}}},
      {"gateway.networking.k8s.io",
       true,
       {"v1", "v1beta1"},
       {{"Gateway", Handling::Gateway, ""},
        {"HTTPRoute", Handling::HTTPRoute, ""},
        // Real kinds of the group that a waypoint does not read: ignored and reported, never errors.
        {"GatewayClass", Handling::Foreign, ""},
        {"GRPCRoute", Handling::Foreign, ""},
        {"TCPRoute", Handling::Foreign, ""},
        {"TLSRoute", Handling::Foreign, ""},
        {"UDPRoute", Handling::Foreign, ""},
        {"ReferenceGrant", Handling::Foreign, ""},
        {"BackendTLSPolicy", Handling::Foreign, ""}}},
      {"networking.istio.io",
       true,
       {"v1", "v1beta1", "v1alpha3"},
       {{"VirtualService", Handling::VirtualService, ""},
        {"DestinationRule", Handling::DestinationRule, ""},
        {"Gateway", Handling::Foreign, ""},
        {"ServiceEntry", Handling::Foreign, ""},
        {"Sidecar", Handling::Foreign, ""},
        {"WorkloadEntry", Handling::Foreign, ""},
        {"WorkloadGroup", Handling::Foreign, ""},
        {"EnvoyFilter", Handling::Foreign, ""},
        {"ProxyConfig", Handling::Foreign, ""}}},
      {"security.istio.io",
       true,
       {"v1", "v1beta1"},
       {{"AuthorizationPolicy", Handling::AuthorizationPolicy, ""},
        {"PeerAuthentication", Handling::Foreign, ""},
        {"RequestAuthentication", Handling::Foreign, ""}}},
  };
  return groups;
}

struct Entry {
  Node node;
  ObjectMeta meta;
  Handling handling = Handling::Foreign;
  std::string_view note;
  std::string api_version;
};

std::string join(const std::vector<std::string_view>& words) {
  std::string out;
  for (auto w : words) {
    out += (out.empty() ? "" : ", ") + std::string(w);
  }
  return out;
}

// Looks up apiVersion and kind; reports an unknown kind or version in a strict group.
bool dispatch(Entry& e, Reader& r) {
  const std::string& api_version = e.api_version;
  auto slash = api_version.rfind('/');
  std::string group = slash == std::string::npos ? "" : api_version.substr(0, slash);
  std::string version = slash == std::string::npos ? api_version : api_version.substr(slash + 1);
  auto g =
      std::find_if(known_groups().begin(), known_groups().end(), [&](const KnownGroup& k) { return k.group == group; });
  if (g == known_groups().end()) {
    return true;  // Foreign
  }
  auto k = std::find_if(g->kinds.begin(), g->kinds.end(), [&](const KnownKind& k) { return k.kind == e.meta.kind; });
  if (k == g->kinds.end()) {
    if (g->strict) {
      std::vector<std::string_view> kinds;
      for (const auto& known : g->kinds) {
        if (known.handling != Handling::Foreign) {
          kinds.push_back(known.kind);
        }
      }
      r.error(child(e.node, "kind"), "kind", "unknown kind in " + group + " (this version knows " + join(kinds) + ")");
    }
    return !g->strict;
  }
  if (k->handling == Handling::Foreign) {
    return true;  // ignored whatever its version
  }
  if (std::find(g->versions.begin(), g->versions.end(), version) == g->versions.end()) {
    if (g->strict) {
      r.error(child(e.node, "apiVersion"), "apiVersion",
              "unsupported version " + api_version + " (use " + group + "/" + join(g->versions) + ")");
    }
    return !g->strict;
  }
  e.handling = k->handling;
  e.note = k->note;
  return true;
}

// Reads apiVersion, kind and metadata and decides what to do with the resource.
std::optional<Entry> classify(const Node& node, Diagnostics& diag) {
  Entry e;
  e.node = node;
  Reader r(diag, "resource");
  auto api_version = r.required_string(node, "apiVersion", "apiVersion");
  auto kind = r.required_string(node, "kind", "kind");
  if (!api_version || !kind) {
    return std::nullopt;
  }
  e.api_version = *api_version;
  e.meta.kind = *kind;
  Node metadata = child(node, "metadata");
  auto text = [](const Node& n) { return n.IsScalar() ? n.Scalar() : std::string(); };
  e.meta.name = text(child(metadata, "name"));
  e.meta.namespace_ = text(child(metadata, "namespace"));

  Reader typed(diag, *kind + (e.meta.name.empty() ? "" : " " + e.meta.name));
  if (!dispatch(e, typed)) {
    return std::nullopt;
  }
  if (e.handling == Handling::Foreign) {
    return e;
  }
  if (!present(metadata)) {
    typed.error(node, "metadata.name", "required");
    return std::nullopt;
  }
  if (!typed.expect_map(metadata, "metadata")) {
    return std::nullopt;
  }
  auto name = typed.required_string(metadata, "name", "metadata.name");
  Node ns = child(metadata, "namespace");
  bool ns_ok = !present(ns) || typed.string(ns, "metadata.namespace");
  if (!name || !ns_ok) {
    return std::nullopt;
  }
  return e;
}

// Appends the resource(s) in `node` to `out`: a List contributes its items, in place.
void add_resources(const Node& node, bool in_list, std::vector<Entry>& out, Diagnostics& diag) {
  if (!present(node)) {
    return;
  }
  if (!node.IsMap()) {
    diag.error(mark_of(node),
               std::string(in_list ? "a List item" : "a document") + " must be a Kubernetes resource (a map)");
    return;
  }
  Node kind = child(node, "kind");
  if (kind.IsScalar() && kind.Scalar() == "List") {
    Reader r(diag, "List");
    const Node items = child(node, "items");
    if (in_list) {
      r.error(kind, "kind", "a List inside a List is not supported");
    } else if (present(items) && r.expect_sequence(items, "items")) {
      for (const auto& item : items) {
        add_resources(item, true, out, diag);
      }
    }
    return;
  }
  if (auto entry = classify(node, diag)) {
    out.push_back(std::move(*entry));
  }
}

std::string qualified(const ObjectMeta& meta, const std::string& namespace_) {
  return meta.kind + " " + (meta.namespace_.empty() ? namespace_ : meta.namespace_) + "/" + meta.name;
}

constexpr const char* kNoBootstrap = "no WaypointBootstrap resource (apiVersion: waypoint.proxy/v1alpha1)";

// The error for a WaypointBootstrap after the one at `first`.
std::string second_bootstrap(const std::string& name, Mark first) {
  return "WaypointBootstrap " + name + ": a file holds exactly one WaypointBootstrap (another at " +
         std::to_string(first.line) + ":" + std::to_string(first.column) + ")";
}

// Finds the single bootstrap; reports a missing or repeated one.
std::optional<BootstrapResource> read_bootstrap(const std::vector<Entry>& entries, Diagnostics& diag,
                                                const std::string& path) {
  const Entry* first = nullptr;
  for (const auto& e : entries) {
    if (e.handling != Handling::Bootstrap) {
      continue;
    }
    if (first == nullptr) {
      first = &e;
      continue;
    }
    diag.error(mark_of(e.node), second_bootstrap(e.meta.name, mark_of(first->node)));
  }
  if (first == nullptr) {
    diag.error(Mark{1, 1}, kNoBootstrap);
    return std::nullopt;
  }
  return parse_bootstrap(first->node, first->meta, diag, path);
}

// Reports a second resource of the same kind and name.
class NameRegistry {
 public:
  bool add(const ObjectMeta& meta, Mark at, Diagnostics& diag) {
    auto [it, inserted] = seen_.emplace(meta.kind + "/" + meta.name, at);
    if (!inserted) {
      diag.error(at, meta.kind + " " + meta.name + ": defined twice (first at " + std::to_string(it->second.line) +
                         ":" + std::to_string(it->second.column) + ")");
    }
    return inserted;
  }

 private:
  std::map<std::string, Mark> seen_;
};

// What reading one resource produced, alone: its reports and its typed result (at most one of the
// optionals, or routing / policies entries). Depends only on the resource and the bootstrap, so
// the API mode keeps it per object between loads (ObjectCache) and replays it.
struct Outcome {
  // What most outcomes lack (they are pods' and slices', with no reports): allocated only when
  // one of it is present, so an outcome kept per object costs ~130 bytes instead of ~330.
  struct Rest {
    std::vector<Diagnostics::Entry> errors;
    std::vector<Diagnostics::Entry> warnings;
    std::vector<std::string> ignores;
    std::unique_ptr<const GatewayResource> gateway;
    std::unique_ptr<const ServiceResource> service;
    RoutingResources routing;
    std::vector<AuthzPolicySpec> policies;
  };
  ObjectMeta meta;
  Mark at;
  bool ignored = false;  // not read (another namespace, a kind of someone else): `ignores` says why
  std::unique_ptr<const PodResource> pod;
  std::unique_ptr<const EndpointSliceResource> slice;
  std::unique_ptr<Rest> rest;

  const Rest& more() const { return rest ? *rest : kNone; }  // an empty one when there is none
  Rest& more_mut() {
    if (!rest) {
      rest = std::make_unique<Rest>();
    }
    return *rest;
  }
  static const Rest kNone;
};
const Outcome::Rest Outcome::kNone{};

// Everything one document (an API object) produced: the reports of telling its resources apart,
// then each resource's outcome.
struct ObjectOutcome {
  std::vector<Diagnostics::Entry> errors;
  std::vector<Outcome> resources;
};

template <typename T>
std::unique_ptr<const T> boxed(std::optional<T>&& value) {
  return value ? std::make_unique<const T>(std::move(*value)) : nullptr;
}

// Reads documents one at a time, so that each can be freed once its resources are read (they keep
// positions, not nodes). The bootstrap names the namespace every other resource is read in:
// resources before it wait (with their document) until it comes.
// `bootstrap_only`: the lines [first, last] are the file of the Kubernetes API mode, of which only
// the bootstrap is read (every other resource there is ignored, with a warning).
class Loader {
 public:
  Loader(Diagnostics& diag, Snapshot& snapshot, std::pair<size_t, size_t> bootstrap_only = {0, 0},
         std::string namespace_override = "", bool certificates = true)
      : diag_(diag),
        snapshot_(snapshot),
        bootstrap_only_(bootstrap_only),
        namespace_override_(std::move(namespace_override)),
        certificates_(certificates) {}

  // The resources of `doc`. `owner` (may be null when the caller keeps the document for the whole
  // load) is held while some of them wait for the bootstrap.
  void add(const Document& doc, const std::shared_ptr<const Document>& owner) {
    std::vector<Entry> entries;
    add_resources(doc.root(), false, entries, diag_);
    for (auto& e : entries) {
      if (e.handling == Handling::Bootstrap) {
        bootstrap(e);
      } else if (!bootstrap_at_) {
        if (owner && (pending_docs_.empty() || pending_docs_.back() != owner)) {
          pending_docs_.push_back(owner);
        }
        pending_.push_back(std::move(e));
      } else if (have_bootstrap_) {
        process(e);
      }
    }
  }

  // The API mode: an object's outcome (read_object, with the bootstrap known), replayed by
  // apply_object in this load or a later one with the same bootstrap.
  bool has_bootstrap() const { return have_bootstrap_; }
  ObjectOutcome read_object(const Document& doc) const {
    ObjectOutcome out;
    Diagnostics scratch("");
    std::vector<Entry> entries;
    add_resources(doc.root(), false, entries, scratch);
    out.errors = scratch.errors();
    for (const auto& e : entries) {
      if (e.handling == Handling::Bootstrap) {
        Outcome o;
        o.meta = e.meta;
        o.at = mark_of(e.node);
        o.more_mut().errors.push_back({o.at, second_bootstrap(e.meta.name, *bootstrap_at_)});
        out.resources.push_back(std::move(o));
        continue;
      }
      out.resources.push_back(read(e));
    }
    return out;
  }
  void apply_object(const ObjectOutcome& object) {
    for (const auto& e : object.errors) {
      diag_.error(e.at, e.message);
    }
    for (const auto& o : object.resources) {
      apply(o);
    }
  }

  // Certificates, then the compile: by `compiler` (the API mode's, kept between loads: `keep`) or
  // one of this load's own.
  void finish(Compiler* compiler = nullptr, bool keep = false) {
    if (!bootstrap_at_) {
      diag_.error(Mark{1, 1}, kNoBootstrap);
      return;
    }
    if (!have_bootstrap_) {
      return;
    }
    if (certificates_) {
      check_certificates(resources_.bootstrap, diag_);
    }
    Compiler own;
    (compiler != nullptr ? *compiler : own).compile(resources_, diag_, snapshot_, keep);
  }

 private:
  void bootstrap(const Entry& e) {
    if (bootstrap_at_) {
      diag_.error(mark_of(e.node), second_bootstrap(e.meta.name, *bootstrap_at_));
      return;
    }
    bootstrap_at_ = mark_of(e.node);
    auto parsed = parse_bootstrap(e.node, e.meta, diag_, snapshot_.source_file);
    if (!parsed) {
      return;
    }
    if (!namespace_override_.empty()) {
      parsed->bootstrap.namespace_ = namespace_override_;
    }
    resources_.bootstrap = std::move(*parsed);
    resources_.api_mode = bootstrap_only_.first != 0;
    have_bootstrap_ = true;
    for (const auto& waiting : pending_) {
      process(waiting);
    }
    pending_.clear();
    pending_docs_.clear();
  }

  void process(const Entry& e) {
    const Bootstrap& b = resources_.bootstrap.bootstrap;
    if (size_t line = static_cast<size_t>(mark_of(e.node).line);
        line >= bootstrap_only_.first && line <= bootstrap_only_.second) {
      diag_.warning(mark_of(e.node), qualified(e.meta, b.namespace_) +
                                         ": ignored: with spec.kubernetes the namespace's resources come from the "
                                         "Kubernetes API, the file holds the bootstrap only");
      return;
    }
    auto kept = std::make_shared<ObjectOutcome>();
    kept->resources.push_back(read(e));
    kept_.push_back(kept);
    apply(kept->resources.back());
  }

  // One resource, against the bootstrap: reports go to the outcome, not to the load.
  Outcome read(const Entry& e) const {
    const Bootstrap& b = resources_.bootstrap.bootstrap;
    Outcome o;
    o.meta = e.meta;
    o.at = mark_of(e.node);
    if (e.handling == Handling::Foreign) {
      o.ignored = true;
      o.more_mut().ignores.push_back(qualified(e.meta, b.namespace_) + ": " + e.api_version + " " + e.meta.kind +
                                     " is not read by the waypoint");
      return o;
    }
    if (!e.meta.namespace_.empty() && e.meta.namespace_ != b.namespace_) {
      o.ignored = true;
      o.more_mut().ignores.push_back(qualified(e.meta, b.namespace_) + ": namespace " + e.meta.namespace_ +
                                     " is not this waypoint's (" + b.namespace_ + ")");
      return o;
    }
    Diagnostics diag("");
    switch (e.handling) {
      case Handling::Gateway:
        o.more_mut().gateway = boxed(parse_gateway(e.node, e.meta, b, diag));
        break;
      case Handling::Service:
        o.more_mut().service = boxed(parse_service(e.node, e.meta, b, diag));
        break;
      case Handling::Pod:
        o.pod = boxed(parse_pod(e.node, e.meta, b, diag));
        break;
      case Handling::EndpointSlice:
        o.slice = boxed(parse_endpoint_slice(e.node, e.meta, diag));
        break;
      case Handling::VirtualService:
        parse_virtual_service(e.node, e.meta, diag, o.more_mut().routing);
        break;
      case Handling::DestinationRule:
        parse_destination_rule(e.node, e.meta, diag, o.more_mut().routing);
        break;
      case Handling::HTTPRoute:
        parse_http_route(e.node, e.meta, b, diag, o.more_mut().routing);
        break;
      case Handling::AuthorizationPolicy:
        parse_authorization_policy(e.node, e.meta, b, diag, o.more_mut().policies);
        break;
      case Handling::NotApplied:
        diag.warning(mark_of(e.node),
                     e.meta.kind + " " + e.meta.name + ": not applied by this version (" + std::string(e.note) + ")");
        break;
      case Handling::Bootstrap:
      case Handling::Foreign:
        break;
    }
    if (!diag.errors().empty() || !diag.warnings().empty() || !diag.ignored().empty()) {
      Outcome::Rest& rest = o.more_mut();
      rest.errors = diag.errors();
      rest.warnings = diag.warnings();
      rest.ignores = diag.ignored();
    }
    return o;
  }

  // Adds a resource's outcome to the load: a second resource of a kind and name is an error.
  void apply(const Outcome& o) {
    const Outcome::Rest& more = o.more();
    if (o.ignored) {
      for (const auto& i : more.ignores) {
        diag_.ignore(i);
      }
      return;
    }
    if (!names_.add(o.meta, o.at, diag_)) {
      return;
    }
    for (const auto& e : more.errors) {
      diag_.error(e.at, e.message);
    }
    for (const auto& w : more.warnings) {
      diag_.warning(w.at, w.message);
    }
    for (const auto& i : more.ignores) {
      diag_.ignore(i);
    }
    if (more.gateway) {
      resources_.gateways.push_back(more.gateway.get());
    }
    if (more.service) {
      resources_.services.push_back(more.service.get());
    }
    if (o.pod) {
      resources_.pods.push_back(o.pod.get());
    }
    if (o.slice) {
      resources_.endpoint_slices.push_back(o.slice.get());
    }
    for (const auto& vs : more.routing.virtual_services) {
      resources_.virtual_services.push_back(&vs);
    }
    for (const auto& dr : more.routing.destination_rules) {
      resources_.destination_rules.push_back(&dr);
    }
    for (const auto& route : more.routing.http_routes) {
      resources_.http_routes.push_back(&route);
    }
    for (const auto& policy : more.policies) {
      resources_.policies.push_back(&policy);
    }
  }
  Diagnostics& diag_;
  Snapshot& snapshot_;
  const std::pair<size_t, size_t> bootstrap_only_;
  const std::string namespace_override_;
  const bool certificates_;
  std::optional<Mark> bootstrap_at_;  // the first WaypointBootstrap
  bool have_bootstrap_ = false;       // ... and it parsed
  std::vector<Entry> pending_;        // resources before the bootstrap
  std::vector<std::shared_ptr<const Document>> pending_docs_;
  Resources resources_;  // points into the outcomes: kept_ (the file mode) or the caller's
  std::vector<std::shared_ptr<const ObjectOutcome>> kept_;
  NameRegistry names_;
};

// A version: the first 16 hex digits of a SHA-256 digest.
std::string version_hex(const unsigned char* digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < 8; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xF];
  }
  return hex;
}

// A YAML text, in one pass of the parser: each document's resources are read as it is built, and
// the document freed (peak memory follows the largest document, not the file). A YAML error is
// the only error reported: whatever the documents before it said is dropped.
void load(const std::string& text, Diagnostics& diag, Snapshot& snapshot) {
  Loader loader(diag, snapshot);
  auto error = parse_yaml(text, [&](DocumentPtr doc) {
    std::shared_ptr<const Document> owner(std::move(doc));
    loader.add(*owner, owner);
  });
  if (error) {
    diag.clear();
    diag.error(error->first, error->second);
    return;
  }
  loader.finish();
}

}  // namespace

std::string version_of(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return version_hex(digest);
}

SnapshotPtr load_snapshot_from_string(const std::string& text, const std::string& path) {
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->source_file = path;
  snapshot->version = version_of(text);
  snapshot->loaded_at = std::chrono::system_clock::now();
  Diagnostics diag(path);
  load(text, diag, *snapshot);
  if (diag.failed()) {
    throw ConfigError(diag.error_text());
  }
  snapshot->warnings = diag.warning_lines();
  snapshot->ignored = diag.ignored();
  return snapshot;
}

namespace {

// One API-mode load, decoded once for all its rounds: the bootstrap text (with a first line of its
// own, where an error with no position lands) as YAML, then each object's JSON as a document of its
// own whose nodes all sit on the object's line, after the bootstrap's: errors are blamed by line.
constexpr std::string_view kHeader = "# waypoint: the bootstrap, then the objects read from the Kubernetes API\n";

// Objects' lines: far past any bootstrap's (a 64 MiB file has fewer lines), two apart, so that an
// object keeps its line while it is cached whatever comes and goes around it.
constexpr uint32_t kFirstObjectLine = 1u << 30;

using Digest = std::array<unsigned char, 32>;  // SHA-256

// What a load replays of an object besides its result: errors, warnings, ignored fields.
bool reports(const ObjectOutcome* object) {
  if (object == nullptr) {
    return false;
  }
  if (!object->errors.empty()) {
    return true;
  }
  for (const Outcome& o : object->resources) {
    const Outcome::Rest& more = o.more();
    if (!more.errors.empty() || !more.warnings.empty() || !more.ignores.empty()) {
      return true;
    }
  }
  return false;
}

Digest digest_of(const std::string& bytes) {
  Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d.data());
  return d;
}

}  // namespace

struct ObjectCache::Impl {
  struct Entry {
    std::string key;         // kind "/" name
    SourceObjectPtr source;  // the object last read under that key
    Digest digest{};         // of source->json
    std::shared_ptr<const ObjectOutcome> outcome;
    uint32_t line = 0;
    uint64_t generation = 0;  // the last load that held it
    size_t position = 0;      // its index among that load's objects
  };
  // Every object of the last load, by key (the map's key views the Entry's own). An entry has a
  // line of its own for as long as it is cached; at_line finds it back from an error's position.
  std::unordered_map<std::string_view, std::unique_ptr<Entry>> entries;
  std::unordered_map<uint32_t, Entry*> at_line;
  // The last load's objects' entries, in its order (null: a second object of one kind and name).
  std::vector<Entry*> order;
  size_t order_entries = 0;    // the non-null ones
  std::vector<uint16_t> runs;  // parallel to order: the index of the object's kind among the load's
  bool sorted = false;         // the last load's objects were in the Source order
  size_t with_reports = 0;     // entries whose outcome has warnings, ignores or errors
  std::string bootstrap;       // the bootstrap text and namespace the outcomes were read against
  std::shared_ptr<const std::vector<DocumentPtr>> bootstrap_documents;  // that text, parsed
  uint64_t generation = 1;
  uint32_t next_line = kFirstObjectLine;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t incremental = 0;  // loads compiled by Compiler::update
  // The compile of the last load, when it left no object out: the next load's changes are applied
  // on top of it (Compiler::update) where they allow.
  Compiler compiler;
  SnapshotPtr last;

  // A line no cached object holds (in practice: the counter wraps after 2^29 new objects, and a
  // reused line would only blur which object an error is blamed on).
  uint32_t take_line() {
    uint32_t line = next_line;
    next_line = next_line >= 0x7FFFFFF0u ? kFirstObjectLine : next_line + 2;
    return line;
  }
  void clear() {
    entries.clear();
    at_line.clear();
    order.clear();
    order_entries = 0;
    runs.clear();
    sorted = false;
    with_reports = 0;
  }
};

ObjectCache::ObjectCache() : impl_(std::make_unique<Impl>()) {}
ObjectCache::~ObjectCache() = default;
size_t ObjectCache::size() const {
  return impl_->entries.size();
}
uint64_t ObjectCache::hits() const {
  return impl_->hits;
}
uint64_t ObjectCache::misses() const {
  return impl_->misses;
}
uint64_t ObjectCache::incremental() const {
  return impl_->incremental;
}

namespace {

struct Decoded {
  std::shared_ptr<const std::vector<DocumentPtr>> bootstrap;  // the cache's, when the text is its
  size_t bootstrap_first = 2;
  size_t bootstrap_last = 0;
  // Parallel to the SourceObjects: each one's line, and its outcome once read (from the cache,
  // or decoded and read in the first round; shared with the ObjectCache).
  // The outcomes are held by the cache's entries, or (no entry) by `own`.
  std::vector<uint32_t> lines;
  std::vector<const ObjectOutcome*> outcomes;
  std::vector<ObjectCache::Impl::Entry*> cached;  // where a new outcome goes; null without a cache
  std::vector<std::shared_ptr<const ObjectOutcome>> own;
  bool own_reports = false;  // one of `own` has reports
  ObjectCache::Impl* cache = nullptr;
  std::unordered_map<uint32_t, size_t> loose;  // line -> index of the objects no cache entry holds
  std::string version;                         // of the bootstrap and every object's bytes
  // What changed since the cache's previous load: for each object decoded anew, the outcome it had
  // (null: new); the outcomes of the objects gone. `comparable`: same bootstrap, and the objects in
  // the Kubernetes API source's order (each kind's objects by name), so changes can be applied.
  std::vector<std::shared_ptr<const ObjectOutcome>> previous;
  std::vector<std::shared_ptr<const ObjectOutcome>> removed;
  bool comparable = false;

  // Object i's outcome, read now.
  const ObjectOutcome& set_outcome(size_t i, ObjectOutcome outcome) {
    auto shared = std::make_shared<const ObjectOutcome>(std::move(outcome));
    outcomes[i] = shared.get();
    if (cached[i] != nullptr) {
      cache->with_reports += reports(shared.get()) ? 1 : 0;
      cached[i]->outcome = std::move(shared);
    } else {
      own_reports = own_reports || reports(shared.get());
      own.push_back(std::move(shared));
    }
    return *outcomes[i];
  }

  // The object on a line (an error's position), if one is.
  std::optional<size_t> object_at(size_t line) const {
    if (auto it = loose.find(static_cast<uint32_t>(line)); it != loose.end()) {
      return it->second;
    }
    if (cache != nullptr && line <= UINT32_MAX) {
      if (auto it = cache->at_line.find(static_cast<uint32_t>(line)); it != cache->at_line.end()) {
        return it->second->position;
      }
    }
    return std::nullopt;
  }
};

// Reads the bootstrap, and for each object what the cache holds of it. With a cache the pass over
// the objects is a pointer comparison per object in the common case (the same objects as last
// time, at the same place): only the changed ones are looked up by name, hashed and compared.
Decoded decode(const std::string& bootstrap_text, const std::string& path, const std::string& namespace_,
               const SourceObjects& objects, ObjectCache::Impl* cache) {
  using Entry = ObjectCache::Impl::Entry;
  Decoded d;
  std::string text(kHeader);
  text += bootstrap_text;
  if (text.back() != '\n') {
    text += '\n';
  }
  d.bootstrap_last = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  d.cache = cache;
  std::string key;
  if (cache != nullptr) {
    key = text + '\0' + namespace_;
    d.comparable = key == cache->bootstrap;
  }
  if (d.comparable && cache->bootstrap_documents) {
    d.bootstrap = cache->bootstrap_documents;  // the same text: its documents as parsed last time
  } else {
    YamlParse parsed = parse_yaml(text);
    if (parsed.error) {
      throw ConfigError(path + ":" + std::to_string(parsed.error->first.line - 1) + ":" +
                        std::to_string(parsed.error->first.column) + ": " + parsed.error->second);
    }
    d.bootstrap = std::make_shared<const std::vector<DocumentPtr>>(std::move(parsed.documents));
    if (cache != nullptr) {
      // Outcomes were read against a bootstrap (namespace, trust domain): another one reads anew.
      if (!d.comparable) {
        cache->clear();
        cache->bootstrap = std::move(key);
      }
      cache->bootstrap_documents = d.bootstrap;
    }
  }

  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
  EVP_DigestUpdate(md, text.data(), text.size());
  const size_t n = objects.size();
  d.lines.resize(n);
  d.outcomes.resize(n);
  d.cached.resize(n, nullptr);
  d.previous.resize(n);
  std::vector<std::string_view> kinds;  // in the order their runs start
  std::vector<Entry*> order;            // this load's, for the next one
  std::vector<uint16_t> runs;           // each object's index in `kinds`, for the next one
  bool sorted = true;                   // kinds in runs, names ascending within each
  const uint64_t generation = cache != nullptr ? cache->generation : 0;
  size_t next_old = 0;       // where in the previous load's order the next object is expected
  size_t seen_old = 0;       // entries of the previous load seen again
  bool fast_before = false;  // object i - 1 was the one expected at old position next_old - 1
  if (cache != nullptr) {
    order.resize(n, nullptr);
    runs.resize(n, 0);
  }
  const auto& old = cache != nullptr ? cache->order : order;
  for (size_t i = 0; i < n; ++i) {
    // The same object as at the place expected in the previous load (compared by address: the
    // entry's own bytes are not touched, nor the object's).
    const bool fast = cache != nullptr && next_old < old.size() && old[next_old] != nullptr &&
                      old[next_old]->generation != generation && old[next_old]->source == objects[i];
    const SourceObject& o = *objects[i];
    if (fast && fast_before && cache->sorted && cache->runs[next_old] == cache->runs[next_old - 1]) {
      runs[i] = runs[i - 1];  // two neighbours as before, of one kind: in order as they were
    } else {
      if (i == 0 || o.kind != objects[i - 1]->kind) {
        if (std::find(kinds.begin(), kinds.end(), o.kind) != kinds.end()) {
          sorted = false;
        }
        kinds.push_back(o.kind);
      } else if (!(objects[i - 1]->name < o.name)) {
        sorted = false;
      }
      if (cache != nullptr) {
        runs[i] = static_cast<uint16_t>(std::min<size_t>(kinds.size() - 1, UINT16_MAX));
      }
    }
    fast_before = fast;
    Digest own{};
    if (cache == nullptr) {
      own = digest_of(o.json);
      d.lines[i] = kFirstObjectLine + 2 * static_cast<uint32_t>(i);
      d.loose.emplace(d.lines[i], i);
      EVP_DigestUpdate(md, own.data(), own.size());
      continue;
    }
    Entry* entry = nullptr;
    if (fast) {
      entry = old[next_old++];
    } else {
      std::string key = o.kind + "/" + o.name;
      auto it = cache->entries.find(key);
      if (it == cache->entries.end()) {
        auto fresh = std::make_unique<Entry>();
        fresh->key = std::move(key);
        it = cache->entries.emplace(fresh->key, std::move(fresh)).first;
      }
      entry = it->second.get();
      if (entry->line != 0 && entry->generation == generation) {
        // A second object of that kind and name in one load (never from an API server): read
        // alone, on a line of its own.
        own = digest_of(o.json);
        d.lines[i] = cache->take_line();
        d.loose.emplace(d.lines[i], i);
        EVP_DigestUpdate(md, own.data(), own.size());
        fast_before = false;
        continue;
      }
      if (entry->line != 0 && entry->position >= next_old && entry->position < old.size() &&
          old[entry->position] == entry) {
        next_old = entry->position + 1;  // the objects skipped are gone, or come later
      }
    }
    if (entry->line == 0) {
      entry->line = cache->take_line();
      cache->at_line[entry->line] = entry;
    } else {
      ++seen_old;
    }
    entry->generation = generation;
    entry->position = i;
    order[i] = entry;
    d.lines[i] = entry->line;
    // The API server changes an object's resourceVersion with every write: an equal one is the
    // same object. Without one (objects not from an API server) the bytes are compared.
    const bool same =
        entry->source == objects[i] ||
        (entry->source && (o.resource_version.empty() ? entry->source->json == o.json
                                                      : entry->source->resource_version == o.resource_version));
    if (entry->outcome && same) {
      ++cache->hits;
      d.outcomes[i] = entry->outcome.get();
    } else {
      ++cache->misses;
      cache->with_reports -= reports(entry->outcome.get()) ? 1 : 0;
      d.previous[i] = std::move(entry->outcome);
      entry->digest = digest_of(o.json);
      d.cached[i] = entry;
    }
    entry->source = objects[i];
    EVP_DigestUpdate(md, entry->digest.data(), entry->digest.size());
  }
  d.comparable = d.comparable && sorted;
  if (cache != nullptr) {
    // Objects gone since the previous load are forgotten.
    if (seen_old < cache->order_entries) {
      for (Entry* e : cache->order) {
        if (e == nullptr || e->generation == generation) {
          continue;
        }
        if (e->outcome) {
          cache->with_reports -= reports(e->outcome.get()) ? 1 : 0;
          d.removed.push_back(std::move(e->outcome));
        }
        cache->at_line.erase(e->line);
        cache->entries.erase(cache->entries.find(e->key));  // frees e
      }
    }
    cache->order = std::move(order);
    cache->runs = std::move(runs);
    cache->sorted = sorted;
    cache->order_entries = cache->entries.size();
    ++cache->generation;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(md, digest, &length);
  EVP_MD_CTX_free(md);
  d.version = version_hex(digest);
  return d;
}

// The object an error belongs to: by its line, else (no position) by the subject that starts
// its message ("VirtualService reviews: ...").
std::optional<size_t> blame(const Decoded& r, const SourceObjects& objects, const std::vector<bool>& left_out,
                            const Diagnostics::Entry& e) {
  if (auto i = r.object_at(static_cast<size_t>(e.at.line))) {
    return i;
  }
  if (static_cast<size_t>(e.at.line) >= r.bootstrap_first && static_cast<size_t>(e.at.line) <= r.bootstrap_last) {
    return std::nullopt;
  }
  // "Kind name: ..." (names and kinds hold neither spaces nor colons).
  const std::string_view message = e.message;
  const size_t space = message.find(' ');
  const size_t colon = space == std::string_view::npos ? space : message.find(':', space + 1);
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view kind = message.substr(0, space), name = message.substr(space + 1, colon - space - 1);
  if (r.cache != nullptr) {
    std::string key = std::string(kind) + "/" + std::string(name);
    if (auto it = r.cache->entries.find(key); it != r.cache->entries.end()) {
      const size_t i = it->second->position;
      if (i < objects.size() && objects[i] == it->second->source && !left_out[i]) {
        return i;
      }
    }
  }
  for (size_t i = 0; i < objects.size(); ++i) {
    if (!left_out[i] && objects[i]->kind == kind && objects[i]->name == name) {
      return i;
    }
  }
  return std::nullopt;
}

std::vector<std::string> object_lines(const Decoded& r, const SourceObjects& objects, const std::vector<bool>& left_out,
                                      const std::string& path, const std::vector<Diagnostics::Entry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) {
    if (auto i = blame(r, objects, left_out, e)) {
      const SourceObject& o = *objects[*i];
      out.push_back(o.kind + "/" + o.name + " (resourceVersion " + o.resource_version + "): " + e.message);
    } else {
      out.push_back(path + ":" + std::to_string(e.at.line - 1) + ":" + std::to_string(e.at.column) + ": " + e.message);
    }
  }
  return out;
}

// The typed result of an object's outcome, when it is one resource the compiler can take as a
// change (a Pod, an EndpointSlice, a Service, one VirtualService, DestinationRule, HTTPRoute or
// AuthorizationPolicy) and has no error.
bool as_change(const ObjectOutcome* object, bool now, ResourceChange& c) {
  if (object == nullptr) {
    return true;
  }
  if (!object->errors.empty() || object->resources.size() != 1) {
    return false;
  }
  const Outcome& o = object->resources.front();
  const Outcome::Rest& more = o.more();
  if (o.ignored || !more.errors.empty() || more.gateway) {
    return false;
  }
  const RoutingResources& r = more.routing;
  const size_t routing = r.virtual_services.size() + r.destination_rules.size() + r.http_routes.size();
  if (more.service) {
    if (routing != 0 || !more.policies.empty() || o.pod || o.slice) {
      return false;
    }
    (now ? c.new_service : c.old_service) = more.service.get();
  } else if (!more.policies.empty()) {
    if (more.policies.size() != 1 || routing != 0 || o.pod || o.slice) {
      return false;
    }
    (now ? c.new_policy : c.old_policy) = &more.policies.front();
  } else if (o.pod && routing == 0 && !o.slice) {
    (now ? c.new_pod : c.old_pod) = o.pod.get();
  } else if (o.slice && routing == 0) {
    (now ? c.new_slice : c.old_slice) = o.slice.get();
  } else if (routing == 1 && !r.virtual_services.empty()) {
    (now ? c.new_vs : c.old_vs) = &r.virtual_services.front();
  } else if (routing == 1 && !r.destination_rules.empty()) {
    (now ? c.new_dr : c.old_dr) = &r.destination_rules.front();
  } else if (routing == 1 && !r.http_routes.empty()) {
    (now ? c.new_route : c.old_route) = &r.http_routes.front();
  } else {
    return false;
  }
  return true;
}

// A Loader that has read the bootstrap, over a scratch Snapshot: objects read with it outside a
// load's rounds (their outcomes are what is kept).
struct ObjectReader {
  Diagnostics diag;
  Snapshot scratch;
  Loader loader;
  ObjectReader(const Decoded& r, const std::string& path, const std::string& namespace_)
      : diag(path), loader(diag, scratch, {r.bootstrap_first, r.bootstrap_last}, namespace_, false) {
    for (const auto& doc : *r.bootstrap) {
      loader.add(*doc, nullptr);
    }
  }
  bool ready() const { return loader.has_bootstrap() && !diag.failed(); }
};

// The load as changes on top of the cache's last one (Compiler::update): null when they cannot be
// applied so (then the load compiles from scratch, with every outcome read here kept).
SnapshotPtr try_update(Decoded& r, const SourceObjects& objects, const std::string& path, const std::string& namespace_,
                       ObjectCache::Impl& cache) {
  if (!r.comparable || !cache.last) {
    return nullptr;
  }
  ObjectReader reader(r, path, namespace_);
  if (!reader.ready()) {
    return nullptr;
  }
  Diagnostics& diag = reader.diag;
  Loader& loader = reader.loader;
  std::vector<ResourceChange> changes;
  for (size_t i = 0; i < objects.size(); ++i) {
    if (r.outcomes[i]) {
      continue;
    }
    std::string error;
    DocumentPtr doc = parse_json_document(objects[i]->json, r.lines[i], error);
    if (!doc) {
      return nullptr;
    }
    r.set_outcome(i, loader.read_object(*doc));
    ResourceChange c;
    if (!as_change(r.previous[i].get(), false, c) || !as_change(r.outcomes[i], true, c)) {
      return nullptr;
    }
    changes.push_back(c);
  }
  for (const auto& gone : r.removed) {
    ResourceChange c;
    if (!as_change(gone.get(), false, c)) {
      return nullptr;
    }
    changes.push_back(c);
  }
  // Every object's own reports, as the compile from scratch replays them (none has an error: the
  // last load left no object out, and the changed ones were checked above). Only when some object
  // has any: most namespaces' loads then skip a pass over every outcome.
  for (size_t i = 0; (cache.with_reports != 0 || r.own_reports) && i < r.outcomes.size(); ++i) {
    const ObjectOutcome* object = r.outcomes[i];
    if (!object->errors.empty()) {
      return nullptr;
    }
    for (const Outcome& o : object->resources) {
      const Outcome::Rest& more = o.more();
      if (!more.errors.empty()) {
        return nullptr;
      }
      for (const auto& w : more.warnings) {
        diag.warning(w.at, w.message);
      }
      for (const auto& i : more.ignores) {
        diag.ignore(i);
      }
    }
  }
  auto next = std::make_shared<Snapshot>();
  if (!cache.compiler.update(changes, *cache.last, diag, *next)) {
    return nullptr;
  }
  next->source_file = path;
  next->version = r.version;
  next->loaded_at = std::chrono::system_clock::now();
  next->warnings = object_lines(r, objects, std::vector<bool>(objects.size(), false), path, diag.warnings());
  next->ignored = diag.ignored();
  next->rejected.clear();
  ++cache.incremental;
  cache.last = next;
  return next;
}

}  // namespace

SnapshotPtr load_snapshot_from_objects(const std::string& bootstrap_text, const std::string& path,
                                       const std::string& namespace_, const SourceObjects& objects,
                                       bool check_certificates, ObjectCache* cache) {
  std::vector<bool> left_out(objects.size(), false);
  std::vector<RejectedObject> rejected;
  ObjectCache::Impl* impl = cache != nullptr ? cache->impl_.get() : nullptr;
  Decoded r = decode(bootstrap_text, path, namespace_, objects, impl);
  if (impl != nullptr) {
    if (auto next = try_update(r, objects, path, namespace_, *impl)) {
      return next;
    }
    impl->last.reset();
  }
  // Each round leaves out at least one object or ends: errors of references (a route to a subset
  // of a rejected DestinationRule) only show once the objects they name are gone. An object is
  // decoded and read once (the first round, unless cached); the rounds replay its outcome.
  // The version is the one of everything read (the rejected objects too): a change that only
  // removes a rejected object is a new configuration with a shorter `rejected`.
  for (size_t round = 0; round <= objects.size(); ++round) {
    auto snapshot = std::make_shared<Snapshot>();
    snapshot->source_file = path;
    snapshot->version = r.version;
    snapshot->loaded_at = std::chrono::system_clock::now();
    Diagnostics diag(path);
    Loader loader(diag, *snapshot, {r.bootstrap_first, r.bootstrap_last}, namespace_, check_certificates);
    for (const auto& doc : *r.bootstrap) {
      loader.add(*doc, nullptr);
    }
    for (size_t i = 0; i < objects.size() && loader.has_bootstrap(); ++i) {
      if (left_out[i]) {
        continue;
      }
      if (!r.outcomes[i]) {
        std::string error;
        DocumentPtr doc = parse_json_document(objects[i]->json, r.lines[i], error);
        if (!doc) {
          left_out[i] = true;
          rejected.push_back(RejectedObject{objects[i]->kind, objects[i]->name, objects[i]->resource_version,
                                            objects[i]->kind + " " + objects[i]->name + ": not JSON: " + error});
          continue;
        }
        r.set_outcome(i, loader.read_object(*doc));
      }
      loader.apply_object(*r.outcomes[i]);
    }
    loader.finish(impl != nullptr ? &impl->compiler : nullptr, impl != nullptr);
    if (!diag.failed()) {
      if (impl != nullptr && rejected.empty()) {
        impl->last = snapshot;
      }
      snapshot->warnings = object_lines(r, objects, left_out, path, diag.warnings());
      snapshot->ignored = diag.ignored();
      snapshot->rejected = std::move(rejected);
      return snapshot;
    }
    std::map<size_t, std::string> reasons;
    std::string fatal;
    for (const auto& e : diag.errors()) {
      if (auto i = blame(r, objects, left_out, e)) {
        std::string& reason = reasons[*i];
        reason += (reason.empty() ? "" : "\n") + e.message;
      } else {
        // The bootstrap's own lines (the file) keep FILE:LINE:COL, counted in the file.
        fatal += (fatal.empty() ? "" : "\n") + path + ":" + std::to_string(e.at.line - 1) + ":" +
                 std::to_string(e.at.column) + ": " + e.message;
      }
    }
    if (!fatal.empty() || reasons.empty()) {
      throw ConfigError(fatal.empty() ? diag.error_text() : fatal);
    }
    for (auto& [i, reason] : reasons) {
      left_out[i] = true;
      rejected.push_back(
          RejectedObject{objects[i]->kind, objects[i]->name, objects[i]->resource_version, std::move(reason)});
    }
  }
  throw ConfigError(path + ": the objects could not be compiled");
}

void read_into_cache(const std::string& bootstrap_text, const std::string& path, const std::string& namespace_,
                     const SourceObjects& objects, ObjectCache& cache) {
  ObjectCache::Impl& impl = *cache.impl_;
  Decoded r = decode(bootstrap_text, path, namespace_, objects, &impl);
  // The next load compiles from scratch: the changes read here are not applied to the last one.
  impl.last.reset();
  ObjectReader reader(r, path, namespace_);
  if (!reader.ready()) {
    return;  // the load proper says why
  }
  for (size_t i = 0; i < objects.size(); ++i) {
    if (r.outcomes[i] != nullptr || r.cached[i] == nullptr) {
      continue;  // read before, or a second object of one kind and name (read by the load proper)
    }
    std::string error;
    DocumentPtr doc = parse_json_document(objects[i]->json, r.lines[i], error);
    if (doc) {  // not JSON: rejected by the load proper
      r.set_outcome(i, reader.loader.read_object(*doc));
    }
  }
}

SnapshotPtr load_snapshot_from_objects(const std::string& bootstrap_text, const std::string& path,
                                       const std::string& namespace_, const std::vector<SourceObject>& objects,
                                       bool check_certificates, ObjectCache* cache) {
  SourceObjects shared;
  shared.reserve(objects.size());
  for (const SourceObject& o : objects) {
    shared.push_back(std::make_shared<const SourceObject>(o));
  }
  return load_snapshot_from_objects(bootstrap_text, path, namespace_, shared, check_certificates, cache);
}

namespace {
size_t g_max_config_bytes = 64u << 20;
}  // namespace

size_t max_config_bytes() {
  return g_max_config_bytes;
}
void set_max_config_bytes(size_t bytes) {
  g_max_config_bytes = bytes;
}

namespace {
std::string read_config(const std::string& path) {
  std::string text;
  const size_t limit = max_config_bytes();
  if (int error = read_file(path, text, limit + 1); error != 0) {
    throw ConfigError(path + ": cannot read: " + std::strerror(error));
  }
  if (text.size() > limit) {
    throw ConfigError(path + ": the file is larger than " + std::to_string(limit) +
                      " bytes (--max-config-bytes); not read");
  }
  return text;
}
}  // namespace

std::string read_config_text(const std::string& path) {
  return read_config(path);
}

Bootstrap load_bootstrap(const std::string& text, const std::string& path) {
  Diagnostics diag(path);
  YamlParse parsed = parse_yaml(text);
  if (parsed.error) {
    diag.error(parsed.error->first, parsed.error->second);
    throw ConfigError(diag.error_text());
  }
  std::vector<Entry> entries;
  for (const auto& doc : parsed.documents) {
    add_resources(doc->root(), false, entries, diag);
  }
  std::optional<BootstrapResource> bootstrap = read_bootstrap(entries, diag, path);
  if (diag.failed() || !bootstrap) {
    throw ConfigError(diag.failed() ? diag.error_text() : path + ": no WaypointBootstrap");
  }
  return bootstrap->bootstrap;
}

SnapshotPtr load_snapshot(const std::string& path) {
  return load_snapshot_from_string(read_config(path), path);
}

SnapshotPtr load_snapshot_if_changed(const std::string& path, const std::string& version) {
  std::string text = read_config(path);
  return version_of(text) == version ? nullptr : load_snapshot_from_string(text, path);
}

}  // namespace wp::config
