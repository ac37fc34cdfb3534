// The sender thread's entry point: POSTs what the main thread asks, answers in batches.
import { parentPort, workerData } from 'node:worker_threads';
import { AddressGuard } from './addressGuard.ts';
import { Sender } from './sender.ts';
import type { PostMessage, ResultMessage, SenderThreadOptions } from './senderThread.ts';

const o = workerData as SenderThreadOptions;
const sender = new Sender(new AddressGuard(o.allowPrivateNetworks, o.dnsServers), o.requestTimeoutMs, o.connectionsPerOrigin);
const port = parentPort!;
let results: ResultMessage[] = [];
let inFlight = 0;
let closing = false;

const answer = (): void => {
  const batch = results;
  results = [];
  if (batch.length > 0) port.postMessage(batch);
};

port.postMessage('ready');

port.on('message', (m: PostMessage[] | 'close') => {
  if (m === 'close') {
    closing = true;
    if (inFlight === 0) void finish();
    return;
  }
  for (const [id, url, headers, body] of m) {
    inFlight++;
    void sender.post(url, headers, body).then((r) => {
      inFlight--;
      if (results.push([id, r]) === 1) setImmediate(answer);
      if (closing && inFlight === 0) setImmediate(finish);
    });
  }
});

let finished = false;
async function finish(): Promise<void> {
  if (finished) return;
  finished = true;
  answer();
  await sender.close();
  port.postMessage('closed');
}
