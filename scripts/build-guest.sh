#!/usr/bin/env bash
# Builds the Linux guest that the integration tests boot under QEMU (test/helpers/guest.ts),
# from Debian packages only, fetched with `apt-get download`:
#   kernel     linux-image-*-cloud-amd64 (what apt's linux-image-cloud-amd64 points at now)
#   initramfs  busybox-static, the virtio-net-over-PCI modules and their dependencies
#              (modules.dep), virtio_console (the test shell's port), ethtool with its
#              shared libraries (Debian has no static ethtool and busybox has no
#              `ethtool -L`), and scripts/guest-init.sh as /init
# Cache: ${NETPLANE_GUEST_CACHE:-${XDG_CACHE_HOME:-~/.cache}/netplane-guest}/<key>/, where
# the key hashes the package versions and this script and the init, so a kernel update or
# an edit rebuilds; downloaded .debs stay in <cache>/debs/. A cached build returns at once.
# Builds unused for 30 days are removed.
# Last two lines of stdout:  KERNEL=<path>  INITRD=<path>   (progress goes to stderr)
#   bash scripts/build-guest.sh          build if needed, print the paths
#   bash scripts/build-guest.sh --force  rebuild even if cached
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
init_src="$here/guest-init.sh"
cache="${NETPLANE_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netplane-guest}"
force=0
[ "${1:-}" = "--force" ] && force=1
# The modules virtio-net over PCI needs; dependencies are added from modules.dep.
want_modules=(virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net
  virtio_console)  # the port the test shell runs on

log() { echo "build-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Host programs: dpkg-deb, apt-get and gzip come with every Debian; cpio may be missing.
need_pkgs=()
for pair in cpio:cpio apt-get:apt dpkg-deb:dpkg gzip:gzip ldd:libc-bin sha256sum:coreutils flock:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_pkgs+=("${pair#*:}")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null; }
  else
    die "missing host packages: ${need_pkgs[*]} (sudo apt-get install ${need_pkgs[*]})"
  fi
fi

# The candidate version apt would install, or empty.
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2 }'; }

# Asking apt takes seconds (more on a busy machine), so the answer is kept per state of
# apt's package lists and dpkg's database: `apt-get update` (a new kernel) or an upgraded
# libc6 asks again.
mkdir -p "$cache"
apt_state="$( (ls -l --time-style=+%s /var/lib/apt/lists/ 2>/dev/null; stat -c %Y /var/lib/dpkg/status) | sha256sum | cut -c1-16)"
resolved="$cache/resolved-$apt_state"
if [ -s "$resolved" ] && [ $force -eq 0 ]; then
  . "$resolved"
else
  # The concrete kernel package behind the meta-package (Depends: linux-image-6.1.0-NN-cloud-amd64).
  kpkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')"
  if [ -z "$kpkg" ]; then
    # A minimal apt may only know the versioned packages: take the newest one.
    kpkg="$(apt-cache search --names-only '^linux-image-[0-9].*-cloud-amd64$' | awk '{ print $1 }' | sort -V | tail -1)"
  fi
  [ -n "$kpkg" ] || die "apt knows no linux-image-*-cloud-amd64 (run apt-get update)"
  versions=""
  for p in "$kpkg" busybox-static ethtool libmnl0; do
    v="$(candidate "$p")"
    [ -n "$v" ] || die "apt has no candidate for $p (run apt-get update)"
    versions+="$p=$v "
  done
  # ethtool's libc comes from the host (ldd below), so its version is part of the key too.
  versions+="libc6=$(dpkg-query -W -f '${Version}' libc6 2>/dev/null || echo unknown)"
  rm -f "$cache"/resolved-*
  printf 'kpkg=%q\nversions=%q\n' "$kpkg" "$versions" >"$resolved.$$" && mv "$resolved.$$" "$resolved"
fi
pkgs=("$kpkg" busybox-static ethtool libmnl0)
# The version of package $1 as resolved above.
version_of() { local pv; for pv in $versions; do [ "${pv%%=*}" != "$1" ] || echo "${pv#*=}"; done; }
key="$(printf '%s\n' "$versions" | cat - "$0" "$init_src" | sha256sum | cut -c1-16)"
out="$cache/$key"
kver="${kpkg#linux-image-}"

