#!/usr/bin/env bash
# npm run setup:tensorflow [-- --gpu]
#
# Builds @tensorflow/tfjs-node 4.22.0 (or tfjs-node-gpu with --gpu) on TensorFlow's C API taken from the
# PyPI wheel tensorflow-cpu==2.21.0, without the package's own download of libtensorflow 2.9.1 (a host
# these machines cannot reach). Steps, each skipped when already done (idempotent, cached):
#   1. pip download the wheel (version and sha256 pinned) into the cache;
#   2. take libtensorflow_cc.so.2, libtensorflow_framework.so.2 and the C headers out of it;
#   3. npm install the package without its install script (not saved to package.json: it is optional);
#   4. patch the addon's source so that several ranks (worker threads) can use it in one process, lay the
#      libraries and headers into its deps/ and build the addon from source with npm's node-gyp against
#      the installed Node headers.
# Nothing is fetched from outside the npm and PyPI registries. On a machine that can reach Google's
# storage, a plain `npm i @tensorflow/tfjs-node` works as well: weft uses whichever is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

TF_VERSION=2.21.0
TF_WHEEL=tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl
TF_SHA256=2b847d217b02ee7731ed91431daf3250daa0196c3c94614d23be27232e6e5b6c
TFJS_VERSION=4.22.0
PKG=@tensorflow/tfjs-node
# Compiled into the patched addon; core's tensorflowInstalled() looks for it (keep the two in step).
PATCH_MARKER=weft-patch:attr-name-set-mutex
for a in "$@"; do
  case "$a" in
    --gpu) PKG=@tensorflow/tfjs-node-gpu ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup:tensorflow: unknown option '$a' (only --gpu)" >&2; exit 2 ;;
  esac
done
CACHE="${WEFT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weft}/tensorflow-cpu-$TF_VERSION"
DEST="node_modules/$PKG"
say() { echo "setup:tensorflow: $*"; }
die() { echo "setup:tensorflow: $*" >&2; exit 1; }

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "the tensorflow-cpu wheel used here is for Linux x86_64; on $(uname -s)-$(uname -m) run 'npm i $PKG' instead"
command -v python3 >/dev/null || die "python3 is missing (it runs pip to fetch the tensorflow-cpu wheel): install python3 and python3-pip"
python3 -m pip --version >/dev/null 2>&1 || die "pip is missing for python3 (it fetches the tensorflow-cpu wheel): install python3-pip"
for tool in g++ make; do command -v "$tool" >/dev/null || die "$tool is missing (node-gyp builds the addon from source): install build-essential"; done
[ -d node_modules/@tensorflow/tfjs-core ] || die "run 'npm ci' first (node_modules/@tensorflow/tfjs-core is missing)"

# Node's headers for node-gyp: the installed ones when present, so nothing is downloaded.
NODE_PREFIX="$(dirname "$(dirname "$(command -v node)")")"
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$NODE_PREFIX/include/node/node_api.h" ]; then export npm_config_nodedir="$NODE_PREFIX"; fi

if [ -f "$DEST/lib/napi-v8/tfjs_binding.node" ] && [ -f "$DEST/deps/lib/libtensorflow_cc.so.2" ] &&
  grep -q "$PATCH_MARKER" "$DEST/lib/napi-v8/tfjs_binding.node" && node -e "require('./$DEST/lib/napi-v8/tfjs_binding.node')" 2>/dev/null; then
  say "$PKG@$(node -p "require('./$DEST/package.json').version") is already built on TensorFlow $TF_VERSION"
  exit 0
fi

# 1-2. The wheel and what the addon needs from it.
mkdir -p "$CACHE"
if [ ! -f "$CACHE/lib/libtensorflow_cc.so.2" ]; then
  if [ ! -f "$CACHE/$TF_WHEEL" ]; then
    say "downloading tensorflow-cpu==$TF_VERSION with pip (274 MB, sha256 pinned)"
    echo "tensorflow-cpu==$TF_VERSION --hash=sha256:$TF_SHA256" >"$CACHE/requirements.txt"
    python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: --python-version 3.11 \
      --platform manylinux_2_27_x86_64 -r "$CACHE/requirements.txt" -d "$CACHE" ||
      die "pip could not download tensorflow-cpu==$TF_VERSION (needs the PyPI registry or a mirror in pip's config)"
  fi
  echo "$TF_SHA256  $CACHE/$TF_WHEEL" | sha256sum -c --quiet - || die "$CACHE/$TF_WHEEL does not match its pinned sha256: delete it and run again"
  say "extracting the C API libraries and headers"
  rm -rf "$CACHE/x" && mkdir -p "$CACHE/x"
  python3 - "$CACHE/$TF_WHEEL" "$CACHE/x" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
want = ('tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2')
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        if n in want or (n.startswith('tensorflow/include/') and n.endswith('.h') and (
                n.startswith(('tensorflow/include/tensorflow/c/', 'tensorflow/include/tensorflow/core/platform/ctstring',
                              'tensorflow/include/tsl/platform/ctstring', 'tensorflow/include/xla/tsl/c/')))):
            z.extract(n, out)
