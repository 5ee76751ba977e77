#!/usr/bin/env bash
# Fetch GraphiQL and React from the npm registry and write the files that /graphql serves
# (see README.md). Run it from anywhere; commit what it changes. Needs npm (and npx).
#
# To move to another version: change a version below, set its integrity to the value of
# `npm view PACKAGE@VERSION dist.integrity`, run this script, and try /graphql with the
# network off (tests/browser/test_graphiql.py does).
set -euo pipefail

GRAPHIQL=3.8.3
GRAPHIQL_INTEGRITY=sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==
REACT=18.2.0
REACT_INTEGRITY=sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==
REACT_DOM_INTEGRITY=sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==
# graphiql 3.x publishes its "min" bundle unminified (3.5 MB): esbuild minifies it,
# keeping the licence comments.
ESBUILD=0.28.2

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fetch() {  # fetch NAME VERSION INTEGRITY: unpack NAME@VERSION into ./NAME after checking it
  local name=$1 version=$2 integrity=$3 got
  got=$(npm pack --json "$name@$version" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].integrity))')
  if [ "$got" != "$integrity" ]; then
    echo "$name@$version: integrity $got, expected $integrity" >&2
    exit 1
  fi
  mkdir "$name"
  tar xzf "$name-$version.tgz" -C "$name"
}

fetch graphiql "$GRAPHIQL" "$GRAPHIQL_INTEGRITY"
fetch react "$REACT" "$REACT_INTEGRITY"
fetch react-dom "$REACT" "$REACT_DOM_INTEGRITY"

minify() {
  npx --yes "esbuild@$ESBUILD" "$1" --minify --legal-comments=eof --log-level=error \
    --outfile="$2"
}
minify graphiql/package/graphiql.min.js "$here/graphiql.min.js"
minify graphiql/package/graphiql.min.css "$here/graphiql.min.css"
cp react/package/umd/react.production.min.js "$here/react.production.min.js"
cp react-dom/package/umd/react-dom.production.min.js "$here/react-dom.production.min.js"
cp graphiql/package/LICENSE "$here/LICENSE.graphiql.txt"
cp react/package/LICENSE "$here/LICENSE.react.txt"
cp react-dom/package/LICENSE "$here/LICENSE.react-dom.txt"

cd "$here"
sha256sum graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js \
  >SHA256SUMS
echo "graphiql $GRAPHIQL, react $REACT, react-dom $REACT (minified with esbuild $ESBUILD)"
