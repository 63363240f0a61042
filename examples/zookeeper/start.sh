#!/bin/sh
# Starts one ZooKeeper server of Debian's zookeeper package in the foreground, logging to
# stdout: chaos-runner's --node-cmd for ZooKeeper. Usage: start.sh DATA_DIR
exec java -Xmx256m -Dzookeeper.log.dir="$1" -Dzookeeper.root.logger=INFO,CONSOLE \
  -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
  org.apache.zookeeper.server.quorum.QuorumPeerMain "$1/zoo.cfg"
