# waypoint image: build with the same Debian packages scripts/install-deps.sh installs for building,
# ship only the binary and the shared libraries it needs, run as a non-root user.
#
#   docker build -t waypoint .
#   docker run --rm -v "$PWD/my-config:/etc/waypoint:ro" -p 15008:15008 waypoint
#
# The configuration is read from /etc/waypoint/config.yaml; its tls paths are relative to that file
# (certs/waypoint.pem, ...). config/k8s/ mounts both from one projected volume.

# ---- build -------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS build
# The build packages of scripts/install-deps.sh (same names; catch2, python3, python3-h2 and procps
# are only for the tests and the demo, which this image does not build). node-llhttp ships llhttp's
# C sources, which cmake/Dependencies.cmake compiles into a static library.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       build-essential cmake pkg-config \
       libuv1-dev libnghttp2-dev libssl-dev libspdlog-dev libyaml-cpp-dev libre2-dev nlohmann-json3-dev node-llhttp \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# What CMake reads with -DWP_BUILD_TESTS=OFF: the top CMakeLists.txt, cmake/, src/, include/, and
# bench/ (add_subdirectory(bench) is unconditional and declares wp-loadgen/wp-bench-pod from their
# sources, so they must exist even though only the waypoint target is built). tests/ is not read.
COPY CMakeLists.txt ./
COPY cmake cmake
COPY include include
COPY bench/CMakeLists.txt bench/*.cpp bench/*.h bench/
COPY src src
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DWP_BUILD_TESTS=OFF \
    && cmake --build /build -j "$(nproc)" --target waypoint

# ---- runtime -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# One package per shared library in `ldd waypoint` (dpkg -S): libuv.so.1 libuv1, libnghttp2.so.14
# libnghttp2-14, libssl.so.3 + libcrypto.so.3 libssl3, libspdlog.so.1.10 libspdlog1.10, libfmt.so.9
# libfmt9 (linked directly: spdlog is Debian's external-fmt build), libyaml-cpp.so.0.7 libyaml-cpp0.7,
# libre2.so.9 libre2-9,
# libstdc++.so.6 libstdc++6, libgcc_s.so.1 libgcc-s1; libc.so.6 and libm.so.6 are libc6 (in the base).
# No ca-certificates: the mesh root comes from the configuration.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       libuv1 libnghttp2-14 libssl3 libspdlog1.10 libfmt9 libyaml-cpp0.7 libre2-9 libstdc++6 libgcc-s1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 1337 waypoint \
    && useradd --system --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin waypoint \
    && mkdir -p /etc/waypoint
COPY --from=build /build/waypoint /usr/local/bin/waypoint
# Numeric, so Kubernetes' runAsNonRoot can check it (1337: Istio's proxy uid).
USER 1337:1337
# 15008 HBONE, 15020 Prometheus metrics, 15021 health. The admin API (15000) binds 127.0.0.1 only.
EXPOSE 15008 15020 15021
# SIGTERM: readiness goes 503, GOAWAY to every HBONE connection, in-flight requests drain (5 s by
# default, --drain-time), exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/waypoint", "--config", "/etc/waypoint/config.yaml"]
