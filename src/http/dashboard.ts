import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { nativeError } from './errors.ts';

/**
 * The dashboard's files, by the name they are served under. A fixed list rather than a
 * directory walk: nothing else under src/ can be reached through /dashboard/, whatever the
 * path says.
 */
const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'api.js': 'text/javascript; charset=utf-8',
  'dom.js': 'text/javascript; charset=utf-8',
  'format.js': 'text/javascript; charset=utf-8',
  'stream.js': 'text/javascript; charset=utf-8',
  'deliveries.js': 'text/javascript; charset=utf-8',
  'subscriptions.js': 'text/javascript; charset=utf-8',
  'operator.js': 'text/javascript; charset=utf-8',
  'portal.js': 'text/javascript; charset=utf-8',
  'live.js': 'text/javascript; charset=utf-8',
  'icon.svg': 'image/svg+xml',
};

/**
 * The page loads only its own scripts and styles and talks only to this origin. With no
 * inline script allowed, text that slips into the page as markup still cannot run, and
 * `form-action 'none'` keeps a form from ever putting a token into a URL.
 */
const HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  // The files change only when Herald is upgraded: the browser may keep them but asks first.
  'cache-control': 'no-cache',
};

interface File { body: Buffer; type: string; etag: string }

function load(): Map<string, File> {
  const dir = new URL('../dashboard/', import.meta.url);
  const files = new Map<string, File>();
  for (const [name, type] of Object.entries(FILES)) {
    const body = readFileSync(new URL(name, dir));
    files.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return files;
}

/** Serves the dashboard at /dashboard/; the files are read once, when the app is built. */
export function dashboardRoutes() {
  const files = load();
  const send = (ifNoneMatch: string | undefined, reply: FastifyReply, f: File) => {
    reply.headers(HEADERS).header('etag', f.etag);
    if (ifNoneMatch === f.etag) return reply.status(304).send();
    return reply.type(f.type).send(f.body);
  };
  const hide = { schema: { hide: true } };

  return async function (app: FastifyInstance): Promise<void> {
    app.get('/dashboard', hide, async (req, reply) => {
      // A query string is kept; a fragment (a portal link's token) never reaches the server.
      const q = req.url.indexOf('?');
      return reply.headers(HEADERS).redirect(q < 0 ? '/dashboard/' : `/dashboard/${req.url.slice(q)}`, 301);
    });
    app.get('/dashboard/', hide, async (req, reply) => send(req.headers['if-none-match'], reply, files.get('index.html')!));
    app.get<{ Params: { file: string } }>('/dashboard/:file', hide, async (req, reply) => {
      const f = Object.hasOwn(FILES, req.params.file) ? files.get(req.params.file) : undefined;
      if (!f) return reply.status(404).headers(HEADERS).send(nativeError({ status: 404, code: 'not_found', message: 'no such dashboard file' }, req));
      return send(req.headers['if-none-match'], reply, f);
    });
  };
}
