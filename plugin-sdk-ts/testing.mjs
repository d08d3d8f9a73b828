// Test a plugin inside the real Sluice host runtime from `npm test`, with nothing but the
// `sluice` binary (`SLUICE`, else the `config.sluice` of the project's package.json, else
// `sluice` on PATH): it runs `sluice plugin test`.
//
//   const report = runPlugin({ wasm: 'dist/plugin.wasm', config: 'kinds = ["Step"]',
//                              batches: [[STEP]], requests: ['GET /counts/Step'] });
//   assert.equal(report.response('GET /counts/Step').body.count, 1);

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Run `wasm` over `batches` of node events (JSON text or objects), after `upstream` plugins
 * ([{ name, wasm, config }]), then ask `requests` ('GET /path?query'). Returns the report:
 * { events, error, responses, status, response(request) }. */
export function runPlugin({ wasm, config = '', batches = [], requests = [], upstream = [] }) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-plugin-test-'));
  try {
    const line = (event) => (typeof event === 'string' ? JSON.stringify(JSON.parse(event)) : JSON.stringify(event));
    const events = join(dir, 'events.jsonl');
    writeFileSync(events, batches.map((batch) => batch.map(line).join('\n')).join('\n\n') + '\n');
    const args = ['plugin', 'test', wasm, '--events', events, '--config', config];
    for (const { name, wasm: upstreamWasm, config: upstreamConfig = '' } of upstream) {
      args.push('--upstream', `${name}=${upstreamWasm}`, '--upstream-config', `${name}=${upstreamConfig}`);
    }
    for (const request of requests) args.push('--request', request);
    let stdout;
    let status = 0;
    try {
      stdout = execFileSync(process.env.SLUICE ?? process.env.npm_package_config_sluice ?? 'sluice', args, {
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 28,
        // The host's warnings and what the plugin logs, unless SLUICE_LOG says otherwise.
        env: { SLUICE_LOG: 'warn,sluice::plugins::capabilities=debug', ...process.env },
      });
    } catch (failed) {
      // Exit status 2: the plugin failed, and the report says how.
      if (failed.status !== 2) throw failed;
      [stdout, status] = [failed.stdout, 2];
    }
    const report = JSON.parse(stdout.toString());
    report.status = status;
    report.response = (request) => {
      const reply = report.responses.find((r) => r.request === request);
      if (reply === undefined) throw new Error(`${request} was not among the requests`);
      return reply;
    };
    return report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
