'use strict';
// The READMEs' Node examples, run as a reader would run them: each block marked
// `<!-- readme-example: NAME -->` in the top-level README and in this package's README, with only
// the address and API key swapped for a live test gateway's, as a CommonJS script inside this
// package (so `require('@notify-gateway/client')` resolves by the package's self-reference) and in a
// directory of its own (they write report.pdf). Every js block of this package's README must be
// such an example. Also: the package imports by name from an ES module.

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { promisify } = require('node:util');
const { after, before, test } = require('node:test');

const { startGateway } = require('./support/gateway');

const PACKAGE_DIR = path.resolve(__dirname, '..');
const README = path.resolve(PACKAGE_DIR, '..', '..', 'README.md');
const CLIENT_README = path.join(PACKAGE_DIR, 'README.md');
const README_ADDRESS = '127.0.0.1:50051';
const README_API_KEY = 'demo-key-not-secret';
const run = promisify(execFile);

/** The code of the README block marked `<!-- readme-example: NAME -->` (a ```js fence). */
function readmeExample(name, readme = README) {
  const text = fs.readFileSync(readme, 'utf8');
  const found = new RegExp(`<!-- readme-example: ${name} -->\\n\`\`\`js\\n([\\s\\S]*?)\`\`\``).exec(text);
  assert.ok(found, `${readme} has no js block marked readme-example: ${name}`);
  return found[1];
}

/** Runs an example against the test gateway; resolves with its output lines. */
async function runExample(name, code) {
  assert.ok(code.includes(README_ADDRESS) && code.includes(README_API_KEY), `${name} lost its address or key`);
  const script = path.join(scriptDir, `${name}.js`);
  fs.writeFileSync(script, code.replaceAll(README_ADDRESS, gateway.address).replaceAll(README_API_KEY, gateway.apiKey));
  try {
    const result = await run(process.execPath, [script], { cwd: workDir, timeout: 60_000 });
    return result.stdout.trim().split('\n');
  } catch (error) {
    assert.fail(`the README example ${name} failed (exit ${error.code}):\n${error.stderr}`);
  }
}

let gateway;
let scriptDir; // inside the package, for the self-reference
let workDir; // the example's working directory, outside the repository

before(async () => {
  gateway = await startGateway();
  scriptDir = fs.mkdtempSync(path.join(PACKAGE_DIR, '.readme-example-'));
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-readme-'));
});

after(async () => {
  await gateway?.stop();
  for (const dir of [scriptDir, workDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('the README Node example sends, uploads and reports the violations', async () => {
  const code = readmeExample('node-client');
  assert.ok(code.includes(README_ADDRESS) && code.includes(README_API_KEY), 'the example lost its address or key');
  const script = path.join(scriptDir, 'node-client.js');
  fs.writeFileSync(script, code.replaceAll(README_ADDRESS, gateway.address).replaceAll(README_API_KEY, gateway.apiKey));

  let result;
  try {
    result = await run(process.execPath, [script], { cwd: workDir, timeout: 60_000 });
  } catch (error) {
    assert.fail(`the README example failed (exit ${error.code}):\n${error.stderr}`);
  }
  const lines = result.stdout.trim().split('\n');
  assert.equal(lines.length, 3, result.stdout);
  const [messageId, state] = lines[0].split(' ');
  assert.equal(messageId.length, 26);
  assert.equal(state, 'MESSAGE_STATE_SENT');
  const report = fs.readFileSync(path.join(workDir, 'report.pdf'));
  assert.ok(report.subarray(0, 5).equals(Buffer.from('%PDF-')));
  assert.match(lines[1], new RegExp(`^uploaded ${report.length} bytes as \\S+$`));
  assert.equal(lines[2], "{ 'message.text.content': 'is required' }");
});

test('an ES module imports every export by name', async () => {
  const names = Object.keys(require('..'));
  assert.ok(names.includes('NotifyClient') && names.includes('InvalidArgumentError'));
  const missing = Object.keys(require('../src/errors')).filter((name) => !names.includes(name));
  assert.deepEqual(missing, [], 'src/index.js must re-export every error by name');
  const source = [
    `import { ${names.join(', ')} } from '@notify-gateway/client';`,
    `const found = { ${names.join(', ')} };`,
    'console.log(Object.entries(found).filter(([, value]) => value === undefined).map(([name]) => name).join(","));',
    "console.log(new InvalidArgumentError('x') instanceof NotifyError);",
  ].join('\n');
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', source], { cwd: PACKAGE_DIR });
  assert.equal(stdout, '\ntrue\n');
});

test("every js block of the client's README is an example the tests run", () => {
  const text = fs.readFileSync(CLIENT_README, 'utf8');
  const blocks = [...text.matchAll(/(<!-- readme-example: ([\w-]+) -->\n)?```js\n/g)];
  assert.ok(blocks.length >= 2);
  assert.deepEqual(blocks.filter((block) => !block[1]).length, 0, 'a js block without <!-- readme-example: NAME -->');
  assert.deepEqual(blocks.map((block) => block[2]), ['node-send', 'node-records']);
});

test("the client README's first example sends, uploads, recalls and reports the violations", async () => {
  const lines = await runExample('node-send', readmeExample('node-send', CLIENT_README));
  assert.deepEqual(lines, [
    'robot MESSAGE_STATE_SENT',
    'app MESSAGE_STATE_SENT recallable true',
    `uploaded ${fs.statSync(path.join(workDir, 'report.pdf')).size} bytes`,
    'recall MESSAGE_STATE_RECALLED',
    'refused recipients',
  ]);
});

test("the client README's records example lists a message and watches it to DELIVERED", async () => {
  const lines = await runExample('node-records', readmeExample('node-records', CLIENT_README));
  assert.deepEqual(lines, [
    'record MESSAGE_STATE_SENT 1 attempt',
    'listed true',
    'iterated true',
    'watch MESSAGE_STATE_SENT',
    'watch MESSAGE_STATE_DELIVERED',
  ]);
});
