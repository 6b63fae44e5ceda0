#!/usr/bin/env bash
# Builds a Redis image FROM scratch out of this machine's own Redis binaries.
#
# Why: the compose stack and the chaos harness run Redis in containers, and their default image
# (redis:7-alpine) has to be pulled. On a machine with a Docker engine but no registry access, this
# script makes an equivalent image with no pull at all:
#
#   docker/build-image.sh                       # builds authority-redis:local
#   REDIS_IMAGE=authority-redis:local REDIS_PASSWORD=... docker-compose up -d
#
# The image holds redis-server (also as redis-sentinel, redis-check-rdb and redis-check-aof: one binary
# that picks its mode from the name it was started under, linked like in the official image),
# redis-cli, /bin/sh (the compose file's Sentinel start-up needs a shell, and redis:7-alpine has one),
# every shared library those load (their `ldd` closure, the dynamic loader included), and empty
# writable /data, /conf and /tmp. It runs as root, like the official image's Sentinel.
#
# With --loadgen it builds the load generator's image instead (authority-loadgen:local): the host's
# release build of loadgen (cargo build --release -p loadgen; LOADGEN_BINARY overrides the path) and
# its ldd closure, FROM scratch, for the Compose `loadgen` profile and deploy/kubernetes/.
#
# Usage: docker/build-image.sh [--force] [--loadgen] [IMAGE_NAME]
#   IMAGE_NAME  default authority-redis:local (authority-loadgen:local with --loadgen)
#   --force     rebuild even if the image already exists
#   --loadgen   build the loadgen image
set -euo pipefail

readonly DEFAULT_IMAGE=authority-redis:local
readonly LOADGEN_IMAGE=authority-loadgen:local
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly script_dir

die() {
    printf 'build-image.sh: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<USAGE
Usage: docker/build-image.sh [--force] [--loadgen] [IMAGE_NAME]
  Builds a Redis image FROM scratch out of this host's redis-server and redis-cli.
  IMAGE_NAME  default $DEFAULT_IMAGE ($LOADGEN_IMAGE with --loadgen)
  --force     rebuild even if the image already exists
  --loadgen   build the loadgen image from the host's release build (LOADGEN_BINARY, default
              \${CARGO_TARGET_DIR:-target}/release/loadgen)
USAGE
}

print_size() {
    local bytes
    bytes=$(docker image inspect --format '{{.Size}}' "$1")
    awk -v b="$bytes" -v img="$1" 'BEGIN { printf "image %s: %.1f MB (%d bytes)\n", img, b / 1e6, b }'
}

