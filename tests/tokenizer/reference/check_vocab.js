// Checks that gpt-tokenizer's r50k_base is the GPT-2 encoding: its token bytes for every id
// equal those of GPT-2's encoder.json (given as argv[2]). Prints one JSON line
// {"checked": N, "mismatches": M, "ranks": R}.
const fs = require("fs");
const ranks = require("gpt-tokenizer/cjs/bpeRanks/r50k_base").default;

const enc = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
// GPT-2's byte alphabet, inverted: code point -> byte.
const printable = (b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
const toByte = new Map();
let extra = 0;
for (let b = 0; b < 256; b++) toByte.set(printable(b) ? b : 256 + extra++, b);
let checked = 0, mismatches = 0;
for (const [tok, id] of Object.entries(enc)) {
  if (tok === "<|endoftext|>") continue;
  const bytes = Buffer.from([...tok].map((c) => toByte.get(c.codePointAt(0))));
  const r = ranks[id];
  const refBytes = typeof r === "string" ? Buffer.from(r, "utf8") : Buffer.from(r);
  checked++;
  if (!refBytes.equals(bytes)) mismatches++;
}
console.log(JSON.stringify({ checked, mismatches, ranks: ranks.length }));
