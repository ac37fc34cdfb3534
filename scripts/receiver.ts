// A webhook receiver for trying Herald out: prints each delivery and whether its
// Standard Webhooks signature verifies. Usage:
//   npm run receiver -- --secret whsec_... [--port 9000]
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Webhook } from 'standardwebhooks';

const { values } = parseArgs({ options: { secret: { type: 'string' }, port: { type: 'string', default: '9000' } } });
if (!values.secret) {
  console.error('usage: npm run receiver -- --secret whsec_... [--port 9000]');
  process.exit(2);
}
const wh = new Webhook(values.secret);
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    try {
      const payload = wh.verify(body, {
        'webhook-id': String(req.headers['webhook-id']),
        'webhook-timestamp': String(req.headers['webhook-timestamp']),
        'webhook-signature': String(req.headers['webhook-signature']),
      }) as { type: string; id: string };
      console.log(`verified  ${payload.type}  id=${payload.id}\n  ${body}`);
      res.writeHead(204).end();
    } catch (err) {
      console.log(`REJECTED  ${(err as Error).message}\n  ${body}`);
      res.writeHead(401).end();
    }
  });
});
server.listen(Number(values.port), '127.0.0.1', () => console.log(`receiver listening on http://127.0.0.1:${values.port}/`));
