// config/k8s/ (the Kubernetes manifests) must be Kubernetes objects that agree with each other, with
// the image (Dockerfile) and with the waypoint itself: the ConfigMap's config.yaml validates with the
// certificate paths the Deployment's projected volume provides, and describes the same resources as
// config/bookinfo.yaml. Nothing here talks to a cluster; it reads the files.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/generate.h"
#include "waypoint/kube/source.h"
#include "fixtures.h"

namespace wp::config {
namespace {

namespace fs = std::filesystem;

// Only const YAML::Nodes are indexed below: operator[] on a non-const node inserts missing keys.

const fs::path& repo() {
  static const fs::path root = (fs::path(__FILE__).parent_path() / "../../..").lexically_normal();
  return root;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  INFO(path.string());
  REQUIRE(in.good());
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string str(const YAML::Node& n) {
  return n && n.IsScalar() ? n.Scalar() : "";
}

int num(const YAML::Node& n) {
  std::string s = str(n);
  INFO("not a number: '" << s << "'");
  REQUIRE((!s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); })));
  return std::stoi(s);
}

struct Manifest {
  std::string file;  // file name under config/k8s/
  YAML::Node doc;
};

// Every document of every *.yaml / *.yml file in config/k8s/, files in name order (as kubectl applies
// a directory).
std::vector<Manifest> manifests() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(repo() / "config/k8s")) {
    std::string ext = entry.path().extension().string();
    if (ext == ".yaml" || ext == ".yml") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<Manifest> out;
  for (const fs::path& file : files) {
    for (const YAML::Node& doc : YAML::LoadAllFromFile(file.string())) {
      out.push_back({file.filename().string(), doc});
    }
  }
  return out;
}

// The one document of `kind` named `name`.
YAML::Node find(const std::vector<Manifest>& all, const std::string& kind, const std::string& name) {
  std::vector<YAML::Node> hits;
  for (const Manifest& m : all) {
    const YAML::Node& d = m.doc;
    if (d.IsMap() && str(d["kind"]) == kind && str(d["metadata"]["name"]) == name) {
      hits.push_back(d);
    }
  }
  INFO(kind << " " << name << " in config/k8s/");
  REQUIRE(hits.size() == 1);
  return hits.front();
}

// Structural equality: same node types, scalars equal as text, maps with the same keys, sequences in
// the same order. Styles (flow or block), comments and quoting do not matter.
bool same(const YAML::Node& a, const YAML::Node& b) {
  if (a.Type() != b.Type()) {
    return false;
  }
  switch (a.Type()) {
    case YAML::NodeType::Scalar:
      return a.Scalar() == b.Scalar();
    case YAML::NodeType::Sequence:
      if (a.size() != b.size()) {
        return false;
      }
      for (size_t i = 0; i < a.size(); ++i) {
        if (!same(a[i], b[i])) {
          return false;
        }
      }
      return true;
    case YAML::NodeType::Map:
      if (a.size() != b.size()) {
        return false;
      }
      for (const auto& kv : a) {
        const YAML::Node other = b[kv.first.Scalar()];
        if (!other || !same(kv.second, other)) {
          return false;
        }
      }
      return true;
    default:
      return true;
  }
}

// Every key/value of `selector` is among `labels`.
bool selects(const YAML::Node& selector, const YAML::Node& labels) {
  if (!selector.IsMap() || selector.size() == 0 || !labels.IsMap()) {
    return false;
  }
  for (const auto& kv : selector) {
    if (str(labels[kv.first.Scalar()]) != kv.second.Scalar()) {
      return false;
    }
  }
  return true;
}

// A Kubernetes quantity: memory in bytes ("32Mi", "128M", "1Gi", "1048576"), CPU in cores ("50m", "2").
double quantity(const YAML::Node& n) {
  std::string s = str(n);
  INFO("quantity '" << s << "'");
  REQUIRE(!s.empty());
  size_t digits = 0;
  while (digits < s.size() && (std::isdigit(static_cast<unsigned char>(s[digits])) || s[digits] == '.')) {
    ++digits;
  }
  REQUIRE(digits > 0);
  double value = std::stod(s.substr(0, digits));
  static const std::map<std::string, double> units = {{"", 1},           {"m", 1e-3},         {"k", 1e3},
                                                      {"M", 1e6},        {"G", 1e9},          {"Ki", 1024.0},
                                                      {"Mi", 1048576.0}, {"Gi", 1073741824.0}};
  auto unit = units.find(s.substr(digits));
  REQUIRE(unit != units.end());
  return value * unit->second;
}

