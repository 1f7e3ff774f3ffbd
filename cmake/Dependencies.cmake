# Finds every dependency from Debian packages. A missing one stops the configure step with one line
# that names the package to install.
include(CheckSymbolExists)

function(wp_missing package what)
  message(FATAL_ERROR "waypoint needs ${what}: apt-get install -y ${package}")
endfunction()

find_package(Threads REQUIRED)

# libuv
find_path(WP_UV_INCLUDE uv.h)
find_library(WP_UV_LIB NAMES uv)
if(NOT WP_UV_INCLUDE OR NOT WP_UV_LIB)
  wp_missing(libuv1-dev "libuv")
endif()
add_library(wp::uv UNKNOWN IMPORTED)
set_target_properties(wp::uv PROPERTIES IMPORTED_LOCATION ${WP_UV_LIB} INTERFACE_INCLUDE_DIRECTORIES ${WP_UV_INCLUDE})

# nghttp2
find_path(WP_NGHTTP2_INCLUDE nghttp2/nghttp2.h)
find_library(WP_NGHTTP2_LIB NAMES nghttp2)
if(NOT WP_NGHTTP2_INCLUDE OR NOT WP_NGHTTP2_LIB)
  wp_missing(libnghttp2-dev "nghttp2")
endif()
add_library(wp::nghttp2 UNKNOWN IMPORTED)
set_target_properties(wp::nghttp2 PROPERTIES IMPORTED_LOCATION ${WP_NGHTTP2_LIB} INTERFACE_INCLUDE_DIRECTORIES ${WP_NGHTTP2_INCLUDE})
# Debian backported these two DoS guards into 1.52.0; use them when present.
set(CMAKE_REQUIRED_INCLUDES ${WP_NGHTTP2_INCLUDE})
set(CMAKE_REQUIRED_LIBRARIES ${WP_NGHTTP2_LIB})
check_symbol_exists(nghttp2_option_set_stream_reset_rate_limit nghttp2/nghttp2.h WP_HAVE_NGHTTP2_RESET_RATE_LIMIT)
check_symbol_exists(nghttp2_option_set_max_continuations nghttp2/nghttp2.h WP_HAVE_NGHTTP2_MAX_CONTINUATIONS)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_LIBRARIES)
set(WP_NGHTTP2_DEFINES "")
if(WP_HAVE_NGHTTP2_RESET_RATE_LIMIT)
  list(APPEND WP_NGHTTP2_DEFINES WP_HAVE_NGHTTP2_RESET_RATE_LIMIT=1)
endif()
if(WP_HAVE_NGHTTP2_MAX_CONTINUATIONS)
  list(APPEND WP_NGHTTP2_DEFINES WP_HAVE_NGHTTP2_MAX_CONTINUATIONS=1)
endif()

# OpenSSL 3
find_package(OpenSSL 3.0 QUIET)
if(NOT OPENSSL_FOUND)
  wp_missing(libssl-dev "OpenSSL 3")
endif()

# spdlog (Debian builds it against the external fmt)
find_package(spdlog QUIET CONFIG)
if(NOT spdlog_FOUND)
  wp_missing(libspdlog-dev "spdlog")
endif()

# yaml-cpp
find_package(yaml-cpp QUIET CONFIG)
if(NOT yaml-cpp_FOUND)
  wp_missing(libyaml-cpp-dev "yaml-cpp")
endif()

# nlohmann-json (header-only): the Kubernetes client's objects (src/kube/). Each watched object is
# held and mutated on its own (kind/apiVersion filled into list items); simdjson's DOM is read-only
# and tied to its parser's buffer.
find_package(nlohmann_json 3.9 QUIET CONFIG)
if(NOT nlohmann_json_FOUND)
  wp_missing(nlohmann-json3-dev "nlohmann-json")
endif()

# RE2 (libre2-dev): every regex in the config, as Envoy's and Istio's safe_regex (linear time,
# no backreferences, bounded program size). libstdc++'s std::regex recurses per character.
find_path(WP_RE2_INCLUDE re2/re2.h)
find_library(WP_RE2_LIB NAMES re2)
if(NOT WP_RE2_INCLUDE OR NOT WP_RE2_LIB)
  wp_missing(libre2-dev "RE2")
endif()
add_library(wp::re2 UNKNOWN IMPORTED)
set_target_properties(wp::re2 PROPERTIES IMPORTED_LOCATION ${WP_RE2_LIB} INTERFACE_INCLUDE_DIRECTORIES ${WP_RE2_INCLUDE})

# llhttp: Debian ships only the C sources (package node-llhttp); build them as a static library.
set(WP_LLHTTP_SRC_DIR /usr/share/llhttp CACHE PATH "llhttp C sources")
set(WP_LLHTTP_INCLUDE_DIR /usr/share/include/llhttp CACHE PATH "llhttp header")
if(NOT EXISTS ${WP_LLHTTP_SRC_DIR}/llhttp.c OR NOT EXISTS ${WP_LLHTTP_INCLUDE_DIR}/llhttp.h)
  wp_missing(node-llhttp "llhttp sources")
endif()
add_library(wp_llhttp STATIC ${WP_LLHTTP_SRC_DIR}/llhttp.c ${WP_LLHTTP_SRC_DIR}/api.c ${WP_LLHTTP_SRC_DIR}/http.c)
target_include_directories(wp_llhttp PUBLIC ${WP_LLHTTP_INCLUDE_DIR})
set_target_properties(wp_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON C_STANDARD 99)
target_compile_options(wp_llhttp PRIVATE -w)
add_library(wp::llhttp ALIAS wp_llhttp)

# Catch2 v2 (tests only)
if(WP_BUILD_TESTS)
  find_package(Catch2 2 QUIET CONFIG)
  if(NOT Catch2_FOUND)
    wp_missing(catch2 "Catch2 v2")
  endif()
endif()
