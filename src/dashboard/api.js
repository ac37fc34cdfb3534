// Herald's HTTP API, as the page calls it: the token goes in the Authorization header
// only, never in a URL.

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export class Api {
  /** `onUnauthorized` runs when Herald no longer takes the token (an expired portal link). */
  constructor(token, onUnauthorized = () => {}) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  get(path, query) {
    return this.request('GET', path, query);
  }

  post(path, body) {
    return this.request('POST', path, undefined, body);
  }

  async request(method, path, query, body) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
    }
    const headers = { authorization: `Bearer ${this.token}`, accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch {
      throw new ApiError(0, 'network', 'Herald did not answer (is it running?)');
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (res.ok) return data;
    const e = data && typeof data === 'object' && data.error ? data.error : {};
    const err = new ApiError(res.status, e.code ?? 'http_error', typeof e.message === 'string' ? e.message : `Herald answered ${res.status}`, e.field);
    if (res.status === 401) this.onUnauthorized(err);
    throw err;
  }

  /** Every page of a listing, up to `max` items. */
  async all(path, query = {}, max = 2000) {
    const out = [];
    let cursor;
    do {
      const page = await this.get(path, { ...query, limit: 100, cursor });
      out.push(...(page?.data ?? []));
      cursor = page?.next_cursor ?? null;
    } while (cursor && out.length < max);
    return out;
  }
}

/**
 * Which view a token opens: the operator's (admin token) or one tenant's portal. A token
 * from a portal link is a tenant's by its nature, and is asked about as one only.
 */
export async function whoIs(token, portalLink = false) {
  const probe = async (path) => {
    const res = await fetch(path, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, cache: 'no-store', credentials: 'omit' });
    if (res.status === 401 || res.status === 403 || res.status === 404) return null;
    if (!res.ok) throw new ApiError(res.status, 'http_error', `Herald answered ${res.status} to ${path}`);
    return res.json();
  };
  const tenants = portalLink ? null : await probe('/admin/v1/tenants');
  if (tenants) return { role: 'operator', tenants: tenants.data ?? [] };
  const me = await probe('/portal/v1/me');
  if (me) return { role: 'tenant', me };
  return null;
}