// A container port given by number or by name.
int container_port(const YAML::Node& container, const YAML::Node& port) {
  std::string p = str(port);
  if (!p.empty() && std::isdigit(static_cast<unsigned char>(p[0]))) {
    return num(port);
  }
  for (const auto& cp : container["ports"]) {
    if (str(cp["name"]) == p) {
      return num(cp["containerPort"]);
    }
  }
  FAIL("no container port named '" << p << "'");
  return 0;
}

struct Mount {
  std::string path;                                 // the volume's mountPath
  std::string configmap;                            // the ConfigMap's name
  std::string secret;                               // the Secret's name
  std::map<std::string, std::string> secret_items;  // Secret key -> path in the volume
  std::map<std::string, std::string> config_items;  // ConfigMap key -> path in the volume
};

// The Deployment's config volume mount and what it projects, checked for the layout the waypoint
// needs: one projected volume (ConfigMap + Secret) at the config's directory; besides it only the
// API server's credentials (kube-api-access); no subPath anywhere.
Mount projected_mount(const YAML::Node& deployment) {
  const YAML::Node pod = deployment["spec"]["template"]["spec"];
  const YAML::Node container = pod["containers"][0];
  REQUIRE(container["volumeMounts"].IsSequence());
  REQUIRE(container["volumeMounts"].size() == 2);
  YAML::Node mount;
  for (const auto& m : container["volumeMounts"]) {
    CHECK(!m["subPath"]);
    CHECK(!m["subPathExpr"]);
    CHECK(str(m["readOnly"]) == "true");
    if (str(m["name"]) != "kube-api-access") {
      mount.reset(m);
    }
  }
  REQUIRE(mount.IsMap());
  Mount out;
  out.path = str(mount["mountPath"]);
  std::vector<YAML::Node> volumes;
  for (const auto& v : pod["volumes"]) {
    if (str(v["name"]) == str(mount["name"])) {
      volumes.push_back(v);
    }
  }
  REQUIRE(volumes.size() == 1);
  const YAML::Node projected = volumes[0]["projected"];
  INFO("the volume mounted at " << out.path << " must be a projected volume");
  REQUIRE(projected["sources"].IsSequence());
  for (const auto& source : projected["sources"]) {
    if (source["configMap"]) {
      CHECK(out.configmap.empty());
      out.configmap = str(source["configMap"]["name"]);
      for (const auto& item : source["configMap"]["items"]) {
        out.config_items[str(item["key"])] = str(item["path"]);
      }
    } else if (source["secret"]) {
      CHECK(out.secret.empty());
      out.secret = str(source["secret"]["name"]);
      for (const auto& item : source["secret"]["items"]) {
        out.secret_items[str(item["key"])] = str(item["path"]);
      }
    } else {
      FAIL("unexpected projected source: " << YAML::Dump(source));
    }
  }
  REQUIRE(!out.configmap.empty());
  REQUIRE(!out.secret.empty());
  return out;
}

// ---- the Dockerfile and scripts/install-deps.sh ----------------------------------------------------

// Instructions with continuation lines joined and comments dropped, split into words.
std::vector<std::vector<std::string>> docker_instructions(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  std::string joined;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') {
      continue;
    }
    bool continued = line.back() == '\\';
    joined += line.substr(start, line.size() - start - (continued ? 1 : 0)) + " ";
    if (!continued) {
      std::istringstream words(joined);
      std::vector<std::string> instruction;
      for (std::string w; words >> w;) {
        instruction.push_back(w);
      }
      out.push_back(std::move(instruction));
      joined.clear();
    }
  }
  return out;
}

// The packages an `apt-get install` in `run` (a RUN instruction's words) names.
std::vector<std::string> apt_packages(const std::vector<std::string>& run) {
  std::vector<std::string> out;
  auto it = std::find(run.begin(), run.end(), "install");
  if (it == run.end()) {
    return out;
  }
  for (++it; it != run.end() && *it != "&&" && *it != ";"; ++it) {
    if (!it->starts_with("-")) {
      out.push_back(*it);
    }
  }
  return out;
}

