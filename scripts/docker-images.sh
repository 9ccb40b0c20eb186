#!/usr/bin/env bash
# Builds the Docker backend's default image offline, from the Debian mirror apt is
# configured with: debootstrap --variant=minbase with the interpreters, then docker
# import. Idempotent: an image whose recipe label matches is kept, and the root file
# system tarball is cached under $RUNBOX_CACHE (default /var/cache/runbox), so a wiped
# image store is refilled in seconds.
#
#   scripts/docker-images.sh            # build what is missing
#   scripts/docker-images.sh --force    # rebuild
set -euo pipefail

image=${RUNBOX_DOCKER_IMAGE:-runbox-sandbox:bookworm}
suite=bookworm
packages=python3,nodejs
cache=${RUNBOX_CACHE:-/var/cache/runbox}
# The recipe names what goes into the image; changing it rebuilds.
recipe="debootstrap minbase $suite +$packages v2"

force=false
[[ ${1:-} == --force ]] && force=true

docker_() { if command -v docker >/dev/null; then docker "$@"; else /usr/bin/docker "$@"; fi; }

if ! $force && [[ $(docker_ image inspect -f '{{index .Config.Labels "io.runbox.recipe"}}' "$image" 2>/dev/null) == "$recipe" ]]; then
  echo "docker image $image is up to date"
  exit 0
fi

# mirror prints the Debian mirror apt uses for $suite: deb822 sources first, then the
# one-line format.
mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -e $f ]] || continue
    awk -v suite="$suite" '
      /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (uri != "" && ok) print uri }' "$f" | grep -v -- -security | head -n1
  done
  awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true
}

tarball="$cache/${image//[:\/]/_}.tar"
stamp="$tarball.recipe"
if $force || [[ ! -s $tarball || $(cat "$stamp" 2>/dev/null) != "$recipe" ]]; then
  url=$(mirror | head -n1)
  [[ -n $url ]] || { echo "no Debian $suite mirror found in apt's sources" >&2; exit 1; }
  command -v debootstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
  }
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap $suite from $url with $packages (about half a minute)"
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$url" >"$cache/debootstrap.log" 2>&1 || {
    tail -n 20 "$cache/debootstrap.log" >&2
    exit 1
  }
  # What a sandbox image does not need: package caches, docs, apt lists.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale
  mkdir -p "$root/work"
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  echo "$recipe" >"$stamp"
fi

docker_ import \
  --change "LABEL io.runbox.recipe=\"$recipe\"" \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'WORKDIR /work' \
  "$tarball" "$image" >/dev/null
echo "docker image $image built: $(docker_ image inspect -f '{{.Size}}' "$image") bytes"
