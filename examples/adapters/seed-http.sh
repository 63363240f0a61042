#!/bin/bash
# A chaos-runner client adapter in bash and curl (docs/client-protocol.md), for servers of
# the seed-style HTTP API educational Raft servers serve:
#
#   GET  /kv/KEY -> 200 {"key": K, "value": V or null}
#   POST /kv/KEY {"value": V} -> 200 {"success": true}
#   a follower -> 503 {"error": "Not the leader", "leader_hint": ID}
#
# It serves the register workload's reads and writes (the seed API has no
# compare-and-set: run it with --mix read=50,write=50). Values are the runner's short
# strings of digits, so a regular expression is JSON parser enough here.
set -u
read -r hello
mapfile -t addrs < <(grep -oE '"addr": ?"[^"]*"' <<<"$hello" | sed -E 's/.*"([^"]*)"$/\1/')
mapfile -t ids < <(grep -oE '"id": ?[0-9]+' <<<"$hello" | grep -oE '[0-9]+$')
client=$(grep -oE '"client": ?[0-9]+' <<<"$hello" | grep -oE '[0-9]+$')
n=${#addrs[@]}
at=$((client % n)) # Each client starts at a different node.
echo '{"type":"ready"}'

field() { sed -nE "s/.*\"$1\": ?($2).*/\1/p" <<<"$3"; }

while read -r line; do
  id=$(field id '[0-9]+' "$line")
  f=$(field f '"[^"]*"' "$line")
  key=$(field key '"[^"]*"' "$line" | tr -d '"')
  value=$(field value '"[^"]*"' "$line")
  case $f in
    '"read"') reading=1 ;;
    '"write"') reading=0 ;;
    *) echo "{\"id\":$id,\"type\":\"fail\",\"reason\":\"rejected\",\"error\":\"no $f in the seed API\"}"; continue ;;
  esac
  answer="{\"type\":\"fail\",\"reason\":\"unreachable\",\"error\":\"no node took it\"}"
  for ((try = 0; try < 2 * n; try++)); do
    url="http://${addrs[$at]}/kv/$key"
    if ((reading)); then
      out=$(curl -s -m 1.5 -w '\n%{http_code}' "$url")
    else
      out=$(curl -s -m 1.5 -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
        -d "{\"value\":$value}" "$url")
    fi
    rc=$?
    code=${out##*$'\n'}
    body=${out%$'\n'*}
    if ((rc == 7)); then # Connection refused: certainly not applied; try the next node.
      at=$(((at + 1) % n))
      continue
    elif ((rc != 0)); then # Sent, no answer: a write may have happened.
      if ((reading)); then kind=fail; else kind=info; fi
      answer="{\"type\":\"$kind\",\"error\":\"curl exit $rc\"}"
    elif [[ $code == 2* ]]; then
      if ((reading)); then
        v=$(field value 'null|"[^"]*"' "$body")
        answer="{\"type\":\"ok\",\"value\":${v:-null}}"
      else
        answer='{"type":"ok"}'
      fi
    elif [[ $code == 503 && $body == *leader_hint* ]]; then # Not the leader: follow the hint.
      hint=$(field leader_hint '[0-9]+' "$body")
      next=$(((at + 1) % n))
      for i in "${!ids[@]}"; do [[ ${ids[$i]} == "$hint" ]] && next=$i; done
      at=$next
      answer='{"type":"fail","error":"no leader"}'
      continue
    elif [[ $code == 4* ]]; then
      answer="{\"type\":\"fail\",\"reason\":\"rejected\",\"error\":\"HTTP $code\"}"
    else
      if ((reading)); then kind=fail; else kind=info; fi
      answer="{\"type\":\"$kind\",\"error\":\"HTTP $code\"}"
    fi
    break
  done
  echo "{\"id\":$id,${answer#\{}"
done
