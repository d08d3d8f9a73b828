// `npm test`: the indexer, built with `npm run build`, runs inside the real Sluice host runtime
// (`sluice plugin test`) after the stock CES decoder, fed the events the Rust example's test
// feeds (`../cep18-indexer/tests/events.jsonl`), and gives the same answers.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { runPlugin } from '../../../plugin-sdk-ts/testing.mjs';

const rust = new URL('../../cep18-indexer/tests/', import.meta.url);
const account = (n) => `account-hash-${n.toString(16).padStart(2, '0').repeat(32)}`;

test('a transfer flow yields balances, supply, allowances and history', () => {
  const [a, b, c, spender] = [account(1), account(2), account(3), account(4)];
  const report = runPlugin({
    wasm: 'dist/cep18_indexer.wasm',
    config: `contract_hash = "${'aa'.repeat(32)}"`,
    upstream: [{ name: 'ces', wasm: '../../target/wasm32-wasip2/release/ces_decoder.wasm', config: readFileSync(new URL('decoder.toml', rust), 'utf8') }],
    batches: [readFileSync(new URL('events.jsonl', rust), 'utf8').trim().split('\n')],
    requests: [a, b, c, spender].map((h) => `GET /balances/${h}`).concat([
      'GET /supply', `GET /allowances/${b}/${spender}`, `GET /transfers?account=${b}`, 'GET /balances/not-an-account',
    ]),
  });
  assert.equal(report.error, null);
  assert.deepEqual([a, b, c, spender].map((h) => report.response(`GET /balances/${h}`).body.balance), ['500', '150', '150', '0']);
  assert.equal(report.response('GET /supply').body.total_supply, '800');
  assert.equal(report.response(`GET /allowances/${b}/${spender}`).body.allowance, '500');
  const kinds = report.response(`GET /transfers?account=${b}`).body.data.map((t) => t.kind);
  assert.deepEqual(kinds, ['TransferFrom', 'Transfer', 'Transfer']);
  assert.equal(report.response('GET /balances/not-an-account').status, 400);
});
