#!/bin/sh
# The GPU image's install (run by its Dockerfile). The lock pins torch's CPU build (torch==X+cpu); here the
# same X comes from the CUDA 12.8 index, and `.[gpu]` adds tensorrt, torch-tensorrt and onnxruntime-gpu at
# the ranges pyproject declares (the GPU stack is issue 15's).
#   images/gpu/install.sh PYTHON [all|deps|app] [more uv pip options]
set -eu
python=$1
part=${2:-all}
shift $(( $# < 2 ? $# : 2 ))
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
root=$(CDPATH='' cd -- "$here/../.." && pwd)
gpu_lock=$(mktemp)
trap 'rm -f "$gpu_lock"' EXIT
sed -E 's/^(torch==[0-9.]+)\+cpu$/\1/' "$root/requirements.lock" > "$gpu_lock"

if [ "$part" = all ] || [ "$part" = deps ]; then
  uv pip install --python "$python" --index-strategy unsafe-best-match \
    --extra-index-url https://download.pytorch.org/whl/cu128 "$@" -r "$gpu_lock"
fi
if [ "$part" = all ] || [ "$part" = app ]; then
  uv pip install --python "$python" --index-strategy unsafe-best-match \
    --extra-index-url https://download.pytorch.org/whl/cu128 "$@" "$root[gpu]"
  "$python" -c "import tensorrt, torch; print('tensorrt', tensorrt.__version__, 'torch', torch.__version__)"
fi
