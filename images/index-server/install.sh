#!/bin/sh
# The index server image's install, run by its Dockerfile and by tests/images (offline, from uv's cache).
#   images/index-server/install.sh PYTHON [all|deps|app] [more uv pip options, e.g. --offline]
# deps: the runtime closure pinned in requirements.lock here, with --no-deps (nothing else gets in);
# app: silverset itself (no dependencies), then a check that the entrypoint's imports and ScaNN load.
set -eu
python=$1
part=${2:-all}
shift $(( $# < 2 ? $# : 2 ))
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
root=$(CDPATH='' cd -- "$here/../.." && pwd)

if [ "$part" = all ] || [ "$part" = deps ]; then
  uv pip install --python "$python" --no-deps "$@" -r "$here/requirements.lock"
fi
if [ "$part" = all ] || [ "$part" = app ]; then
  uv pip install --python "$python" --no-deps "$@" "$root"
  "$python" -c "from silverset.components.index.scann_import import scann_ops_pybind; scann_ops_pybind(); \
import silverset.pipelines.cli, silverset.components.index.server"
fi
