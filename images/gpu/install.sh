#!/bin/sh
# The GPU image's install (run by its Dockerfile).
#   images/gpu/install.sh PYTHON [all|deps|app] [more uv pip options]
# deps: exactly images/gpu/requirements.lock, with --no-deps: the lock is the whole closure, and it holds
#   onnxruntime-gpu instead of the CPU onnxruntime wheel (both ship the `onnxruntime` module; whichever lands
#   last would overwrite the other). Everything comes from PyPI: torch 2.13.0 there is the CUDA 13.0 build, and
#   the tensorrt-cu13-libs sdist is NVIDIA's wheel stub, which fetches the real wheel from NVIDIA's index.
# app: silverset itself, without dependencies; then a check that the GPU stack imports.
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
  "$python" -c "import tensorrt, torch, torch_tensorrt, onnxruntime, silverset.components.runtime.backends; \
print('tensorrt', tensorrt.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda, \
'onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
fi
