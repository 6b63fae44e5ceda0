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
# Usage: docker/build-image.sh [--force] [IMAGE_NAME]
#   IMAGE_NAME  default authority-redis:local
#   --force     rebuild even if the image already exists
set -euo pipefail

readonly DEFAULT_IMAGE=authority-redis:local
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly script_dir

die() {
    printf 'build-image.sh: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<USAGE
Usage: docker/build-image.sh [--force] [IMAGE_NAME]
  Builds a Redis image FROM scratch out of this host's redis-server and redis-cli.
  IMAGE_NAME  default $DEFAULT_IMAGE
  --force     rebuild even if the image already exists
USAGE
}

print_size() {
    local bytes
    bytes=$(docker image inspect --format '{{.Size}}' "$1")
    awk -v b="$bytes" -v img="$1" 'BEGIN { printf "image %s: %.1f MB (%d bytes)\n", img, b / 1e6, b }'
}

force=0
image=$DEFAULT_IMAGE
while (($#)); do
    case $1 in
        --force) force=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) die "unknown option $1 (usage: build-image.sh [--force] [IMAGE_NAME])" ;;
        *) image=$1 ;;
    esac
    shift
done

command -v docker >/dev/null || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running, may this user use it?)"

if ((!force)) && docker image inspect "$image" >/dev/null 2>&1; then
    echo "image $image already exists, not rebuilding (pass --force to rebuild)"
    print_size "$image"
    exit 0
fi

[[ $(uname -s) == Linux ]] || die "this script copies Linux binaries into a Linux image; on $(uname -s) use redis:7-alpine"
command -v ldd >/dev/null || die "ldd is not installed (it comes with the C library: package libc-bin)"

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

# Shared libraries: every absolute path ldd prints, i.e. `libx.so => /path (addr)` and the loader's own
# `/lib64/ld-linux-x86-64.so.2 (addr)` line; linux-vdso has no file. Each is copied dereferenced to the
# same path, where the loader's built-in search path finds it (the image has no ld.so.cache).
ldd_out=$(ldd "$server_real" "$cli_real" "$shell_real")
if grep -q 'not found' <<<"$ldd_out"; then
    die "a shared library of the Redis binaries is missing on this host:
$(grep 'not found' <<<"$ldd_out")"
fi
mapfile -t libs < <(awk '/^\t/ { if ($2 == "=>" && $3 ~ /^\//) print $3; else if ($1 ~ /^\//) print $1 }' \
    <<<"$ldd_out" | sort -u)
((${#libs[@]} > 0)) || echo "note: ldd found no shared libraries (static binaries?)"
for lib in "${libs[@]}"; do
    install -d -m 0755 "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

# glibc without nsswitch.conf asks DNS before /etc/hosts; replicaof/monitor by host name should see
# Docker's /etc/hosts first.
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"

cp "$script_dir/Dockerfile.local" "$ctx/Dockerfile"

# BuildKit needs the buildx plugin in recent docker CLIs; without it, use the classic builder. Either
# one builds `FROM scratch` offline. An explicit DOCKER_BUILDKIT from the caller wins.
if [[ -z ${DOCKER_BUILDKIT:-} ]] && ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi

echo "building $image from $server_real (Redis $redis_version), $cli_real, $shell_real and ${#libs[@]} libraries"
docker build --tag "$image" --build-arg "REDIS_VERSION=$redis_version" "$ctx"

# The image is only useful if the loader and libraries resolve inside it: run the binary once.
docker run --rm --network none "$image" redis-server --version >/dev/null ||
    die "the image was built but redis-server does not start inside it"

print_size "$image"