struct Image {
  std::vector<std::string> build_packages;
  std::vector<std::string> runtime_packages;
  std::vector<std::string> entrypoint;
  std::set<int> exposed;
  std::string user;
  std::string stop_signal;
  size_t stages = 0;
};

Image read_dockerfile() {
  Image image;
  std::string stage;
  for (const auto& ins : docker_instructions(read_text(repo() / "Dockerfile"))) {
    const std::string& op = ins.at(0);
    if (op == "FROM") {
      ++image.stages;
      stage = ins.size() == 4 && ins[2] == "AS" ? ins[3] : "runtime";
      CHECK(ins.at(1) == "debian:bookworm-slim");
    } else if (op == "RUN") {
      auto packages = apt_packages(ins);
      auto& into = stage == "runtime" ? image.runtime_packages : image.build_packages;
      into.insert(into.end(), packages.begin(), packages.end());
    } else if (stage != "runtime") {
      continue;
    } else if (op == "ENTRYPOINT") {
      std::string json;
      for (size_t i = 1; i < ins.size(); ++i) {
        json += ins[i] + " ";
      }
      image.entrypoint = YAML::Load(json).as<std::vector<std::string>>();  // the exec (JSON) form
    } else if (op == "EXPOSE") {
      for (size_t i = 1; i < ins.size(); ++i) {
        image.exposed.insert(std::stoi(ins[i]));
      }
    } else if (op == "USER") {
      image.user = ins.at(1);
    } else if (op == "STOPSIGNAL") {
      image.stop_signal = ins.at(1);
    }
  }
  return image;
}

// The words of `packages=( ... )` in scripts/install-deps.sh, without "$@".
std::vector<std::string> install_deps_packages() {
  std::string text = read_text(repo() / "scripts/install-deps.sh");
  size_t begin = text.find("packages=(");
  REQUIRE(begin != std::string::npos);
  begin += std::string("packages=(").size();
  size_t end = text.find(')', begin);
  REQUIRE(end != std::string::npos);
  std::istringstream words(text.substr(begin, end - begin));
  std::vector<std::string> out;
  for (std::string w; words >> w;) {
    if (w.front() != '"' && w.front() != '$') {
      out.push_back(w);
    }
  }
  return out;
}

// ---- tests -----------------------------------------------------------------------------------------

TEST_CASE("k8s: every manifest in config/k8s/ is a Kubernetes object in namespace default", "[config]") {
  auto all = manifests();
  REQUIRE(all.size() >= 6);
  std::set<std::pair<std::string, std::string>> seen;
  std::map<std::string, std::string> api_versions;
  for (const Manifest& m : all) {
    INFO(m.file << ": " << YAML::Dump(m.doc).substr(0, 200));
    const YAML::Node& d = m.doc;
    REQUIRE(d.IsMap());
    CHECK(!str(d["apiVersion"]).empty());
    CHECK(!str(d["kind"]).empty());
    CHECK(!str(d["metadata"]["name"]).empty());
    CHECK(str(d["metadata"]["namespace"]) == "default");
    CHECK(seen.insert({str(d["kind"]), str(d["metadata"]["name"])}).second);  // no duplicates
    api_versions[str(d["kind"])] = str(d["apiVersion"]);
  }
  CHECK(api_versions == std::map<std::string, std::string>{{"ConfigMap", "v1"},
                                                           {"Deployment", "apps/v1"},
                                                           {"Gateway", "gateway.networking.k8s.io/v1"},
                                                           {"PodDisruptionBudget", "policy/v1"},
                                                           {"Role", "rbac.authorization.k8s.io/v1"},
                                                           {"RoleBinding", "rbac.authorization.k8s.io/v1"},
                                                           {"Service", "v1"},
                                                           {"ServiceAccount", "v1"}});
}

