// Baseline for `qpo bench tokenizer`: gpt-tokenizer (r50k_base) encoding every line of FILE
// on one core, repeated until at least MIN_SECONDS have passed after a warm-up pass.
// Prints one JSON line {"impl", "mb_per_s", "bytes", "passes", "seconds", "tokens"}.
const fs = require("fs");
const { encode } = require("gpt-tokenizer/cjs/encoding/r50k_base");

const [file, minSeconds = "2"] = process.argv.slice(2);
const text = fs.readFileSync(file, "utf8");
const lines = text.split("\n");
const bytes = Buffer.byteLength(text, "utf8") - (lines.length - 1); // newlines are not encoded
const asText = { allowedSpecial: new Set(), disallowedSpecial: new Set() };
let tokens = 0;
for (const l of lines) tokens += encode(l, asText).length; // warm-up: JIT and merge cache
const t0 = process.hrtime.bigint();
let passes = 0, seconds = 0;
while (seconds < Number(minSeconds)) {
  for (const l of lines) encode(l, asText);
  passes++;
  seconds = Number(process.hrtime.bigint() - t0) / 1e9;
}
const mb = (bytes * passes) / 1e6 / seconds;
console.log(JSON.stringify({ impl: "gpt-tokenizer r50k_base (node)", mb_per_s: mb, bytes, passes, seconds, tokens }));
