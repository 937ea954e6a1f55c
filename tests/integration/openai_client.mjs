// Drives the front's HTTP API with the real `openai` npm package, unmodified, as an application
// would, and prints one JSON object with what it saw (checked by http_api_test.cc).
//   node openai_client.mjs BASE_URL API_KEY IMAGE_PATH VIDEO_PATH
// NODE_PATH must reach the installed package (tests/tools/setup_test_tools.sh).
import fs from 'node:fs';
import OpenAI from 'openai';

const [baseURL, apiKey, imagePath, videoPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120000 });
const model = (await client.models.list()).data[0].id;

const dataUri = (path, mime) => `data:${mime};base64,${fs.readFileSync(path).toString('base64')}`;
const imageMessages = [{
  role: 'user',
  content: [
    { type: 'image_url', image_url: { url: dataUri(imagePath, 'image/png') } },
    { type: 'text', text: 'Can you describe this image?' },
  ],
}];
const greedy = { model, messages: imageMessages, max_tokens: 12, temperature: 0, seed: 1,
                 return_token_ids: true };

const out = { model };
// 1. An image question, not streamed.
const plain = await client.chat.completions.create(greedy);
out.plain = { id: plain.id, object: plain.object, created: plain.created, model: plain.model,
              text: plain.choices[0].message.content, role: plain.choices[0].message.role,
              finish_reason: plain.choices[0].finish_reason, token_ids: plain.choices[0].token_ids,
              usage: plain.usage };

// 2. The same, streamed, with the usage chunk.
const stream = await client.chat.completions.create(
    { ...greedy, stream: true, stream_options: { include_usage: true } });
let text = '', chunks = 0, finish = null, usage = null, ids = [], role = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta?.role) role = c.delta.role;
    if (c.delta?.content) text += c.delta.content;
    if (c.token_ids) ids = ids.concat(c.token_ids);
    if (c.finish_reason) finish = c.finish_reason;
  }
}
out.streamed = { text, chunks, finish_reason: finish, usage, token_ids: ids, role };

// 3. A video question.
const video = await client.chat.completions.create({
  model, max_tokens: 6, temperature: 0,
  messages: [{ role: 'user', content: [
    { type: 'video_url', video_url: { url: dataUri(videoPath, 'video/x-msvideo') } },
    { type: 'text', text: 'What happens in this video?' }] }],
});
out.video = { text: video.choices[0].message.content, usage: video.usage,
              finish_reason: video.choices[0].finish_reason };

// 4. A text question with stop and seed: sampled twice with one seed, the same answer.
const sampled = { model, max_tokens: 24, temperature: 0.9, top_p: 0.95, seed: 1234,
                  stop: ['\n\n'], messages: [{ role: 'user', content: 'Tell me a story.' }] };
const a = await client.chat.completions.create(sampled);
const b = await client.chat.completions.create(sampled);
out.seeded = { a: a.choices[0].message.content, b: b.choices[0].message.content,
               finish_reason: a.choices[0].finish_reason, usage: a.usage };

// 5. n = 2 choices.
const two = await client.chat.completions.create({ ...sampled, n: 2 });
out.n2 = { choices: two.choices.length, indexes: two.choices.map((c) => c.index) };

// 6. Errors surface as the SDK's typed errors.
const errorOf = async (fn) => {
  try { await fn(); return null; } catch (e) {
    return { name: e.constructor.name, status: e.status, type: e.error?.type ?? e.type,
             param: e.param ?? e.error?.param ?? null, message: e.message };
  }
};
out.errors = {
  wrong_key: await errorOf(() => new OpenAI({ baseURL, apiKey: 'sk-not-a-valid-key-000000', maxRetries: 0 })
      .chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] })),
  unknown_model: await errorOf(() => client.chat.completions.create(
      { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })),
  bad_top_p: await errorOf(() => client.chat.completions.create(
      { model, top_p: 7, messages: [{ role: 'user', content: 'hi' }] })),
  tools: await errorOf(() => client.chat.completions.create(
      { model, tools: [{ type: 'function', function: { name: 'f', parameters: {} } }],
        messages: [{ role: 'user', content: 'hi' }] })),
};
console.log(JSON.stringify(out));
