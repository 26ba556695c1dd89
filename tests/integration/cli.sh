#!/usr/bin/env bash
# The qplug command as a person uses it: exit codes, the plan `inspect` prints for stories260K,
# errors for bad input, and the quantize -> eval -> generate path with the bnb plugin.
#
# Usage: cli.sh <qplug binary> <shared dir>
set -uo pipefail
qplug=$1
shared=$2
model="$shared/data/stories260K"
text="$shared/data/corpus/tinystories_val.txt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
pass=0

check() {  # check <description> <command...>: the command must succeed
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
run() {  # run <expected exit code> <stdout file> <stderr file> <qplug args...>
  local expected=$1 out=$2 err=$3; shift 3
  "$qplug" "$@" > "$out" 2> "$err"
  local code=$?
  if [ "$code" -ne "$expected" ]; then
    echo "FAIL: qplug $* exited $code, expected $expected"; cat "$err"; failures=$((failures + 1))
    return 1
  fi
  pass=$((pass + 1))
}

# ---- exit codes ----------------------------------------------------------------------------
run 2 "$work/o" "$work/e"
run 2 "$work/o" "$work/e" frobnicate
check "usage error names the command" grep -q "unknown command 'frobnicate'" "$work/e"
run 2 "$work/o" "$work/e" inspect --model "$model"
check "usage error names the missing option" grep -q -- "--config is required" "$work/e"
run 0 "$work/o" "$work/e" help

# ---- plugins ------------------------------------------------------------------------------
run 0 "$work/plugins.json" "$work/e" plugins --json
check "plugins lists bnb" grep -q '"name": "bnb"' "$work/plugins.json"
check "plugins lists both bnb methods" grep -q '"bitsandbytes_8bit"' "$work/plugins.json"

# ---- inspect ------------------------------------------------------------------------------
printf 'quant_method: bitsandbytes\nload_in_4bit: true\nbnb_4bit_quant_type: nf4\nbnb_4bit_use_double_quant: true\n' > "$work/nf4.yaml"
run 0 "$work/plan.txt" "$work/e" inspect --model "$model" --config "$work/nf4.yaml"
check "lm_head kept as a tied weight" grep -qE '^lm_head .*keep .*default skip: tied weight' "$work/plan.txt"
check "35 projections quantized" grep -q "linears: 35 quantized, 1 kept" "$work/plan.txt"
check "every *_proj is quantized" test "$(grep -cE '_proj +Linear .* quantize ' "$work/plan.txt")" -eq 35
check "the embedding is kept" grep -qE '^model.embed_tokens +Embedding .*keep' "$work/plan.txt"
run 0 "$work/plan.json" "$work/e" inspect --model "$model" --config "$work/nf4.yaml" --json
check "inspect --json totals" grep -q '"linears_quantized": 35' "$work/plan.json"

# ---- bad input ----------------------------------------------------------------------------
printf 'quant_method: nope\n' > "$work/nope.yaml"
run 1 "$work/o" "$work/e" inspect --model "$model" --config "$work/nope.yaml"
check "unknown method lists what is available" grep -q "Available: awq, bitsandbytes_4bit, bitsandbytes_8bit" "$work/e"
printf 'quant_method: bitsandbytes\nload_in_4bit: true\nbnb_4bit_quant_type: [nf4\n' > "$work/broken.yaml"
run 1 "$work/o" "$work/e" inspect --model "$model" --config "$work/broken.yaml"
check "malformed YAML names file, line and column" grep -qE "broken.yaml:[0-9]+:[0-9]+" "$work/e"
printf 'load_in_4bit: true\nbnb_4bit_quant_typ: nf4\n' > "$work/typo.yaml"
run 1 "$work/o" "$work/e" inspect --model "$model" --config "$work/typo.yaml"
check "unknown key suggests the right one" grep -q "did you mean 'bnb_4bit_quant_type'" "$work/e"
run 1 "$work/o" "$work/e" inspect --model "$work/no-such-model" --config "$work/nf4.yaml"
check "missing model folder is named" grep -q "no-such-model" "$work/e"

# ---- quantize, eval, generate -------------------------------------------------------------
run 0 "$work/q.json" "$work/e" quantize --model "$model" --config "$work/nf4.yaml" --out "$work/nf4" --json
check "quantize summary" grep -q '"linears_quantized": 35' "$work/q.json"
check "tokenizer copied" test -f "$work/nf4/tokenizer.model"
run 1 "$work/o" "$work/e" quantize --model "$model" --config "$work/nf4.yaml" --out "$work/nf4"
check "an existing output needs --overwrite" grep -q "pass --overwrite" "$work/e"
check "the existing output is untouched" test -f "$work/nf4/model.safetensors"
if [ -n "${QPLUG_TEST_WITHOUT_SENTENCEPIECE:-}" ]; then
  # Set by CMake for AddressSanitizer builds, where SentencePiece cannot be loaded.
  echo "skipped: eval and generate on text (SentencePiece is unavailable in this build)"
else
  run 0 "$work/eval.json" "$work/e" eval --model "$work/nf4" --data "$text" --windows 40 --json
  ppl=$(sed -n 's/.*"perplexity": \([0-9.]*\).*/\1/p' "$work/eval.json")
  check "nf4 perplexity near 4.78 (fp32: 4.257)" awk -v p="$ppl" 'BEGIN { exit !(p > 4.6 && p < 4.95) }'
  run 0 "$work/story.txt" "$work/e" generate --model "$model" --prompt "Once upon a time" \
    --max-new-tokens 30
  check "generate continues the prompt" \
    grep -q "^Once upon a time, there was a little girl named Lily" "$work/story.txt"
fi

# ---- the main job -------------------------------------------------------------------------
run 0 "$work/demo.txt" "$work/e" demo
# One row per method: bnb nf4, bnb fp4, LLM.int8 and GPTQ.
check "demo reloads every method identically" test "$(grep -c identical "$work/demo.txt")" -eq 5
check "demo reports no reload that differs" sh -c "! grep -q DIFFERS '$work/demo.txt'"

echo "$pass passed, $failures failed"
[ "$failures" -eq 0 ]
