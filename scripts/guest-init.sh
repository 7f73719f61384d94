#!/bin/sh
# /init of the netplane test guest (scripts/build-guest.sh puts it into the initramfs).
# PID 1: mounts the pseudo file systems, loads the virtio-net modules, brings the NICs up,
# then serves a command shell on the serial console for test/helpers/guest.ts:
#   host -> guest, one line per command:  ID TIMEOUT_SECONDS BASE64(COMMAND)
#   guest -> host:  "@@np-begin ID@@\n" OUTPUT "\n@@np-end ID STATUS@@\n"
# The command travels base64-encoded so that no byte of it can be a tty control character
# and a command may span lines. ID ties every answer to its request.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
# Everything goes to the serial port (the host drives ttyS0, not whatever /dev/console is).
exec </dev/ttyS0 >/dev/ttyS0 2>&1
# Only emergencies from the kernel: a late printk must not land inside a command's output.
echo 1 >/proc/sys/kernel/printk

# The build resolved the dependencies into load order (modules.dep, dependencies first).
while read -r mod; do
  insmod "/lib/modules/$mod" || echo "np-guest: insmod $mod failed"
done </etc/np-modules

ip link set lo up
for nic in eth0 eth1; do
  [ -e "/sys/class/net/$nic" ] && ip link set "$nic" up
done

# Raw: no echo of what the host types, no CR/LF translation, no signals from input bytes.
stty -F /dev/ttyS0 raw -echo
echo "@@np-ready $(uname -r)@@"

while IFS= read -r line; do
  set -- $line
  id=$1
  secs=$2
  cmd=$(printf '%s' "$3" | base64 -d)
  printf '@@np-begin %s@@\n' "$id"
  # The guest bounds the command itself, so a hung command cannot take the shell with it.
  # stdin is /dev/null: a command must never eat the next command lines.
  if [ "$secs" -gt 0 ] 2>/dev/null; then
    timeout -s KILL "$secs" sh -c "$cmd" </dev/null 2>&1
  else
    sh -c "$cmd" </dev/null 2>&1
  fi
  status=$?
  printf '\n@@np-end %s %d@@\n' "$id" "$status"
done

echo "np-guest: console closed, powering off"
poweroff -f
