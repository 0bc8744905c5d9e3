#!/usr/bin/env bash
# The README's grpcurl examples against a fresh server on the embedded
# defaults (SQLite, local blobs) in a temporary data directory, with the
# admin key its first start wrote (a call without it is refused): reflection
# lists every service, health says SERVING, an upload (with a size, with
# finish_write, and one with neither, refused), get, list, ranged
# read and delete answer as documented, media URLs (GetMediaUrl) fetched
# with curl from the HTTP listener, a resumable upload in two streams
# finishes, a scrub finds every blob correct, and SIGTERM stops the server
# cleanly.
set -uo pipefail
cd "$(dirname "$0")/.."
bash .ci/tools.sh >/dev/null || exit 1
GRPCURL=.venv-tools/bin/grpcurl
# BLAKE3 of "hello\n", the bytes the example uploads.
HELLO_BLAKE3=8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99

cargo build --quiet --bin mediastore || exit 1
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${CARGO_TARGET_DIR:-target}/debug/mediastore" --listen "$addr" --http-listen "127.0.0.1:$hport" \
  --data-dir "$tmp/data" >"$tmp/server.log" 2>&1 &
pid=$!
cleanup() { kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

passed=0
failed=0
check() { # description, then the command to run
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then
    passed=$((passed + 1)); echo "ok   $what"
  else
    failed=$((failed + 1)); echo "FAIL $what"
  fi
}
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

for _ in $(seq 1 300); do
  $GRPCURL -plaintext "$addr" list >/dev/null 2>&1 && break
  if ! kill -0 "$pid" 2>/dev/null; then cat "$tmp/server.log"; echo "the server exited"; exit 1; fi
  sleep 0.1
done

# The first start wrote the admin key; every call below but reflection and
# health sends it, as the README's examples do.
check "the first start writes admin.key, mode 0600" test "$(stat -c %a "$tmp/data/admin.key" 2>/dev/null)" = "600"
check "and prints the key once" test "$(grep -c "$(cat "$tmp/data/admin.key" 2>/dev/null)" "$tmp/server.log")" = "1"
AUTH="authorization: Bearer $(cat "$tmp/data/admin.key" 2>/dev/null)"
nokey=$($GRPCURL -plaintext -d '{"page_size":1}' "$addr" mediastore.v1.MediaService/ListMedia 2>&1)
check "a call without a key is Unauthenticated" grep -q 'Code: Unauthenticated' <<<"$nokey"

services=$($GRPCURL -plaintext "$addr" list 2>&1)
for s in mediastore.v1.MediaService mediastore.v1.FolderService mediastore.v1.BindingService mediastore.v1.UploadService mediastore.v1.AdminService mediastore.v1.AccessService grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection; do
  check "list shows $s" grep -qx "$s" <<<"$services"
done
check "describe MediaService" grep -q 'rpc UploadMedia' <<<"$($GRPCURL -plaintext "$addr" describe mediastore.v1.MediaService 2>&1)"
check "health says SERVING" grep -q '"SERVING"' <<<"$($GRPCURL -plaintext "$addr" grpc.health.v1.Health/Check 2>&1)"

upload=$($GRPCURL -plaintext -H "$AUTH" -d '{"header":{"filename":"hello.txt","content_type":"text/plain","size_bytes":"6"}}
{"data":"aGVsbG8K"}' "$addr" mediastore.v1.MediaService/UploadMedia 2>&1)
id=$(field 'd["media"]["id"]' <<<"$upload" 2>/dev/null)
check "upload stores hello.txt with its BLAKE3" test "$(field 'd["media"]["blake3"]' <<<"$upload" 2>/dev/null)" = "$HELLO_BLAKE3"

hi=$($GRPCURL -plaintext -H "$AUTH" -d '{"header":{"filename":"hi.txt","content_type":"text/plain"}}
{"data":"aGkK","finish_write":true}' "$addr" mediastore.v1.MediaService/UploadMedia 2>&1)
check "an upload without a size ends with finish_write" test "$(field 'd["media"]["sizeBytes"]' <<<"$hi" 2>/dev/null)" = "3"
unfinished=$($GRPCURL -plaintext -H "$AUTH" -d '{"header":{"filename":"cut.txt","content_type":"text/plain"}}
{"data":"aGkK"}' "$addr" mediastore.v1.MediaService/UploadMedia 2>&1)
check "one with neither a size nor finish_write is refused" grep -q 'FINISH_WRITE_MISSING' <<<"$unfinished"

got=$($GRPCURL -plaintext -H "$AUTH" -d "{\"media_id\":\"$id\"}" "$addr" mediastore.v1.MediaService/GetMedia 2>&1)
check "get returns the media" test "$(field 'd["media"]["filename"]' <<<"$got" 2>/dev/null)" = "hello.txt"

listed=$($GRPCURL -plaintext -H "$AUTH" -d '{"page_size":10}' "$addr" mediastore.v1.MediaService/ListMedia 2>&1)
check "list returns them, newest first" test "$(field 'd["media"][1]["id"]' <<<"$listed" 2>/dev/null)" = "$id"

read=$($GRPCURL -plaintext -H "$AUTH" -d "{\"media_id\":\"$id\",\"read_offset\":\"1\",\"read_limit\":\"3\"}" "$addr" mediastore.v1.MediaService/ReadMedia 2>&1)
# Two JSON messages: metadata and range, then the data "ell" (base64 ZWxs).
check "ranged read sends bytes 1-3" grep -q '"data": "ZWxs"' <<<"$read"

missing=$($GRPCURL -plaintext -H "$AUTH" -d '{"media_id":"not-an-id"}' "$addr" mediastore.v1.MediaService/GetMedia 2>&1)
check "a malformed id is InvalidArgument" grep -q 'Code: InvalidArgument' <<<"$missing"

deleted=$($GRPCURL -plaintext -H "$AUTH" -d "{\"media_id\":\"$id\"}" "$addr" mediastore.v1.MediaService/DeleteMedia 2>&1)
check "delete removes the blob" grep -q '"blobRemoved": true' <<<"$deleted"

# A 4x2 PNG declared as nothing: the server tells its type and size, and
# makes a 2x1 rendition of it; the same PNG declared as a JPEG is refused.
PNG=iVBORw0KGgoAAAANSUhEUgAAAAQAAAACCAIAAADwyuo0AAAAEklEQVR4nGM8ISfHAANMDEgAABlYAQijcLdOAAAAAElFTkSuQmCC
png=$($GRPCURL -plaintext -H "$AUTH" -d "{\"header\":{\"filename\":\"red.png\"}}
{\"data\":\"$PNG\",\"finish_write\":true}" "$addr" mediastore.v1.MediaService/UploadMedia 2>&1)
check "a PNG is sniffed and measured" test "$(field 'd["media"]["mimeType"], d["media"]["width"], d["media"]["height"]' <<<"$png" 2>/dev/null)" = "('image/png', 4, 2)"
png_id=$(field 'd["media"]["id"]' <<<"$png" 2>/dev/null)
rend=$($GRPCURL -plaintext -H "$AUTH" -d "{\"media_id\":\"$png_id\",\"width\":2}" "$addr" mediastore.v1.MediaService/GetRendition 2>&1)
check "GetRendition makes a 2x1 JPEG" grep -q '"key": "2x0-contain-jpeg-q80"' <<<"$rend"
url=$($GRPCURL -plaintext -H "$AUTH" -d "{\"media_id\":\"$png_id\"}" "$addr" mediastore.v1.MediaService/GetMediaUrl 2>&1)
signed=$(field 'd["url"]' <<<"$url" 2>/dev/null)
check "GetMediaUrl signs a private media's URL" grep -q "^http://127.0.0.1:$hport/image/0x0/$png_id.png?exp=.*&kid=local&sig=" <<<"$signed"
check "curl fetches the PNG from it" test "$(curl -s "$signed" | base64 -w0)" = "$PNG"
check "without its signature it is 404" test "$(curl -s -o /dev/null -w '%{http_code}' "${signed%%\?*}")" = "404"
turl=$($GRPCURL -plaintext -H "$AUTH" -d "{\"media_id\":\"$png_id\",\"preset\":\"thumbnail\"}" "$addr" mediastore.v1.MediaService/GetMediaUrl 2>&1)
check "curl fetches its thumbnail as a JPEG" test "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$(field 'd["url"]' <<<"$turl" 2>/dev/null)")" = "200 image/jpeg"
check "and a range of the original" test "$(curl -s -r 0-3 "$signed" | base64 -w0)" = "iVBORw=="
spoof=$($GRPCURL -plaintext -H "$AUTH" -d "{\"header\":{\"filename\":\"red.jpg\",\"content_type\":\"image/jpeg\"}}
{\"data\":\"$PNG\",\"finish_write\":true}" "$addr" mediastore.v1.MediaService/UploadMedia 2>&1)
check "a PNG declared as a JPEG is refused" grep -q 'the content is image/png' <<<"$spoof"

created=$($GRPCURL -plaintext -H "$AUTH" -d '{"name":"photos"}' "$addr" mediastore.v1.FolderService/CreateFolder 2>&1)
check "create a folder" test "$(field 'd["folder"]["path"]' <<<"$created" 2>/dev/null)" = "/photos/"
found=$($GRPCURL -plaintext -H "$AUTH" -d '{"path":"/photos/"}' "$addr" mediastore.v1.FolderService/GetFolder 2>&1)
check "find it by path" test "$(field 'd["folder"]["name"]' <<<"$found" 2>/dev/null)" = "photos"
children=$($GRPCURL -plaintext -H "$AUTH" -d '{"page_size":20}' "$addr" mediastore.v1.FolderService/ListFolders 2>&1)
check "the root's subfolders are listed" test "$(field 'd["folders"][0]["name"]' <<<"$children" 2>/dev/null)" = "photos"
tree=$($GRPCURL -plaintext -H "$AUTH" -d '{"max_depth":2}' "$addr" mediastore.v1.FolderService/GetFolderTree 2>&1)
check "the tree holds the root and photos" test "$(field 'len(d["nodes"])' <<<"$tree" 2>/dev/null)" = "2"
again=$($GRPCURL -plaintext -H "$AUTH" -d '{"header":{"filename":"hello.txt","content_type":"text/plain"}}
{"data":"aGVsbG8K","finish_write":true}' "$addr" mediastore.v1.MediaService/UploadMedia 2>&1)
search=$($GRPCURL -plaintext -H "$AUTH" -d '{"filter":{"mime_types":["text/*"],"query":"hello"},"order_by":"MEDIA_ORDER_BY_SIZE"}' "$addr" mediastore.v1.MediaService/ListMedia 2>&1)
check "search finds hello.txt" test "$(field 'd["media"][0]["id"]' <<<"$search" 2>/dev/null)" = "$(field 'd["media"]["id"]' <<<"$again" 2>/dev/null)"

started=$($GRPCURL -plaintext -H "$AUTH" -d '{"header":{"filename":"notes.txt","content_type":"text/plain","size_bytes":"6"}}' "$addr" mediastore.v1.UploadService/StartUpload 2>&1)
uid=$(field 'd["upload"]["id"]' <<<"$started" 2>/dev/null)
part=$($GRPCURL -plaintext -H "$AUTH" -d "{\"upload_id\":\"$uid\",\"write_offset\":\"0\",\"data\":\"aGVs\"}" "$addr" mediastore.v1.UploadService/WriteUpload 2>&1)
check "a resumable upload's first stream commits 3 bytes" test "$(field 'd["upload"]["committedSize"]' <<<"$part" 2>/dev/null)" = "3"
done_=$($GRPCURL -plaintext -H "$AUTH" -d "{\"upload_id\":\"$uid\",\"write_offset\":\"3\",\"data\":\"bG8K\",\"finish_write\":true}" "$addr" mediastore.v1.UploadService/WriteUpload 2>&1)
check "its second stream finishes it with the right bytes" test "$(field 'd["upload"]["media"]["blake3"]' <<<"$done_" 2>/dev/null)" = "$HELLO_BLAKE3"

scrubbed=$($GRPCURL -plaintext -H "$AUTH" -d '{}' "$addr" mediastore.v1.AdminService/Scrub 2>&1)
check "a scrub finishes with every blob correct" python3 -c 'import json,sys; d=[json.loads(x) for x in sys.argv[1].replace("}\n{","}\x00{").split("\x00")][-1]; assert d["done"] and "corruptBlake3" not in d and "missingBlake3" not in d' "$scrubbed"

reanalysis=$($GRPCURL -plaintext -H "$AUTH" -d '{}' "$addr" mediastore.v1.MediaService/ReanalyzeMedia 2>&1)
job=$(field 'd["job"]["id"]' <<<"$reanalysis" 2>/dev/null)
check "ReanalyzeMedia queues a reanalyze job" test "$(field 'd["job"]["kind"], d["job"]["status"]' <<<"$reanalysis" 2>/dev/null)" = "('reanalyze', 'JOB_STATUS_QUEUED')"
watched=$($GRPCURL -plaintext -H "$AUTH" -d "{\"job_id\":\"$job\"}" "$addr" mediastore.v1.JobService/WatchJob 2>&1)
check "WatchJob follows it to its success" python3 -c '
import json, sys
text, dec, at, last = sys.argv[1], json.JSONDecoder(), 0, None
while text[at:].strip():
    at += len(text[at:]) - len(text[at:].lstrip())
    last, n = dec.raw_decode(text[at:])
    at += n
job = last["job"]
assert job["status"] == "JOB_STATUS_SUCCEEDED" and job["result"]["analyzed"] >= 1, job' "$watched"
failed_jobs=$($GRPCURL -plaintext -H "$AUTH" -d '{"filter":{"statuses":["JOB_STATUS_FAILED"]},"order_by":"JOB_ORDER_BY_UPDATE_TIME","include_total_size":true}' "$addr" mediastore.v1.JobService/ListJobs 2>&1)
check "ListJobs filters by status" test "$(field 'd.get("totalSize", "?")' <<<"$failed_jobs" 2>/dev/null)" = "0"

refused=$($GRPCURL -plaintext -H "$AUTH" -d '{"source_url":"http://169.254.169.254/latest/meta-data/"}' "$addr" mediastore.v1.MediaService/ImportMedia 2>&1)
check "ImportMedia refuses a cloud metadata address" grep -q 'SOURCE_NOT_ALLOWED' <<<"$refused"

kill -TERM "$pid"
stopped=1
for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then stopped=0; break; fi
  sleep 0.1
done
wait "$pid" 2>/dev/null
status=$?
check "SIGTERM stops the server within 10 s, exit 0" test "$stopped$status" = "00"

if [ "$failed" -gt 0 ]; then
  echo "--- server log"; cat "$tmp/server.log"
fi
echo "smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
