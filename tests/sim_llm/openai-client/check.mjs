// The official OpenAI Node client against a running `qpo sim-llm`: completions with echo and
// logprobs, chat with logprobs, determinism and error shapes. Usage: node check.mjs BASE_URL
// (e.g. http://127.0.0.1:PORT). Exits 0 when every check passes, 1 otherwise.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const base = process.argv[2];
if (!base) {
  console.error('usage: node check.mjs BASE_URL');
  process.exit(2);
}
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-sim', maxRetries: 0 });
const model = 'qpo-sim';

const context = 'Which emotion is best represented by the following tweet?\n\n' +
  'Tweet: café ☕ with friends, such a lovely morning\nEmotion:';
const scored = `${context} Joy`;
const codepoints = (s) => [...s].length;

async function checkModels() {
  const page = await client.models.list();
  assert.ok(page.data.some((m) => m.id === model), 'models.list names the served model');
}

async function checkCompletionEcho() {
  const request = { model, prompt: scored, echo: true, logprobs: 1, max_tokens: 1, temperature: 0 };
  const r = await client.completions.create(request);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.ok(c.text.startsWith(scored), 'echo returns the prompt first');
  const lp = c.logprobs;
  assert.equal(lp.tokens.length, lp.token_logprobs.length);
  assert.equal(lp.tokens.length, lp.text_offset.length);
  assert.equal(lp.tokens.length, lp.top_logprobs.length);
  assert.equal(lp.tokens.join(''), c.text, 'tokens concatenate to the text');
  assert.equal(lp.token_logprobs[0], null, 'the first echoed token has no logprob');
  // text_offset counts code points, as OpenAI's and vLLM's do.
  let at = 0;
  lp.tokens.forEach((t, i) => {
    assert.equal(lp.text_offset[i], at, `text_offset of token ${i}`);
    at += codepoints(t);
  });
  const cont = lp.tokens.filter((_, i) => lp.text_offset[i] >= codepoints(context) &&
    lp.text_offset[i] < codepoints(scored));
  assert.deepEqual(cont, [' Joy'], 'the verbalizer is one token after the context');
  lp.token_logprobs.slice(1).forEach((v) => assert.ok(v < 0 && Number.isFinite(v)));
  assert.equal(r.usage.completion_tokens, 1);
  assert.equal(r.usage.prompt_tokens + 1, lp.tokens.length);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  const again = await client.completions.create(request);
  assert.deepEqual(again.choices, r.choices, 'the same request gets the same answer');
  assert.deepEqual(again.usage, r.usage);
}

async function checkCompletionGenerates() {
  const r = await client.completions.create({ model, prompt: context, max_tokens: 5, temperature: 0 });
  const text = r.choices[0].text;
  assert.ok(/^ (Anger|Joy|Optimism|Sadness)/.test(text), `generates a label, got ${JSON.stringify(text)}`);
  assert.equal(r.choices[0].logprobs, null);
}

async function checkChat() {
  const request = {
    model,
    messages: [
      { role: 'system', content: "The final answer should be expressed as a single number, prefixed by 'Final Answer: '." },
      { role: 'user', content: "Tom has 3 apples and buys 4 more. How many apples does he have?\nLet's think step by step: " },
    ],
    logprobs: true,
    top_logprobs: 2,
    temperature: 0,
  };
  const r = await client.chat.completions.create(request);
  assert.equal(r.object, 'chat.completion');
  const c = r.choices[0];
  assert.equal(c.message.role, 'assistant');
  assert.match(c.message.content, /Final Answer: -?\d+(\.\d+)?$/);
  const tokens = c.logprobs.content;
  assert.equal(tokens.map((t) => t.token).join(''), c.message.content);
  for (const t of tokens) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 2);
    assert.equal(t.top_logprobs[0].token, t.token, 'greedy: the chosen token is the top one');
    assert.ok(t.top_logprobs[1].logprob <= t.logprob);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
  }
  assert.equal(r.usage.completion_tokens, tokens.length);
  const again = await client.chat.completions.create(request);
  assert.deepEqual(again.choices, r.choices, 'the same chat request gets the same answer');
  const plain = await client.chat.completions.create({ ...request, logprobs: false, top_logprobs: undefined });
  assert.equal(plain.choices[0].message.content, c.message.content);
  assert.equal(plain.choices[0].logprobs, null);
}

async function checkErrors() {
  await assert.rejects(
    client.completions.create({ model: 'no-such-model', prompt: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found',
  );
  await assert.rejects(
    client.chat.completions.create({ model, messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages',
  );
}

const checks = [checkModels, checkCompletionEcho, checkCompletionGenerates, checkChat, checkErrors];
let failed = 0;
for (const check of checks) {
  try {
    await check();
    console.log(`ok ${check.name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${check.name}: ${e.stack || e}`);
  }
}
process.exit(failed ? 1 : 0);
