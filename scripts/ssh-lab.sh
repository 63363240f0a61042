#!/usr/bin/env bash
# Three "remote hosts" on this machine, to try `chaos-runner test --hosts` without other
# machines: network namespaces sshlab-1..3 on a bridge (198.19.251.1-3, the bridge .254),
# each running its own sshd with a host key and a client key made for the lab. Nothing is
# routed beyond 198.19.251.0/24. Root; needs iproute2, openssh-server and nftables.
#
#   sudo scripts/ssh-lab.sh up     # prints the flags to pass to chaos-runner
#   sudo scripts/ssh-lab.sh down   # removes everything `up` made
set -euo pipefail
lab=/run/chaos-ssh-lab
case ${1:-} in
up)
  [[ -d $lab ]] && { echo "already up ($lab); run: $0 down" >&2; exit 1; }
  mkdir -p "$lab" /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$lab/client_key"
  ssh-keygen -q -t ed25519 -N '' -f "$lab/host_key"
  cp "$lab/client_key.pub" "$lab/authorized_keys"
  cat >"$lab/sshd_config" <<CONF
HostKey $lab/host_key
AuthorizedKeysFile $lab/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
CONF
  ip link add brsshlab type bridge
  ip addr add 198.19.251.254/24 dev brsshlab
  ip link set brsshlab up
  for i in 1 2 3; do
    ip netns add "sshlab-$i"
    ip link add "vsshlab$i" type veth peer name eth0 netns "sshlab-$i"
    ip link set "vsshlab$i" master brsshlab up
    ip -n "sshlab-$i" addr add "198.19.251.$i/24" dev eth0
    ip -n "sshlab-$i" link set eth0 up
    ip -n "sshlab-$i" link set lo up
    ip netns exec "sshlab-$i" /usr/sbin/sshd -f "$lab/sshd_config" -o "ListenAddress=198.19.251.$i" -o "PidFile=$lab/sshd$i.pid"
  done
  echo "--hosts root@198.19.251.1,root@198.19.251.2,root@198.19.251.3 --ssh-key $lab/client_key --ssh-option StrictHostKeyChecking=no --ssh-option UserKnownHostsFile=/dev/null"
  ;;
down)
  for i in 1 2 3; do
    [[ -f $lab/sshd$i.pid ]] && kill "$(cat "$lab/sshd$i.pid")" 2>/dev/null || true
    ip netns del "sshlab-$i" 2>/dev/null || true
  done
  ip link del brsshlab 2>/dev/null || true
  rm -rf "$lab"
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 3
  ;;
esac