if [ $force -eq 0 ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.gz" ]; then
  touch "$out"  # in use: not pruned
  echo "KERNEL=$out/vmlinuz"
  echo "INITRD=$out/initrd.gz"
  exit 0
fi

mkdir -p "$cache/debs"
# One build at a time per cache (two test runs may start together); the loser reuses the result.
exec 9>"$cache/.lock"
flock -w 600 9 || die "timed out waiting for $cache/.lock"
if [ $force -eq 0 ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.gz" ]; then
  echo "KERNEL=$out/vmlinuz"
  echo "INITRD=$out/initrd.gz"
  exit 0
fi

log "building $key: $versions"
work="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT

# apt-get download writes into the current directory; as root apt's sandbox user _apt
# cannot write there, so download into a world-writable temp dir and move the files.
deb_of() { ls "$cache/debs/${1}_"*"_amd64.deb" 2>/dev/null | grep -F "_$(echo "$2" | sed 's/:/%3a/')_" | head -1 || true; }
for p in "${pkgs[@]}"; do
  v="$(version_of "$p")"
  [ -n "$(deb_of "$p" "$v")" ] && continue
  log "downloading $p $v"
  dl="$(mktemp -d "${TMPDIR:-/tmp}/np-guest-dl-XXXXXX")"
  chmod 777 "$dl"
  (cd "$dl" && apt-get download -q "$p=$v" >&2) || die "apt-get download $p=$v failed"
  mv "$dl"/*.deb "$cache/debs/"
  rmdir "$dl"
done
for p in "${pkgs[@]}"; do
  deb="$(deb_of "$p" "$(version_of "$p")")"
  [ -n "$deb" ] || die "no .deb for $p in $cache/debs"
  mkdir -p "$work/x/$p"
  dpkg-deb -x "$deb" "$work/x/$p"
done

kx="$work/x/$kpkg"
bbx="$work/x/busybox-static/bin/busybox"
[ -s "$kx/boot/vmlinuz-$kver" ] || die "$kpkg has no /boot/vmlinuz-$kver"
[ -x "$bbx" ] || die "busybox-static has no /bin/busybox"

# modules.dep is made by depmod at install time, not shipped: make it (busybox has depmod).
moddir="$kx/lib/modules/$kver"
if command -v depmod >/dev/null 2>&1; then depmod -b "$kx" "$kver"; else "$bbx" depmod -b "$kx" "$kver"; fi
[ -s "$moddir/modules.dep" ] || die "depmod made no modules.dep"

root="$work/root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,lib/modules,lib64,lib/x86_64-linux-gnu,usr/bin,usr/sbin}
cp "$bbx" "$root/bin/busybox"
for applet in $("$bbx" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

# Load order: each module after its dependencies, each once.
declare -A loaded=()
order=()
add_module() {
  local name="$1" line path dep
  line="$(grep -E "(^|/)${name}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" || true)"
  if [ -z "$line" ]; then
    grep -qE "(^|/)${name}\.ko" "$moddir/modules.builtin" && return 0
    die "module $name is neither in modules.dep nor built in"
  fi
  path="${line%%:*}"
  [ -n "${loaded[$path]:-}" ] && return 0
  loaded[$path]=1
  # modules.dep lists the transitive dependencies; recursing orders them among themselves.
  for dep in ${line#*:}; do
    add_module "$(basename "$dep" | sed -E 's/\.ko(\.[a-z]+)?$//')"
  done
  order+=("$path")
}
for m in "${want_modules[@]}"; do add_module "$m"; done
for path in "${order[@]}"; do
  mkdir -p "$root/lib/modules/$(dirname "$path")"
  case "$path" in
    *.ko) cp "$moddir/$path" "$root/lib/modules/$path" ;;
    *.ko.xz) xz -dc "$moddir/$path" >"$root/lib/modules/${path%.xz}" ;;
    *.ko.zst) zstd -qdc "$moddir/$path" >"$root/lib/modules/${path%.zst}" ;;
    *.ko.gz) gzip -dc "$moddir/$path" >"$root/lib/modules/${path%.gz}" ;;
    *) die "unknown module file $path" ;;
  esac
  echo "$path" | sed -E 's/\.ko\.[a-z]+$/.ko/' >>"$root/etc/np-modules"
done
log "modules: $(tr '\n' ' ' <"$root/etc/np-modules")"

# ethtool is dynamically linked: the binary plus what ldd resolves (libmnl from its .deb).
ethx="$work/x/ethtool/sbin/ethtool"
mnl="$work/x/libmnl0/usr/lib/x86_64-linux-gnu"
cp "$ethx" "$root/sbin/ethtool"
while read -r lib; do
  [ -n "$lib" ] || continue
  case "$lib" in
    */ld-linux*) cp -L "$lib" "$root/lib64/$(basename "$lib")" ;;
    *) cp -L "$lib" "$root/lib/x86_64-linux-gnu/$(basename "$lib")" ;;
  esac
done < <(LD_LIBRARY_PATH="$mnl" ldd "$ethx" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -s "$root/lib/x86_64-linux-gnu/libmnl.so.0" ] || die "ldd did not resolve ethtool's libmnl"

cp "$init_src" "$root/init"
chmod 755 "$root/init"

# newc entry written by hand: /dev/console must exist before /init runs (it is the initial
# stdin/stdout) and making a device node with mknod would need root.
newc() { # name mode rdevmajor rdevminor
  local name="$1" mode="$2" namesize=$((${#1} + 1)) pad
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
    0 "$mode" 0 0 1 0 0 0 0 "$3" "$4" "$namesize" 0
  printf '%s\0' "$name"
  pad=$(((4 - (110 + namesize) % 4) % 4))
  [ $pad -gt 0 ] && head -c $pad /dev/zero
  return 0
}
{
  newc dev $((0040755)) 0 0
  newc dev/console $((0020600)) 5 1
  newc TRAILER!!! 0 0 0
} >"$work/dev.cpio"

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$work/root.cpio"
mkdir -p "$work/out"
cat "$work/dev.cpio" "$work/root.cpio" | gzip -9n >"$work/out/initrd.gz"
cp "$kx/boot/vmlinuz-$kver" "$work/out/vmlinuz"
printf '%s\n' "$versions" >"$work/out/versions"
rm -rf "$out"
mv "$work/out" "$out"
# Other checkouts may use other keys, so only builds nobody used for a month go.
find "$cache" -mindepth 1 -maxdepth 1 -type d -regex '.*/[0-9a-f]\{16\}' -mtime +30 -exec rm -rf {} + 2>/dev/null || true
find "$cache/debs" -name '*.deb' -mtime +30 -delete 2>/dev/null || true
log "kernel $kver, initramfs $(du -h "$out/initrd.gz" | cut -f1) in $out"
echo "KERNEL=$out/vmlinuz"
echo "INITRD=$out/initrd.gz"
