#!/usr/bin/env bash
# Build a TensorRT engine for a fomm_kp detector ON THE JETSON (JetPack 5 = TensorRT 8.5, or newer)
# with trtexec, from an ONNX file exported on any machine:
#
#   fomm-kp export student.pt --onnx student.onnx              # on the workstation (dynamic batch, opset 17)
#   scp student.onnx jetson:                                    # then, on the Jetson:
#   scripts/jetson_build_engine.sh student.onnx                 # FP16 engine student.fp16.engine
#   scripts/jetson_build_engine.sh student.onnx --int8 calib.cache
#   fomm-kp track video.mp4 -m student.onnx --backend tensorrt --engine student.fp16.engine
#
# Engines are specific to the GPU and TensorRT version they were built with: build on the device
# that runs them. INT8 with trtexec needs a calibration cache (trtexec --calib=FILE) written by a
# calibrator; `fomm-kp export CKPT --onnx M.onnx --tensorrt M.engine --int8 --video V` runs TensorRT's
# Python API with a calibrator fed by crops of the video (on a machine where `import tensorrt`
# works, e.g. the Jetson itself). Without a cache, --int8 here builds with placeholder scales
# (fine for timing, not for accuracy).
#
# Options (after the ONNX path): --fp16 (default) | --fp32 | --int8 [CACHE]; MIN_BATCH, OPT_BATCH,
# MAX_BATCH environment variables set the optimisation profile of a dynamic-batch model (1/16/64).
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1" ]]; then
    echo "usage: $0 MODEL.onnx [--fp16|--fp32|--int8 [CALIB.cache]]" >&2
    exit 2
fi
onnx="$1"; shift
precision="fp16"; calib=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --fp16) precision="fp16" ;;
        --fp32) precision="fp32" ;;
        --int8) precision="int8"; if [[ $# -gt 1 && "$2" != --* ]]; then calib="$2"; shift; fi ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

trtexec="$(command -v trtexec || true)"
[[ -z "$trtexec" && -x /usr/src/tensorrt/bin/trtexec ]] && trtexec=/usr/src/tensorrt/bin/trtexec
if [[ -z "$trtexec" ]]; then
    echo "trtexec not found: install TensorRT (JetPack ships it as /usr/src/tensorrt/bin/trtexec)" >&2
    exit 2
fi

# The exported graph has one input, 'images' float32 (B, 3, S, S) RGB in [0, 1].
side="$(python3 - "$onnx" <<'PY'
import sys
import onnx
model = onnx.load(sys.argv[1], load_external_data=False)
dims = model.graph.input[0].type.tensor_type.shape.dim
print(("dynamic" if dims[0].dim_param else dims[0].dim_value), dims[2].dim_value)
PY
)" || { echo "could not read $onnx with python3 -c 'import onnx' (pip install onnx)" >&2; exit 2; }
read -r batch size <<<"$side"

engine="${onnx%.onnx}.${precision}.engine"
args=(--onnx="$onnx" --saveEngine="$engine" --memPoolSize=workspace:1024)
if [[ "$batch" == "dynamic" ]]; then
    low=${MIN_BATCH:-1}; high=${MAX_BATCH:-64}; opt=${OPT_BATCH:-16}
    (( opt > high )) && opt=$high
    (( opt < low )) && opt=$low
    args+=(--minShapes=images:${low}x3x${size}x${size}
           --optShapes=images:${opt}x3x${size}x${size}
           --maxShapes=images:${high}x3x${size}x${size})
fi
case "$precision" in
    fp16) args+=(--fp16) ;;
    int8) args+=(--int8 --fp16); [[ -n "$calib" ]] && args+=(--calib="$calib") ;;
esac

echo "building $engine ($precision, input ${batch}x3x${size}x${size})" >&2
"$trtexec" "${args[@]}"
echo "engine: $engine" >&2
# Throughput at the optimal batch (trtexec reports queries/s; frames/s = that x batch):
#   $trtexec --loadEngine="$engine" --shapes=images:16x3x${size}x${size}
