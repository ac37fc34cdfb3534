// Tenants and their credentials.
import { uuidv7 } from '../../domain/ids.ts';
import type { Tenant, TenantCredentialHashes } from '../../domain/model.ts';
import { tenantOf, type Row } from '../rows.ts';
import type { StoreContext } from './context.ts';

export async function createTenant(ctx: StoreContext, name: string, clientId: string, h: TenantCredentialHashes): Promise<Tenant> {
  const id = uuidv7();
  const now = Date.now();
  return ctx.db.tx(async (t) => {
    const numberSql = t.engine === 'sqlite' ? '(SELECT COALESCE(MAX(number), 0) + 1 FROM tenants)' : 'DEFAULT';
    const rows = await t.all(
      `INSERT INTO tenants (id, number, name, client_id, client_secret_hash, subscription_key_hash, api_token_hash, created_at)
       VALUES ($1, ${numberSql}, $2, $3, $4, $5, $6, $7) RETURNING *`,
      [id, name, clientId, h.clientSecretHash, h.subscriptionKeyHash, h.apiTokenHash, now],
    );
    return tenantOf(rows[0]!);
  });
}

export async function listTenants(ctx: StoreContext): Promise<Tenant[]> {
  return (await ctx.db.all('SELECT * FROM tenants ORDER BY created_at, id')).map(tenantOf);
}

export async function getTenant(ctx: StoreContext, id: string): Promise<Tenant | null> {
  const rows = await ctx.db.all('SELECT * FROM tenants WHERE id = $1', [id]);
  return rows[0] ? tenantOf(rows[0]) : null;
}

export async function deleteTenant(ctx: StoreContext, id: string): Promise<boolean> {
  return (await ctx.db.tx((t) => t.run('DELETE FROM tenants WHERE id = $1', [id]))) > 0;
}

export async function tenantByApiTokenHash(ctx: StoreContext, hash: string): Promise<Tenant | null> {
  const rows = await ctx.db.all('SELECT * FROM tenants WHERE api_token_hash = $1', [hash]);
  return rows[0] ? tenantOf(rows[0]) : null;
}

export async function tenantBySubscriptionKeyHash(ctx: StoreContext, hash: string): Promise<Tenant | null> {
  const rows = await ctx.db.all('SELECT * FROM tenants WHERE subscription_key_hash = $1', [hash]);
  return rows[0] ? tenantOf(rows[0]) : null;
}

export async function tenantCredentialsByClientId(ctx: StoreContext, clientId: string): Promise<(Tenant & TenantCredentialHashes) | null> {
  const rows = await ctx.db.all<Row>('SELECT * FROM tenants WHERE client_id = $1', [clientId]);
  const r = rows[0];
  if (!r) return null;
  return { ...tenantOf(r), clientSecretHash: r.client_secret_hash, subscriptionKeyHash: r.subscription_key_hash, apiTokenHash: r.api_token_hash };
}
