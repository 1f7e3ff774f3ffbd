#pragma once
// Shared by the config tests: a per-process temp directory holding freshly generated certificates
// (certs/waypoint.pem, certs/waypoint.key, certs/root.pem, certs/other.key), and helpers that load
// YAML text as if it were the file <dir>/cfg.yaml.
#include <yaml-cpp/yaml.h>

#include <string>

#include "waypoint/config/snapshot.h"

namespace wp::config::testing {

// The directory (created once per process, removed at exit).
const std::string& fixture_dir();

void write_file(const std::string& path, const std::string& text);

// The bootstrap (namespace default, gateway "waypoint", the fixture certificates) and its Gateway,
// as a "---"-prefixed tail to append to test documents; `extra_spec` lines are added to the
// bootstrap's spec (indented by two spaces), `gateway_annotations` to the Gateway's metadata.
std::string base_config(const std::string& extra_spec = "", const std::string& gateway_annotations = "");

// Loads `yaml` as <fixture_dir>/cfg.yaml.
SnapshotPtr load(const std::string& yaml);

// The ConfigError text with the fixture directory stripped ("cfg.yaml:3:5: ..."), or "" on success.
std::string errors(const std::string& yaml);

// A YAML node as the JSON the Kubernetes API would serve (plain scalars that are numbers or
// booleans become JSON numbers and booleans), on one line.
std::string to_json(const YAML::Node& node);

}  // namespace wp::config::testing
