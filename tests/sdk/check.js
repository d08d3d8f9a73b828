// Reads an SSE stream of a Casper node (or Sluice) and checks every accepted transaction and
// deploy the way the official SDKs' clients would receive them: casper-js-sdk 5 parses
// `TransactionAccepted` events (rebuilding each transaction's bytes, checking its hash and
// approvals) and deploys (body hash, hash, approvals); casper-js-sdk 2 checks deploys with
// `DeployUtil.deployFromJson`. Prints a JSON summary; exits 1 when any fails or none arrived.
//
// Usage: node check.js URL COUNT   (the packages come from `npm ci` of this directory's lock)

const sdk5 = require('casper-js-sdk-5');
const sdk2 = require('casper-js-sdk-2');

const [url, wanted] = [process.argv[2], Number(process.argv[3])];
const summary = { events: 0, transactions: 0, deploys: 0, failures: [] };

function fail(kind, error, data) {
  if (summary.failures.length < 5) summary.failures.push({ kind, error: String(error).slice(0, 300), data: data.slice(0, 300) });
  else summary.failures.push(kind);
}

function checkDeploy(deploy, data) {
  summary.deploys += 1;
  try { sdk5.Deploy.fromJSON(deploy); } catch (e) { fail('deploy (js-sdk 5)', e.message, data); }
  const checked = sdk2.DeployUtil.deployFromJson({ deploy });
  if (!checked.ok) fail('deploy (js-sdk 2)', checked.val.message, data);
}

function check(data) {
  const event = JSON.parse(data);
  summary.events += 1;
  if (event.TransactionAccepted) {
    summary.transactions += 1;
    const parsed = sdk5.TransactionAcceptedEvent.fromJSON(data);
    if (parsed instanceof Error) fail('TransactionAccepted (js-sdk 5)', parsed.message, data);
    if (event.TransactionAccepted.Version1) {
      try { sdk5.TransactionV1.fromJSON(event.TransactionAccepted.Version1); } catch (e) { fail('TransactionV1 (js-sdk 5)', e.message, data); }
    }
    if (event.TransactionAccepted.Deploy) checkDeploy(event.TransactionAccepted.Deploy, data);
  }
  if (event.DeployAccepted) checkDeploy(event.DeployAccepted, data);
}

async function main() {
  const response = await fetch(url);
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of response.body) {
    text += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const frame = text.slice(0, end);
      text = text.slice(end + 2);
      const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      if (!data || !frame.split('\n').some((l) => l.startsWith('id:'))) continue;
      check(data);
      if (summary.events >= wanted) {
        console.log(JSON.stringify(summary));
        process.exit(summary.failures.length === 0 && summary.transactions + summary.deploys > 0 ? 0 : 1);
      }
    }
  }
  console.log(JSON.stringify(summary));
  process.exit(1);
}

main().catch((e) => { console.error(e); process.exit(2); });