# Copies each absolute path `ldd` prints for the given binaries into the rootfs $1, dereferenced to
# the same path, where the loader's built-in search path finds it (the image has no ld.so.cache):
# `libx.so => /path (addr)` lines and the loader's own `/lib64/ld-linux-x86-64.so.2 (addr)`.
copy_libraries() {
    local root=$1 ldd_out lib
    shift
    ldd_out=$(ldd "$@")
    if grep -q 'not found' <<<"$ldd_out"; then
        die "a shared library of $* is missing on this host:
$(grep 'not found' <<<"$ldd_out")"
    fi
    mapfile -t libs < <(awk '/^\t/ { if ($2 == "=>" && $3 ~ /^\//) print $3; else if ($1 ~ /^\//) print $1 }' \
        <<<"$ldd_out" | sort -u)
    ((${#libs[@]} > 0)) || echo "note: ldd found no shared libraries (static binaries?)"
    for lib in "${libs[@]}"; do
        install -d -m 0755 "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# The BuildKit builder needs the buildx plugin in recent docker CLIs; without it, use the classic
# builder. Either one builds `FROM scratch` offline. An explicit DOCKER_BUILDKIT from the caller wins.
choose_builder() {
    if [[ -z ${DOCKER_BUILDKIT:-} ]] && ! docker buildx version >/dev/null 2>&1; then
        export DOCKER_BUILDKIT=0
    fi
}

force=0
loadgen=0
image=
while (($#)); do
    case $1 in
        --force) force=1 ;;
        --loadgen) loadgen=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) die "unknown option $1 (usage: build-image.sh [--force] [--loadgen] [IMAGE_NAME])" ;;
        *) image=$1 ;;
    esac
    shift
done
if [[ -z $image ]]; then
    if ((loadgen)); then image=$LOADGEN_IMAGE; else image=$DEFAULT_IMAGE; fi
fi

command -v docker >/dev/null || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running, may this user use it?)"

if ((!force)) && docker image inspect "$image" >/dev/null 2>&1; then
    echo "image $image already exists, not rebuilding (pass --force to rebuild)"
    print_size "$image"
    exit 0
fi

[[ $(uname -s) == Linux ]] || die "this script copies Linux binaries into a Linux image; on $(uname -s) use redis:7-alpine"
command -v ldd >/dev/null || die "ldd is not installed (it comes with the C library: package libc-bin)"

if ((loadgen)); then
    target_dir=${CARGO_TARGET_DIR:-$script_dir/../target}
    binary=${LOADGEN_BINARY:-$target_dir/release/loadgen}
    [[ -x $binary ]] || die "no loadgen release binary at $binary: run cargo build --release -p loadgen (or set LOADGEN_BINARY)"
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/authority-loadgen-image.XXXXXX")
    trap 'rm -rf "$ctx"' EXIT
    root=$ctx/rootfs
    install -d -m 0755 "$root/usr/local/bin" "$root/etc"
    # Results go to a mounted /results; /tmp for anything else. No users in the image: world-writable.
    install -d -m 0777 "$root/results"
    install -d -m 1777 "$root/tmp"
    cp -L "$binary" "$root/usr/local/bin/loadgen"
    copy_libraries "$root" "$binary"
    printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
    # goose builds a reqwest client per user, and reqwest's platform verifier refuses to build
    # one without root certificates ("reqwest::Error (builder error)"): every user then fails to
    # start and the run measures nothing. loadgen never speaks HTTP, but the client must exist.
    ca_bundle=""
    for c in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
        if [[ -s $c ]]; then ca_bundle=$c; break; fi
    done
    [[ -n $ca_bundle ]] || die "no CA certificate bundle on this host (package ca-certificates): goose's HTTP client cannot start without one"
    install -d -m 0755 "$root/etc/ssl/certs"
    cp -L "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
    cp "$script_dir/Dockerfile.loadgen" "$ctx/Dockerfile"
    choose_builder
    version=$("$binary" --version | awk '{print $2}')
    echo "building $image from $binary (loadgen $version) and ${#libs[@]} libraries"
    docker build --tag "$image" --build-arg "LOADGEN_VERSION=$version" "$ctx"
    docker run --rm --network none "$image" --version >/dev/null ||
        die "the image was built but loadgen does not start inside it"
    print_size "$image"
    exit 0
fi

# The binaries to copy. Debian's /usr/bin/redis-server is a symlink to redis-check-rdb: resolve it to
# the real file, which becomes /usr/local/bin/redis-server in the image.
server=$(command -v redis-server) || die "redis-server is not installed. Install it with
    sudo apt-get install redis-server      (Debian/Ubuntu; brings redis-cli and redis-sentinel too)
    sudo dnf install redis                 (Fedora/RHEL)
or pull the official image instead: docker pull redis:7-alpine"
cli=$(command -v redis-cli) || die "redis-cli is not installed. Install it with: sudo apt-get install redis-tools"
server_real=$(readlink -f "$server")
cli_real=$(readlink -f "$cli")
shell_real=$(readlink -f /bin/sh)
# Ask under the name redis-server: the binary answers as whatever its argv[0] says.
redis_version=$("$server" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
[[ -n $redis_version ]] || die "$server --version did not print a version: is it really redis-server?"

ctx=$(mktemp -d "${TMPDIR:-/tmp}/authority-redis-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs

install -d -m 0755 "$root/usr/local/bin" "$root/bin" "$root/etc"
# /data (RDB, AOF) and /conf (Sentinel's config, which Sentinel rewrites) must be writable by whatever
# user the container runs as; the image has no users, so make them world-writable. /tmp is sticky.
install -d -m 0777 "$root/data" "$root/conf"
install -d -m 1777 "$root/tmp"

cp -L "$server_real" "$root/usr/local/bin/redis-server"
for name in redis-sentinel redis-check-rdb redis-check-aof; do
    ln -s redis-server "$root/usr/local/bin/$name"
done
cp -L "$cli_real" "$root/usr/local/bin/redis-cli"
cp -L "$shell_real" "$root/bin/sh"

copy_libraries "$root" "$server_real" "$cli_real" "$shell_real"

# glibc without nsswitch.conf asks DNS before /etc/hosts; replicaof/monitor by host name should see
# Docker's /etc/hosts first.
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"

cp "$script_dir/Dockerfile.local" "$ctx/Dockerfile"

choose_builder

echo "building $image from $server_real (Redis $redis_version), $cli_real, $shell_real and ${#libs[@]} libraries"
docker build --tag "$image" --build-arg "REDIS_VERSION=$redis_version" "$ctx"

# The image is only useful if the loader and libraries resolve inside it: run the binary once.
docker run --rm --network none "$image" redis-server --version >/dev/null ||
    die "the image was built but redis-server does not start inside it"

print_size "$image"
