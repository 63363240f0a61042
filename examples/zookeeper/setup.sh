#!/bin/sh
# Writes a ZooKeeper server's zoo.cfg and myid into its data folder: chaos-runner's
# --node-setup for Debian's zookeeper (see README.md beside this file).
#
#   setup.sh ID DATA_DIR LISTEN CLIENT_PORT MEMBERS MEMBERS_AUX
#
# MEMBERS is ID=HOST:QUORUM_PORT,... and MEMBERS_AUX ID=HOST:ELECTION_PORT,... for every
# server: chaos-runner's {members} and {members_aux}.
set -eu
id=$1 dir=$2 listen=$3 client_port=$4 members=$5 aux=$6
mkdir -p "$dir"
echo "$id" > "$dir/myid"
{
  # ZooKeeper's own sample configuration's timing (conf/zoo_sample.cfg).
  echo "tickTime=2000"
  echo "initLimit=10"
  echo "syncLimit=5"
  echo "dataDir=$dir"
  echo "clientPort=$client_port"
  echo "clientPortAddress=$listen"
  echo "quorumListenOnAllIPs=false"
  echo "admin.enableServer=false"
  echo "4lw.commands.whitelist=srvr"
  echo "$members" | tr ',' '\n' | while IFS='=' read -r n quorum; do
    election=$(echo "$aux" | tr ',' '\n' | grep "^$n=" | cut -d= -f2 | cut -d: -f2)
    echo "server.$n=$quorum:$election"
  done
} > "$dir/zoo.cfg"
