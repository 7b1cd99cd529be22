#!/usr/bin/env bash
# The target check: does `qms install` give working devices on the Raspberry Pi's OS?
#
# 1. An arm64 Debian root (Bookworm, the base of Raspberry Pi OS) made once with debootstrap
#    and run through qemu-user-static, cached under /var/cache/qms-target/ (plus a layer with
#    what Pi OS has and minbase lacks: systemd, sudo); each run works on an overlay of it.
# 2. The project installed in it exactly as docs/deploy.md says: its command blocks marked
#    `<!-- target-check: admin -->` (on this machine, the admin's) and `<!-- target-check: pi -->`
#    (in the root) are run as written, so the page cannot drift from what works.
# 3. SDL's compiled-in video drivers listed inside the root (KMSDRM, for Pi OS Lite).
# 4. Every role started under its installed unit's sandbox (tests/support/unit_sandbox.py:
#    read-only root, writable /var/lib/qms, the unit's user and groups, NOTIFY_SOCKET) against
#    the root's own Mosquitto with the installed broker config, in a private network namespace,
#    with the simulated printer and gpiozero's mock pins: READY=1 and WATCHDOG=1 each.
# 5. A chosen subset of the tests, under arm64.
# Last line: {"arch": "aarch64", "distro": ..., "roles": 5, "roles_ready": N, "tests_passed": N,
#             "tests_failed": 0, "seconds": S}
#
# Usage: sudo scripts/target-check.sh [TEST_FILE...]     (needs root: debootstrap, mounts)
# Env: QMS_TARGET_DISTRO (bookworm), QMS_TARGET_CACHE (/var/cache/qms-target), QMS_TARGET_MIRROR
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
DISTRO=${QMS_TARGET_DISTRO:-bookworm}
ARCH=arm64
CACHE=${QMS_TARGET_CACHE:-/var/cache/qms-target}
MIRROR=${QMS_TARGET_MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES=python3,python3-venv,python3-pip,ca-certificates
PIOS_PACKAGES=(systemd sudo)        # on every Raspberry Pi OS, not in a minbase root
TESTS=("$@")
if ((${#TESTS[@]} == 0)); then
  TESTS=(tests/test_config.py tests/test_sdnotify.py tests/test_queue_core.py tests/test_display.py
         tests/test_printer_encoder.py tests/test_roles_watchdog.py tests/test_deploy.py tests/test_clock.py)
fi
T0=$(date +%s)
log() { echo "target-check: $*" >&2; }

[ "$(id -u)" = 0 ] || { echo "target-check: run as root (debootstrap, overlay mounts)" >&2; exit 2; }
[ -x .venv/bin/qms ] || { echo "target-check: run scripts/setup.sh first (the admin's qms)" >&2; exit 2; }

# ---------------------------------------------------------------- host tools
missing=()
for p in debootstrap qemu-user-static binfmt-support bubblewrap mosquitto iproute2 util-linux; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64

mkdir -p "$CACHE/apt/partial" "$CACHE/pip"
# run a command inside a root (as root, writable), with the shared download caches
in_root() {
  local root=$1; shift
  mkdir -p "$root/root/.cache/pip" "$root/var/cache/apt/archives"
  [ -e "$root/etc/resolv.conf" ] || touch "$root/etc/resolv.conf"
  bwrap --bind "$root" / --dev /dev --proc /proc --perms 1777 --tmpfs /tmp --tmpfs /run \
    --ro-bind /etc/resolv.conf /etc/resolv.conf \
    --bind "$CACHE/apt" /var/cache/apt/archives --bind "$CACHE/pip" /root/.cache/pip \
    --setenv PATH /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --setenv HOME /root --setenv DEBIAN_FRONTEND noninteractive --setenv LANG C.UTF-8 \
    --setenv PIP_ROOT_USER_ACTION ignore --setenv PIP_DISABLE_PIP_VERSION_CHECK 1 \
    --chdir / "$@"
}

# ---------------------------------------------------------------- cached roots
BASE=$CACHE/$DISTRO-$ARCH
if [ ! -d "$BASE" ]; then
  log "building the $DISTRO $ARCH root (once; several minutes)"
  rm -rf "$BASE.tmp"
  debootstrap --arch=$ARCH --variant=minbase --include=$BASE_PACKAGES "$DISTRO" "$BASE.tmp" "$MIRROR" \
    > "$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  mv "$BASE.tmp" "$BASE"
fi
PIOS=$BASE-pios
if [ ! -d "$PIOS" ]; then
  log "adding ${PIOS_PACKAGES[*]} to a copy of the root (once)"
  rm -rf "$PIOS.tmp"
  cp -a "$BASE" "$PIOS.tmp"
  # no service starts during package installs (no systemd running in the root)
  printf '#!/bin/sh\nexit 101\n' > "$PIOS.tmp/usr/sbin/policy-rc.d"
  chmod 755 "$PIOS.tmp/usr/sbin/policy-rc.d"
  in_root "$PIOS.tmp" apt-get update -qq
  in_root "$PIOS.tmp" apt-get install -y -qq --no-install-recommends "${PIOS_PACKAGES[@]}" >/dev/null
  mv "$PIOS.tmp" "$PIOS"
fi

# ---------------------------------------------------------------- this run's root
RUN=$CACHE/run
ROOT=$RUN/root
cleanup() { mountpoint -q "$ROOT" && umount "$ROOT" || true; }
cleanup
rm -rf "$RUN"
mkdir -p "$RUN/upper" "$RUN/work" "$ROOT" "$RUN/admin" "$RUN/logs"
mount -t overlay overlay -o "lowerdir=$PIOS,upperdir=$RUN/upper,workdir=$RUN/work" "$ROOT"
trap cleanup EXIT
echo 'APT::Get::Assume-Yes "true";' > "$ROOT/etc/apt/apt.conf.d/90target-check"   # the doc's apt lines, unattended
DISTRO_NAME=$(. "$ROOT/etc/os-release" && echo "$PRETTY_NAME")
# this machine's network trust goes with it, as resolv.conf does: a TLS-inspecting proxy's CA
# (/usr/local/share/ca-certificates) and pip's settings (a Pi behind such a proxy needs the same)
# (the same Debian bundle file; update-ca-certificates under qemu takes minutes)
if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
fi
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"

# the doc's command blocks
doc_block() {
  awk -v mark="<!-- target-check: $1 -->" '
    $0 == mark { want = 1; next }
    want && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }' docs/deploy.md
}
ADMIN=$(doc_block admin); PI=$(doc_block pi)
[ -n "$ADMIN" ] && [ -n "$PI" ] || { log "docs/deploy.md: target-check blocks not found"; exit 1; }

# the admin's machine (this one): the site config as the doc says, then its block
sed -e 's/^\[mqtt\]$/[mqtt]\npassword_file = "mqtt.password"/' config/ward-example.toml > "$RUN/admin/site.toml"
log "docs/deploy.md, admin block"
(cd "$RUN/admin" && PATH="$SRC/.venv/bin:$PATH" bash -euxc "$ADMIN") > "$RUN/logs/admin.log" 2>&1 \
  || { tail -20 "$RUN/logs/admin.log" >&2; exit 1; }

# the Pi: the checkout in /opt/qms/src with site.toml and secrets/ beside it, then its block
mkdir -p "$ROOT/opt/qms/src"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$ROOT/opt/qms/src"
cp -a "$RUN/admin/site.toml" "$RUN/admin/secrets" "$ROOT/opt/qms/src/"
log "docs/deploy.md, Raspberry Pi block (pip under qemu: minutes)"
t=$(date +%s)
in_root "$ROOT" bash -euxc "$PI" > "$RUN/logs/install.log" 2>&1 || { tail -30 "$RUN/logs/install.log" >&2; exit 1; }
log "installed in $(( $(date +%s) - t )) s"

# ---------------------------------------------------------------- KMSDRM in the root's pygame
DRIVERS=$(in_root "$ROOT" --setenv PYGAME_HIDE_SUPPORT_PROMPT 1 /opt/qms/venv/bin/python -c '
import ctypes, pygame
lib = next(l.split()[-1] for l in open("/proc/self/maps") if "libSDL2-2.0" in l)
sdl = ctypes.CDLL(lib); sdl.SDL_GetVideoDriver.restype = ctypes.c_char_p
print(pygame.version.ver, pygame.__file__, lib, *(sdl.SDL_GetVideoDriver(i).decode()
      for i in range(sdl.SDL_GetNumVideoDrivers())))' 2>/dev/null) || true
log "pygame, its SDL and SDL's video drivers in the root: $DRIVERS"
KMSDRM=false; [[ " ${DRIVERS,,} " == *" kmsdrm "* ]] && KMSDRM=true

# ---------------------------------------------------------------- every role in its sandbox
log "starting every role under its unit's sandbox (arm64 under qemu)"
unshare --net bash -euc '
  ip link set lo up
  bwrap --bind "$1" / --dev /dev --proc /proc --tmpfs /tmp --tmpfs /run --die-with-parent \
    bash -c "mkdir -p /run/mosquitto && chown mosquitto /run/mosquitto && exec /usr/sbin/mosquitto -c /etc/mosquitto/mosquitto.conf" \
    > "$2/logs/mosquitto.log" 2>&1 &
  broker=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 0.2; done
  status=0
  "$3/.venv/bin/python" "$3/tests/support/unit_sandbox.py" "$1" --repeat 3 --logs "$2/logs" > "$2/roles.jsonl" || status=$?
  # bwrap does not pass signals on: stop the broker itself (its child), then bwrap ends
  kill $(cat /proc/$broker/task/$broker/children) 2>/dev/null || true
  wait $broker || true
  exit $status' _ "$ROOT" "$RUN" "$SRC" || true
cat "$RUN/roles.jsonl" >&2
# the same cold starts natively (x86, this machine, same run): the baseline for bench/README.md
log "native baseline: $(.venv/bin/python bench/unit_start.py --repeat 3 --json 2>/dev/null | tail -1)"
ROLES_READY=$(grep -c '"ready": true, "watchdog": true' "$RUN/roles.jsonl" || true)

# ---------------------------------------------------------------- tests under arm64
log "tests under arm64: ${TESTS[*]}"
in_root "$ROOT" /opt/qms/venv/bin/pip install -q pytest pytest-timeout hypothesis > "$RUN/logs/pip-test.log" 2>&1
in_root "$ROOT" bash -c "cd /opt/qms/src && SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy \
  /opt/qms/venv/bin/python -m pytest -q -p no:cacheprovider --junitxml=/var/tmp/junit.xml ${TESTS[*]}" \
  > "$RUN/logs/tests.log" 2>&1 || true
tail -5 "$RUN/logs/tests.log" >&2
read -r PASSED FAILED < <(python3 - "$ROOT/var/tmp/junit.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    suites = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 1); raise SystemExit
s = suites if suites.tag == "testsuite" else suites.find("testsuite")
total, fail, err, skip = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
print(total - fail - err - skip, fail + err + skip)     # a skip proves nothing: counted as failed
EOF
)

printf '{"arch": "%s", "distro": "%s", "roles": 5, "roles_ready": %d, "tests_passed": %d, "tests_failed": %d, "seconds": %d, "kmsdrm": %s}\n' \
  "$(in_root "$ROOT" uname -m)" "$DISTRO_NAME" "$ROLES_READY" "$PASSED" "$FAILED" "$(( $(date +%s) - T0 ))" "$KMSDRM"
