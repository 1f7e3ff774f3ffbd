#pragma once
// The HTTP side of the fake pod (PodBehavior::Http, see fake_pod.h for what each request gets):
// one PodHttpSession per tunnel sniffs the h2c client preface and hands the tunnel's bytes to an
// HTTP/1.1 or an h2c server built on the project's http/ codecs. Private to the fake pod; runs on
// the pod's loop thread.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "support/fake_pod.h"
#include "waypoint/buffer/buffer.h"
#include "waypoint/event/loop.h"
#include "waypoint/hbone/tunnel.h"

namespace wp::testing {

// Where the sessions record what they see (the pod's counters and request list).
class PodHttpRecorder {
 public:
  PodHttpRecorder(FakePod& pod, std::string name) : pod_(pod), name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  // A request head arrived: recorded, then counted. Returns its index for request_body().
  size_t request_started(RecordedRequest&& r);
  void request_body(size_t index, uint64_t bytes);
  // The status of a programmed failure (FakePod::fail_next), consuming it.
  std::optional<int> take_failure();
  void error();

 private:
  FakePod& pod_;
  std::string name_;
};

// One protocol's server inside a tunnel.
class PodHttpServer {
 public:
  virtual ~PodHttpServer() = default;
  virtual void on_data(buffer::Buffer& data) = 0;  // takes all of data
  virtual void on_eof() = 0;
  virtual void on_drained() = 0;
  virtual void on_closed() = 0;  // the tunnel is gone: never touch it again
};

class PodHttpSession {
 public:
  PodHttpSession(event::Loop& loop, PodHttpRecorder& recorder, hbone::Tunnel& tunnel);
  ~PodHttpSession();
  PodHttpSession(const PodHttpSession&) = delete;
  PodHttpSession& operator=(const PodHttpSession&) = delete;

  void on_data(buffer::Buffer& data);
  void on_eof();
  void on_drained();
  void on_closed();

 private:
  void start(bool h2c);

  event::Loop& loop_;
  PodHttpRecorder& recorder_;
  hbone::Tunnel* tunnel_;
  buffer::Buffer sniffed_;  // first bytes, until they tell the protocol
  std::unique_ptr<PodHttpServer> server_;
};

}  // namespace wp::testing