TEST_CASE("k8s: the Deployment runs 2 locked-down, probed, sized replicas", "[config]") {
  auto all = manifests();
  const YAML::Node d = find(all, "Deployment", "waypoint");
  CHECK(num(d["spec"]["replicas"]) == 2);
  const YAML::Node tmpl = d["spec"]["template"];
  const YAML::Node pod = tmpl["spec"];
  CHECK(selects(d["spec"]["selector"]["matchLabels"], tmpl["metadata"]["labels"]));

  // Identity: the ServiceAccount whose SPIFFE ID the certificate carries.
  CHECK(str(pod["serviceAccountName"]) == "waypoint");
  find(all, "ServiceAccount", "waypoint");

  // Metrics scraped per pod.
  const YAML::Node annotations = tmpl["metadata"]["annotations"];
  CHECK(str(annotations["prometheus.io/scrape"]) == "true");
  CHECK(str(annotations["prometheus.io/port"]) == "15020");
  CHECK(str(annotations["prometheus.io/path"]) == "/stats/prometheus");

  REQUIRE(pod["containers"].size() == 1);
  const YAML::Node c = pod["containers"][0];
  CHECK(!c["command"]);  // the image's ENTRYPOINT runs as is
  CHECK(!c["args"]);
  std::map<std::string, int> ports;
  for (const auto& p : c["ports"]) {
    ports[str(p["name"])] = num(p["containerPort"]);
  }
  CHECK(ports == std::map<std::string, int>{{"hbone", 15008}, {"metrics", 15020}, {"health", 15021}});

  // Probes: readiness on the health port; liveness there too or a TCP check of HBONE.
  const YAML::Node ready = c["readinessProbe"]["httpGet"];
  CHECK(str(ready["path"]) == "/healthz/ready");
  CHECK(container_port(c, ready["port"]) == 15021);
  const YAML::Node live = c["livenessProbe"];
  REQUIRE(live.IsMap());
  if (live["httpGet"]) {
    CHECK(str(live["httpGet"]["path"]) == "/healthz/ready");
    CHECK(container_port(c, live["httpGet"]["port"]) == 15021);
    // Readiness is 503 during the 5 s drain: liveness must not fail within it.
    int period = live["periodSeconds"] ? num(live["periodSeconds"]) : 10;
    int failures = live["failureThreshold"] ? num(live["failureThreshold"]) : 3;
    CHECK(period * (failures - 1) > 5);
  } else {
    REQUIRE(live["tcpSocket"]);
    CHECK(container_port(c, live["tcpSocket"]["port"]) == 15008);
  }

  // Resources: requests cover the measured idle RSS (10.7 MiB, bench/RESULTS.md) and fit the limits.
  const YAML::Node res = c["resources"];
  double cpu_request = quantity(res["requests"]["cpu"]);
  double memory_request = quantity(res["requests"]["memory"]);
  CHECK(cpu_request > 0);
  CHECK(memory_request > 11 * 1048576.0);
  CHECK(memory_request <= quantity(res["limits"]["memory"]));
  if (res["limits"]["cpu"]) {
    CHECK(cpu_request <= quantity(res["limits"]["cpu"]));
  }

  // Security.
  CHECK(str(pod["securityContext"]["runAsNonRoot"]) == "true");
  const YAML::Node sc = c["securityContext"];
  CHECK(str(sc["readOnlyRootFilesystem"]) == "true");
  CHECK(str(sc["allowPrivilegeEscalation"]) == "false");
  CHECK(str(sc["privileged"]) != "true");
  REQUIRE(sc["capabilities"]["drop"].IsSequence());
  CHECK(sc["capabilities"]["drop"].as<std::vector<std::string>>() == std::vector<std::string>{"ALL"});
  CHECK(!sc["capabilities"]["add"]);

  // Longer than the default 5 s drain, so SIGTERM's drain finishes before SIGKILL.
  CHECK(num(pod["terminationGracePeriodSeconds"]) > 5);

  // Replicas spread: topology spread or pod anti-affinity over this Deployment's pods.
  bool spread = false;
  for (const auto& t : pod["topologySpreadConstraints"]) {
    spread = spread || (str(t["topologyKey"]) == "kubernetes.io/hostname" &&
                        selects(t["labelSelector"]["matchLabels"], tmpl["metadata"]["labels"]));
  }
  spread = spread || pod["affinity"]["podAntiAffinity"].IsMap();
  CHECK(spread);

  // One projected volume at /etc/waypoint: config.yaml from the ConfigMap, certs/ from the Secret.
  Mount mount = projected_mount(d);
  CHECK(mount.path == "/etc/waypoint");
  CHECK(mount.configmap == "waypoint-config");
  find(all, "ConfigMap", mount.configmap);
  CHECK(mount.config_items == std::map<std::string, std::string>{{"config.yaml", "config.yaml"}});
  CHECK(mount.secret_items == std::map<std::string, std::string>{{"tls.crt", "certs/waypoint.pem"},
                                                                 {"tls.key", "certs/waypoint.key"},
                                                                 {"ca.crt", "certs/root.pem"}});
}

