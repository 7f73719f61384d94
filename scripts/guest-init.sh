#!/bin/sh
# /init of the netplane test guest (scripts/build-guest.sh puts it into the initramfs).
# PID 1: mounts the pseudo file systems, loads the virtio-net modules, brings the NICs up,
# then serves a command shell for test/helpers/guest.ts on the virtio-serial port "np.shell"
# (ttyS0 stays the console: kernel messages, this script's own errors):
#   host -> guest, one line per command:  ID TIMEOUT_SECONDS BASE64(COMMAND)
#   guest -> host:  "@@np-begin ID@@\n" OUTPUT "\n@@np-end ID STATUS@@\n"
# The command travels base64-encoded so that a command may span lines; ID ties every answer
# to its request. Why not the 8250 UART: under TCG with a host writing while the guest
# prints, it lost or repeated bytes about once in 300 commands (a stale tail of the previous
# line, a missing newline); a virtio-serial port is flow-controlled both ways and has no
# line discipline.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
# Until the shell's port is up, everything goes to the serial console.
exec </dev/null >/dev/ttyS0 2>&1

# The build resolved the dependencies into load order (modules.dep, dependencies first).
while read -r mod; do
  insmod "/lib/modules/$mod" || echo "np-guest: insmod $mod failed"
done </etc/np-modules

ip link set lo up
for nic in eth0 eth1; do
  [ -e "/sys/class/net/$nic" ] && ip link set "$nic" up
done

# The host announces its ports to virtio_console after the driver loads, asynchronously:
# wait (bounded) for ours to show up.
port=""
tries=0
while [ -z "$port" ] && [ $tries -lt 600 ]; do
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = np.shell ] && port="/dev/${p##*/}"
  done
  [ -n "$port" ] && [ -c "$port" ] || { port=""; tries=$((tries + 1)); usleep 50000; }
done
if [ -z "$port" ]; then
  echo "np-guest: no virtio-serial port named np.shell; ports: $(ls /sys/class/virtio-ports 2>&1)"
  poweroff -f
fi
echo "np-guest: shell on $port"
# A virtio console port opens once: stdin and stdout share one open file; stderr stays on ttyS0.
exec 0<>"$port" 1>&0
echo "@@np-ready $(uname -r)@@"

while IFS= read -r line; do
  set -- $line
  id=$1
  secs=$2
  cmd=$(printf '%s' "$3" | base64 -d)
  printf '@@np-begin %s@@\n' "$id"
  # The guest bounds the command itself, so a hung command cannot take the shell with it:
  # in a session (and process group) of its own, so that running out of time kills all of
  # it, a pipeline too; a killed command ends with status 137 (128 + SIGKILL).
  # stdin is /dev/null: a command must never eat the next command lines.
  if [ "$secs" -gt 0 ] 2>/dev/null; then
    setsid sh -c "$cmd" </dev/null 2>&1 &
    pid=$!
    setsid sh -c "sleep $secs; kill -9 -$pid" </dev/null >/dev/null 2>&1 &
    watcher=$!
    wait $pid
    status=$?
    kill -9 -$watcher 2>/dev/null
    wait $watcher
  else
    sh -c "$cmd" </dev/null 2>&1
    status=$?
  fi
  printf '\n@@np-end %s %d@@\n' "$id" "$status"
done

echo "np-guest: console closed, powering off"
poweroff -f
