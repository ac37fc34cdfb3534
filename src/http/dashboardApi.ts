import type { FastifyInstance } from 'fastify';
import { AttemptStream } from './attemptStream.ts';
import { operatorRoutes } from './operator.ts';
import { portalRoutes } from './portal.ts';
import { PortalLinks } from './portalLinks.ts';
import type { Services } from './services.ts';

/**
 * The server side of the dashboard: the operator's routes under /admin/v1 and the
 * subscriber portal under /portal/v1, sharing one live stream of attempts per process.
 */
export function dashboardApi(s: Services) {
  return async function (app: FastifyInstance): Promise<void> {
    const stream = new AttemptStream(s.dashboard, app.log, { maxConnections: s.config.streamMaxConnections, keepAliveMs: s.config.streamKeepAliveMs });
    const links = new PortalLinks(s.config.secretKey);
    // Open streams never end by themselves: closing the server would wait for them forever.
    app.addHook('preClose', async () => stream.close());
    await app.register(operatorRoutes(s, { stream, links }), { prefix: '/admin/v1' });
    await app.register(portalRoutes(s, { stream, links }), { prefix: '/portal/v1' });
  };
}
