# Build with the same Debian packages the scripts install; ship only the binary and its shared libraries.
FROM debian:bookworm-slim AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libnghttp2-dev libssl-dev libspdlog-dev \
      libyaml-cpp-dev node-llhttp && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY src src
COPY include include
COPY bench bench
COPY tests tests
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DWP_BUILD_TESTS=OFF && cmake --build /build -j "$(nproc)" --target waypoint

FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libuv1 libnghttp2-14 libssl3 libspdlog1.10 libyaml-cpp0.7 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 1337 --no-create-home waypoint
COPY --from=build /build/waypoint /usr/local/bin/waypoint
USER 1337
EXPOSE 15008 15020 15021
ENTRYPOINT ["/usr/local/bin/waypoint", "--config", "/etc/waypoint/config.yaml"]