PY
  rm -rf "$CACHE/lib" "$CACHE/include"
  mkdir -p "$CACHE/lib"
  mv "$CACHE/x/tensorflow/libtensorflow_cc.so.2" "$CACHE/x/tensorflow/libtensorflow_framework.so.2" "$CACHE/lib/"
  mv "$CACHE/x/tensorflow/include" "$CACHE/include"
  rm -rf "$CACHE/x"
fi

# 3. The package, without its install script (it would wipe deps/ and download libtensorflow 2.9.1).
if [ ! -f "$DEST/package.json" ] || [ "$(node -p "require('./$DEST/package.json').version")" != "$TFJS_VERSION" ]; then
  say "installing $PKG@$TFJS_VERSION from npm (install script skipped)"
  npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error "$PKG@$TFJS_VERSION" >/dev/null
fi

# 4. The addon keeps the names of op attributes in one process-wide std::set (ATTR_NAME_SET) and inserts
#    into it on every op, from whichever thread runs the op, with no lock. With ranks as worker threads of
#    one process, two inserts at once corrupt the tree and the heap: SIGSEGV in AssignOpAttr, or glibc's
#    "double free or corruption" (issue 17; a core dump showed both rank threads inside that insert).
#    Guard it with a mutex (nodes of a std::set never move, so the name pointers stay valid after it).
python3 - "$DEST/binding/tfjs_backend.cc" "$PATCH_MARKER" <<'PATCH'
import sys
path, marker = sys.argv[1], sys.argv[2]
src = open(path).read()
if marker not in src:
    edits = [
        ('#include <set>\n', '#include <mutex>\n#include <set>\n'),
        ('static std::set<std::string> ATTR_NAME_SET;\n',
         'static std::set<std::string> ATTR_NAME_SET;\n'
         '// Ranks in worker threads run ops at the same time: inserts into the set must not overlap.\n'
         'static std::mutex ATTR_NAME_SET_MUTEX;\n'
         'extern "C" __attribute__((used, visibility("default"))) const char WEFT_PATCH_MARKER[] = "' + marker + '";\n'),
        ('  const char *attr_name =\n      ATTR_NAME_SET.insert(attr_name_string.c_str()).first->c_str();\n',
         '  const char *attr_name;\n  {\n    std::lock_guard<std::mutex> lock(ATTR_NAME_SET_MUTEX);\n'
         '    attr_name = ATTR_NAME_SET.insert(attr_name_string).first->c_str();\n  }\n'),
    ]
    for old, new in edits:
        if src.count(old) != 1:
            sys.exit(f'setup:tensorflow: {path} is not the source this patch was written for (looked for {old.strip()!r})')
        src = src.replace(old, new)
    open(path, 'w').write(src)
PATCH
# deps/ as binding.gyp expects it, then the addon from source.
rm -rf "$DEST/deps" && mkdir -p "$DEST/deps/lib"
cp "$CACHE/lib/libtensorflow_cc.so.2" "$CACHE/lib/libtensorflow_framework.so.2" "$DEST/deps/lib/"
cp -r "$CACHE/include" "$DEST/deps/include"
(
  cd "$DEST/deps/lib"
  ln -s libtensorflow_cc.so.2 libtensorflow.so
  ln -s libtensorflow_framework.so.2 libtensorflow_framework.so
  # The names the package's install script looks for, so a later `npm rebuild` leaves deps/ alone.
  ln -s libtensorflow_cc.so.2 libtensorflow.so.2.9.1
  ln -s libtensorflow_framework.so.2 libtensorflow_framework.so.2.9.1
)
say "building the addon from source (node-gyp, ~30 s)"
NODE_GYP="$(dirname "$(dirname "$(command -v npm)")")/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$NODE_GYP" ] || NODE_GYP="$(npm prefix -g)/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$NODE_GYP" ] || die "npm's bundled node-gyp was not found (looked at $NODE_GYP)"
# The variables node-pre-gyp would pass; N-API 8 is what the package's loader picks on Node ≥ 20.
(cd "$DEST" && node "$NODE_GYP" rebuild --loglevel=error --module_name=tfjs_binding --module_path="$PWD/lib/napi-v8" \
  --napi_build_version=8 >build.log 2>&1) || { tail -20 "$DEST/build.log" >&2; die "the addon build failed (log: $DEST/build.log)"; }
rm -rf "$DEST/build"
version="$(cd "$DEST" && TF_CPP_MIN_LOG_LEVEL=3 TF_ENABLE_ONEDNN_OPTS=0 node -e "console.log(require('./lib/napi-v8/tfjs_binding.node').TF_Version)")" ||
  die "the addon was built but does not load"
grep -q "$PATCH_MARKER" "$DEST/lib/napi-v8/tfjs_binding.node" || die "the addon was built without weft's thread-safety patch ($PATCH_MARKER)"
say "$PKG@$TFJS_VERSION built on TensorFlow $version ($DEST)"