TEST_CASE("k8s: the Service, Gateway, PodDisruptionBudget and ServiceAccount", "[config]") {
  auto all = manifests();
  const YAML::Node d = find(all, "Deployment", "waypoint");
  const YAML::Node pod_labels = d["spec"]["template"]["metadata"]["labels"];
  const YAML::Node container = d["spec"]["template"]["spec"]["containers"][0];

  const YAML::Node svc = find(all, "Service", "waypoint");
  CHECK(selects(svc["spec"]["selector"], pod_labels));
  std::map<int, int> ports;  // service port -> container port
  std::string mesh_port_name;
  for (const auto& p : svc["spec"]["ports"]) {
    ports[num(p["port"])] = container_port(container, p["targetPort"] ? p["targetPort"] : p["port"]);
    if (num(p["port"]) == 15008) {
      mesh_port_name = str(p["name"]);
    }
  }
  REQUIRE(ports.count(15008) == 1);
  CHECK(ports[15008] == 15008);
  CHECK(mesh_port_name == "mesh");
  CHECK(ports.count(15000) == 0);  // the admin API stays on loopback

  // The Gateway: what `waypoint generate` prints, field for field.
  const YAML::Node gateway = find(all, "Gateway", "waypoint");
  cli::GenerateOptions options;
  options.name = "waypoint";
  options.namespace_ = "default";
  CHECK(same(gateway, YAML::Load(cli::generate_gateway(options))));

  const YAML::Node pdb = find(all, "PodDisruptionBudget", "waypoint");
  CHECK(selects(pdb["spec"]["selector"]["matchLabels"], pod_labels));
  REQUIRE(pdb["spec"]["minAvailable"]);
  CHECK(num(pdb["spec"]["minAvailable"]) == 1);
  CHECK(num(pdb["spec"]["minAvailable"]) < num(d["spec"]["replicas"]));  // else no node could drain

  const YAML::Node sa = find(all, "ServiceAccount", "waypoint");
  CHECK(str(sa["automountServiceAccountToken"]) == "false");
}

TEST_CASE("k8s: the ConfigMap's config.yaml validates with the projected certificate paths", "[config]") {
  auto all = manifests();
  const YAML::Node cm = find(all, "ConfigMap", "waypoint-config");
  const YAML::Node deployment = find(all, "Deployment", "waypoint");
  Mount mount = projected_mount(deployment);
  std::string text = str(cm["data"][mount.config_items.begin()->first]);
  REQUIRE(!text.empty());

  // Laid out as in the pod: the config file next to certs/ (fixture_dir() holds fresh certificates
  // at certs/waypoint.pem, certs/waypoint.key and certs/root.pem).
  std::string path = testing::fixture_dir() + "/k8s-config.yaml";
  testing::write_file(path, text);
  // The Kubernetes API mode: the file is the bootstrap; the Gateway comes from the API, here as the
  // manifest in gateway.yaml would be served.
  REQUIRE(load_bootstrap(text, path).kubernetes.enabled);
  auto object = [](const YAML::Node& doc) {
    std::string kind = str(doc["kind"]);
    return SourceObject{kind, str(doc["metadata"]["name"]), "1", testing::to_json(doc)};
  };
  std::vector<SourceObject> objects = {object(find(all, "Gateway", "waypoint"))};
  SnapshotPtr s = load_snapshot_from_objects(text, path, "default", objects);
  CHECK(s->warnings.empty());
  CHECK(s->ignored.empty());
  CHECK(s->rejected.empty());
  CHECK(s->bootstrap.namespace_ == "default");
  CHECK(s->bootstrap.trust_domain == "cluster.local");
  CHECK(s->bootstrap.gateway == "waypoint");
  find(all, "Gateway", s->bootstrap.gateway);
  CHECK(s->gateway.name == "waypoint");
  CHECK(s->services.empty());

  // Listeners a pod needs: HBONE, metrics and health on every interface, admin on loopback only,
  // on the ports the Deployment declares.
  const Listeners& l = s->bootstrap.listeners;
  CHECK(l.hbone.to_string() == "0.0.0.0:15008");
  CHECK(l.admin.to_string() == "127.0.0.1:15000");
  CHECK(l.metrics.to_string() == "0.0.0.0:15020");
  CHECK(l.health.to_string() == "0.0.0.0:15021");
  std::set<int> declared;
  for (const auto& p : deployment["spec"]["template"]["spec"]["containers"][0]["ports"]) {
    declared.insert(num(p["containerPort"]));
  }
  CHECK(declared == std::set<int>{l.hbone.port(), l.metrics.port(), l.health.port()});

  // The tls files resolve, relative to the config file, to the Secret's projected items.
  auto relative = [&](const std::string& resolved) {
    std::string prefix = testing::fixture_dir() + "/";
    REQUIRE(resolved.starts_with(prefix));
    return resolved.substr(prefix.size());
  };
  CHECK(relative(s->bootstrap.tls.cert_chain) == mount.secret_items["tls.crt"]);
  CHECK(relative(s->bootstrap.tls.private_key) == mount.secret_items["tls.key"]);
  CHECK(relative(s->bootstrap.tls.root_cert) == mount.secret_items["ca.crt"]);

  // A fixed worker count no larger than the CPU limit (0 would start one worker per node core).
  const YAML::Node limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"];
  CHECK(s->bootstrap.concurrency > 0);
  if (limits["cpu"]) {
    CHECK(s->bootstrap.concurrency <= quantity(limits["cpu"]));
  }

  // Its own Service, as the API serves it (with the clusterIP the API server assigned), is in the
  // namespace too: it is not served.
  YAML::Node own = YAML::Clone(find(all, "Service", "waypoint"));
  own["spec"]["clusterIP"] = "10.96.0.30";
  objects.push_back(object(own));
  SnapshotPtr again = load_snapshot_from_objects(text, path, "default", objects);
  CHECK(again->services.empty());
  REQUIRE(again->ignored.size() == 1);
  CHECK(again->ignored[0].starts_with("Service default/waypoint: labelled istio.io/use-waypoint=none"));
}

