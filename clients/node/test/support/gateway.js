'use strict';
// Starts a live vendor sandbox and gateway for the Node tests, with the project's Python launcher
// (tests/clients/serve_for_node.py), and talks to the sandbox's inspection API.
//
// The launcher prints one JSON line ({address, sandbox, api_key, other_api_key}) once both listen, and serves
// until its stdin closes or it gets SIGTERM: if this process dies, the servers go with it.
// The Python interpreter is $NOTIFY_PYTHON, else the project's venv (../../.venv/bin/python).

const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const REPO = path.resolve(__dirname, '..', '..', '..', '..');
const PYTHON = process.env.NOTIFY_PYTHON || path.join(REPO, '.venv', 'bin', 'python');
const LAUNCHER = path.join(REPO, 'tests', 'clients', 'serve_for_node.py');
const START_TIMEOUT_MS = 30_000;

/** Starts sandbox + gateway; `tls: true` serves TLS with a self-signed cert (its path: `ca`). */
async function startGateway({ tls = false } = {}) {
  const child = spawn(PYTHON, [LAUNCHER, ...(tls ? ['--tls'] : [])], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (data) => {
    stderr += data;
  });
  const info = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`the gateway did not start in ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    const lines = readline.createInterface({ input: child.stdout });
    function fail(error) {
      clearTimeout(timer);
      lines.close();
      child.kill('SIGTERM');
      reject(new Error(`${error.message}\n${PYTHON} ${LAUNCHER}\nstderr:\n${stderr}`));
    }
    lines.on('line', (line) => {
      let parsed;
      try {
        parsed = JSON.parse(line);
      } catch {
        return; // not ours
      }
      if (parsed && parsed.address) {
        clearTimeout(timer);
        lines.close();
        resolve(parsed);
      }
    });
    child.on('error', fail);
    child.on('exit', (code, signal) => fail(new Error(`the launcher exited (${code ?? signal}) before it was ready`)));
  });
  child.removeAllListeners('exit');
  return {
    address: info.address,
    sandbox: info.sandbox,
    apiKey: info.api_key,
    otherApiKey: info.other_api_key, // a second tenant's key: it must not see the first tenant's messages
    ca: info.ca ?? null,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      child.stdin.end();
      await exited;
    },
  };
}

/** What the sandbox's vendor endpoints received (GET /_sandbox/messages). */
async function received(sandbox, { channel, robot, delivered } = {}) {
  const query = new URLSearchParams();
  if (channel) query.set('channel', channel);
  if (robot) query.set('robot', robot);
  if (delivered) query.set('delivered', 'true');
  const answer = await fetch(`${sandbox}/_sandbox/messages?${query}`);
  if (!answer.ok) throw new Error(`sandbox answered HTTP ${answer.status}`);
  return answer.json();
}

/** Makes the next requests to a robot or app fail (POST /_sandbox/faults). */
async function injectFault(sandbox, fault) {
  const answer = await fetch(`${sandbox}/_sandbox/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(fault),
  });
  if (answer.status !== 201) throw new Error(`sandbox refused the fault: HTTP ${answer.status} ${await answer.text()}`);
}

module.exports = { startGateway, received, injectFault };
