// Example dApp indexer in TypeScript: the CEP-18 indexer of `examples/cep18-indexer` (same
// config, storage, routes and answers), on the TypeScript plugin SDK (`plugin-sdk-ts`).
//
// Routes (under `/plugins/cep18`): `GET /balances/{account}`, `GET /balances` (holders, paged),
// `GET /transfers?account=&limit=&cursor=` (newest first), `GET /supply`,
// `GET /allowances/{owner}/{spender}`.

import type { ContractEvent, Event, Request } from '../../../plugin-sdk-ts/sluice.js';
import { Collection, ContractConfig, Router, fail, holderKey, manifest, plugin } from '../../../plugin-sdk-ts/sluice.js';
import { newestFirst, queryParam, saturatingSub, u256 } from '../../../plugin-sdk-ts/sluice.js';

/** A holder's balance (`/balances` lists these); amounts are decimal strings. */
interface Balance {
  account: string;
  balance: string;
}

const BALANCES = new Collection<Balance>('balances');
/** Key `{owner}.{spender}`. */
const ALLOWANCES = new Collection<string>('allowances');
/** Key `total`. */
const SUPPLY = new Collection<string>('supply');
/** Every movement (mint, burn, transfer), newest first: key `{newest-first sequence}.{index}`. */
const TRANSFERS = new Collection<object>('transfers');
/** The same, per account: key `{account}.{newest-first sequence}.{index}`. */
const BY_ACCOUNT = new Collection<object>('by_account');
const MAX = (1n << 256n) - 1n;

class Cep18 {
  constructor(private readonly token: ContractConfig) {}

  manifest() {
    return manifest().indexing(['ContractEvent']).withRoutes().serving('balances').serving('by_account');
  }

  index(events: Event[]) {
    for (const [event, tokenEvent] of this.token.eventsIn(events)) apply(event.sequence, tokenEvent);
  }

  handle(request: Request) {
    const holder = (text: string): string => {
      try {
        return holderKey(text);
      } catch (error) {
        return fail(400, 'invalid_account', String((error as { payload?: string }).payload ?? error));
      }
    };
    return new Router(request)
      .get('/balances/{account}', (p) => {
        const account = holder(p.account);
        return { account, balance: BALANCES.get(account)?.balance ?? '0' };
      })
      .get('/balances', () => BALANCES.page(request, ''))
      .get('/transfers', () => {
        const account = queryParam(request, 'account');
        return account === undefined ? TRANSFERS.page(request, '') : BY_ACCOUNT.page(request, `${holder(account)}.`);
      })
      .get('/supply', () => ({ total_supply: SUPPLY.get('total') ?? '0' }))
      .get('/allowances/{owner}/{spender}', (p) => {
        const [owner, spender] = [holder(p.owner), holder(p.spender)];
        return { owner, spender, allowance: ALLOWANCES.get(`${owner}.${spender}`) ?? '0' };
      })
      .finish();
  }
}

/** Apply one token event to balances, supply, allowances and history. */
function apply(sequence: bigint, event: ContractEvent) {
  const field = (name: string): string => {
    const value = event.data[name];
    if (typeof value !== 'string') throw new Error(`${event.name} has no text field "${name}"`);
    return value;
  };
  let from: string | null = null;
  let to: string | null = null;
  switch (event.name) {
    case 'Mint': to = field('recipient'); break;
    case 'Burn': from = field('owner'); break;
    case 'Transfer': [from, to] = [field('sender'), field('recipient')]; break;
    case 'TransferFrom': [from, to] = [field('owner'), field('recipient')]; break;
    case 'SetAllowance': case 'IncreaseAllowance': case 'DecreaseAllowance':
      ALLOWANCES.set(`${field('owner')}.${field('spender')}`, u256(event.data.allowance).toString());
      return;
    default: return;
  }
  const amount = u256(event.data.amount);
  const change = (account: string, by: (balance: bigint) => bigint) =>
    BALANCES.set(account, { account, balance: by(u256(BALANCES.get(account)?.balance ?? '0')).toString() });
  const add = (a: bigint) => (a + amount > MAX ? MAX : a + amount);
  // Saturating: an indexer that began after the mint must not fail on the first transfer.
  if (from !== null) change(from, (balance) => saturatingSub(balance, amount));
  else SUPPLY.set('total', add(u256(SUPPLY.get('total') ?? '0')).toString());
  if (to !== null) change(to, add);
  else SUPPLY.set('total', saturatingSub(u256(SUPPLY.get('total') ?? '0'), amount).toString());
  const key = `${newestFirst(sequence)}.${String(event.index).padStart(4, '0')}`;
  const movement = {
    kind: event.name, from, to, amount: amount.toString(), transaction_hash: event.transaction ?? null,
    block_height: event.blockHeight ?? null, timestamp: event.timestamp ?? null, sequence: Number(sequence),
  };
  TRANSFERS.set(key, movement);
  for (const account of new Set([from, to])) if (account !== null) BY_ACCOUNT.set(`${account}.${key}`, movement);
}

export const { init, decode, onEvent, index, handle } = plugin(
  (config: { package_hash?: string; contract_hash?: string }) => new Cep18(new ContractConfig(config)),
);
