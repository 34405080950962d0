// Reference GPT-2 token ids for tests/tokenizer: reads one JSON string a line on stdin and
// writes its ids (space separated) a line on stdout, with gpt-tokenizer's r50k_base (the
// GPT-2 encoding). "<|endoftext|>" in the text is ordinary text, as in qpo.
const fs = require("fs");
const { encode } = require("gpt-tokenizer/cjs/encoding/r50k_base");

const asText = { allowedSpecial: new Set(), disallowedSpecial: new Set() };
const lines = fs.readFileSync(0, "utf8").split("\n");
if (lines[lines.length - 1] === "") lines.pop();
const out = lines.map((l) => encode(JSON.parse(l), asText).join(" "));
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