TEST_CASE("k8s: the ConfigMap's bootstrap is config/bookinfo.yaml's, in the Kubernetes API mode", "[config]") {
  auto all = manifests();
  const auto ours = YAML::LoadAll(str(find(all, "ConfigMap", "waypoint-config")["data"]["config.yaml"]));
  const auto bookinfo = YAML::LoadAllFromFile((repo() / "config/bookinfo.yaml").string());
  REQUIRE(ours.size() == 1);  // the bootstrap alone: the rest comes from the API
  REQUIRE(str(ours[0]["kind"]) == "WaypointBootstrap");
  REQUIRE(str(bookinfo[0]["kind"]) == "WaypointBootstrap");
  CHECK(same(ours[0]["metadata"], bookinfo[0]["metadata"]));
  // Field for field, except the worker count (fixed in a pod, see deployment.yaml) and the source.
  const YAML::Node a = ours[0]["spec"];
  const YAML::Node b = bookinfo[0]["spec"];
  CHECK(a.size() == b.size() + 1);
  CHECK(a["kubernetes"].IsMap());
  CHECK(a["kubernetes"].size() == 0);  // every default: the pod's namespace, in-cluster credentials
  for (const auto& kv : b) {
    std::string key = kv.first.Scalar();
    if (key != "concurrency") {
      INFO("spec." << key);
      CHECK(same(a[key], kv.second));
    }
  }
}

