#!/bin/sh
# The CPU image's install, run by its Dockerfile and by tests/images (offline, from uv's cache).
#   images/cpu/install.sh PYTHON [all|deps|app] [more uv pip options, e.g. --offline --find-links DIR]
# deps: the whole project lock (torch's CPU build from PyTorch's CPU index); app: silverset itself.
set -eu
python=$1
part=${2:-all}
shift $(( $# < 2 ? $# : 2 ))
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
root=$(CDPATH='' cd -- "$here/../.." && pwd)

if [ "$part" = all ] || [ "$part" = deps ]; then
  uv pip install --python "$python" --index-strategy unsafe-best-match \
    --extra-index-url https://download.pytorch.org/whl/cpu "$@" -r "$root/requirements.lock"
fi
if [ "$part" = all ] || [ "$part" = app ]; then
  uv pip install --python "$python" --no-deps "$@" "$root"
  "$python" -c "import kfp, silverset.pipelines.cli, silverset.components.common.spec"
fi
