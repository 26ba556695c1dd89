#!/usr/bin/env bash
# Third-party proof: install qplug into a prefix, build sdk/examples/int8_rtn out of tree with
# find_package(qplug) against that prefix, run its conformance suites, install it, and have the
# installed `qplug` find it next to the built-in plugins and quantize and evaluate a model with it.
#
# Usage: example_plugin.sh <qplug build dir> <qplug source dir> <shared dir>
set -euo pipefail
build=$1
source=$2
shared=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { echo "--- $*"; }

step "install qplug into $work/prefix"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"

step "build the example plugin against the installed prefix"
cmake -S "$source/sdk/examples/int8_rtn" -B "$work/example" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/example"
ctest --test-dir "$work/example" --output-on-failure
cmake --install "$work/example" --prefix "$work/prefix" > /dev/null

qplug="$work/prefix/bin/qplug"
step "qplug plugins lists the built-in and the example plugin"
"$qplug" plugins --json > "$work/plugins.json"
for name in '"name": "bnb"' '"name": "int8_rtn"'; do
  grep -q "$name" "$work/plugins.json" || { echo "missing $name in:"; cat "$work/plugins.json"; exit 1; }
done
grep -q '"rejected": \[\]' "$work/plugins.json" || { echo "unexpected rejections:"; cat "$work/plugins.json"; exit 1; }

step "quantize stories260K with the example plugin and evaluate it"
printf 'quant_method: int8_rtn\n' > "$work/int8.yaml"
"$qplug" quantize --model "$shared/data/stories260K" --config "$work/int8.yaml" --out "$work/int8" --json
grep -q '"quant_method": "int8_rtn"' "$work/int8/config.json"
"$qplug" eval --model "$work/int8" --data "$shared/data/corpus/tinystories_val.txt" --windows 8 \
  --json > "$work/eval.json"
cat "$work/eval.json"
# fp32 is 4.26 on these windows; per-channel int8 must stay close.
ppl=$(sed -n 's/.*"perplexity": \([0-9.]*\).*/\1/p' "$work/eval.json")
awk -v p="$ppl" 'BEGIN { exit !(p > 3.5 && p < 4.6) }' || { echo "perplexity $ppl out of range"; exit 1; }
echo "example plugin: built out of tree, conformant, loaded and run by qplug (perplexity $ppl)"