TEST_CASE("k8s: the Role grants get/list/watch on exactly the kinds read, bound to the waypoint's account, the "
          "Deployment mounts a rotating token where in-cluster clients look",
          "[config]") {
  auto all = manifests();
  const YAML::Node role = find(all, "Role", "waypoint");
  std::set<std::string> granted;
  for (const auto& rule : role["rules"]) {
    CHECK(rule["verbs"].as<std::vector<std::string>>() == std::vector<std::string>{"get", "list", "watch"});
    CHECK(!rule["resourceNames"]);
    for (const auto& group : rule["apiGroups"]) {
      for (const auto& resource : rule["resources"]) {
        granted.insert(group.Scalar() + "/" + resource.Scalar());
      }
    }
  }
  std::set<std::string> read;
  for (const auto& kind : kube::Source::kinds()) {
    auto slash = kind.group_version.rfind('/');
    read.insert((slash == std::string::npos ? "" : kind.group_version.substr(0, slash)) + "/" + kind.plural);
  }
  CHECK(granted == read);

  const YAML::Node binding = find(all, "RoleBinding", "waypoint");
  CHECK(str(binding["roleRef"]["kind"]) == "Role");
  CHECK(str(binding["roleRef"]["name"]) == "waypoint");
  REQUIRE(binding["subjects"].size() == 1);
  CHECK(str(binding["subjects"][0]["kind"]) == "ServiceAccount");
  CHECK(str(binding["subjects"][0]["name"]) == "waypoint");
  CHECK(str(binding["subjects"][0]["namespace"]) == "default");

  const YAML::Node pod = find(all, "Deployment", "waypoint")["spec"]["template"]["spec"];
  CHECK(str(pod["serviceAccountName"]) == "waypoint");
  std::string path;
  for (const auto& m : pod["containers"][0]["volumeMounts"]) {
    if (str(m["name"]) == "kube-api-access") {
      path = str(m["mountPath"]);
    }
  }
  CHECK(path == "/var/run/secrets/kubernetes.io/serviceaccount");
  std::set<std::string> files;
  for (const auto& v : pod["volumes"]) {
    if (str(v["name"]) != "kube-api-access") {
      continue;
    }
    for (const auto& source : v["projected"]["sources"]) {
      if (source["serviceAccountToken"]) {
        files.insert(str(source["serviceAccountToken"]["path"]));
        CHECK(num(source["serviceAccountToken"]["expirationSeconds"]) >= 600);
      }
      for (const char* kind : {"configMap", "downwardAPI"}) {
        const YAML::Node projected = source[kind];
        if (!projected) {
          continue;
        }
        for (const auto& item : projected["items"]) {
          files.insert(str(item["path"]));
        }
      }
    }
  }
  CHECK(files == std::set<std::string>{"token", "ca.crt", "namespace"});
}

TEST_CASE("k8s: the image (Dockerfile) is what the Deployment runs", "[config]") {
  auto all = manifests();
  Image image = read_dockerfile();
  CHECK(image.stages == 2);

  // Build stage: the build packages of scripts/install-deps.sh, same names; only the test and demo
  // packages are left out.
  std::set<std::string> build(image.build_packages.begin(), image.build_packages.end());
  std::set<std::string> deps;
  for (const std::string& p : install_deps_packages()) {
    if (p != "catch2" && p != "python3" && p != "python3-h2" && p != "procps" && p != "python3-kubernetes" &&
        p != "python3-yaml" && p != "openssl") {
      deps.insert(p);
    }
  }
  CHECK(build == deps);
  CHECK(build.count("node-llhttp") == 1);

  // Runtime stage: shared libraries only, no headers or compilers.
  REQUIRE(!image.runtime_packages.empty());
  for (const std::string& p : image.runtime_packages) {
    INFO(p);
    CHECK(!p.ends_with("-dev"));
    CHECK(p != "build-essential");
  }

  // The ENTRYPOINT reads the config where the Deployment mounts it.
  const YAML::Node d = find(all, "Deployment", "waypoint");
  Mount mount = projected_mount(d);
  REQUIRE(image.entrypoint.size() == 3);
  CHECK(image.entrypoint[0] == "/usr/local/bin/waypoint");
  CHECK(image.entrypoint[1] == "--config");
  CHECK(image.entrypoint[2] == mount.path + "/" + mount.config_items["config.yaml"]);

  // Exposed ports are the Deployment's container ports; never the admin API's 15000.
  std::set<int> declared;
  for (const auto& p : d["spec"]["template"]["spec"]["containers"][0]["ports"]) {
    declared.insert(num(p["containerPort"]));
  }
  CHECK(image.exposed == std::set<int>{15008, 15020, 15021});
  CHECK(image.exposed == declared);

  // A numeric non-root user (runAsNonRoot can only verify a numeric USER), the pod's runAsUser.
  std::string uid = image.user.substr(0, image.user.find(':'));
  REQUIRE(!uid.empty());
  CHECK(std::all_of(uid.begin(), uid.end(), [](unsigned char ch) { return std::isdigit(ch); }));
  CHECK(uid != "0");
  const YAML::Node pod_sc = d["spec"]["template"]["spec"]["securityContext"];
  if (pod_sc["runAsUser"]) {
    CHECK(str(pod_sc["runAsUser"]) == uid);
  }
  CHECK(image.stop_signal == "SIGTERM");
}

}  // namespace
}  // namespace wp::config
