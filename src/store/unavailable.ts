// Which driver errors mean "the store is unavailable for now" rather than a fault in Herald.
// The engines' Db seams pass every error through here once, so that the HTTP layer and the
// dispatcher see one StoreUnavailableError whatever the engine said.
import { StoreUnavailableError } from '../domain/errors.ts';

/** Socket-level failures: the server is down, restarting, or the network to it is. */
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/**
 * What pg says when a connection dies or cannot be had; it gives these errors no code.
 * "timeout exceeded when trying to connect" is the pool's connection timeout.
 */
const PG_CONNECTION_MESSAGES = /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Connection terminated due to connection timeout|Query read timeout)/;

/**
 * SQLSTATEs that pass by themselves: class 08 (connection exception), the server shutting down,
 * crashing or still starting (57P01-57P03), too many connections (53300), out of memory (53200),
 * an I/O error (58030), a read-only server after a failover (25006), a statement timeout (57014).
 */
const PG_UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300', '53200', '58030', '25006', '57014']);

/** The PostgreSQL reading of `err`, or null when it is not about availability. */
export function pgUnavailable(err: unknown): StoreUnavailableError | null {
  if (err instanceof StoreUnavailableError) return err;
  if (!(err instanceof Error)) return null;
  const code = (err as { code?: unknown }).code;
  if (code === '53100') return new StoreUnavailableError('full', 'the database server is out of disk space', err);
  if (typeof code === 'string' && (code.startsWith('08') || PG_UNAVAILABLE_STATES.has(code) || NET_CODES.has(code))) {
    return new StoreUnavailableError('unreachable', 'the database cannot be reached', err);
  }
  if (PG_CONNECTION_MESSAGES.test(err.message)) return new StoreUnavailableError('unreachable', 'the database cannot be reached', err);
  // An AggregateError from a connect that tried several addresses (localhost: ::1 and 127.0.0.1).
  if (err instanceof AggregateError && err.errors.some((e) => pgUnavailable(e))) return new StoreUnavailableError('unreachable', 'the database cannot be reached', err);
  return null;
}

// SQLite primary result codes (the low byte of the extended code node:sqlite gives as errcode).
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_NOMEM = 7;
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
const SQLITE_PROTOCOL = 15;

/**
 * The SQLite reading of `err`. A full disk, an I/O error (which is how some file systems
 * report one), a lock held past busy_timeout, a file that cannot be opened or written.
 * SQLITE_CORRUPT is deliberately not here: it does not pass by itself.
 */
export function sqliteUnavailable(err: unknown): StoreUnavailableError | null {
  if (err instanceof StoreUnavailableError) return err;
  if (!(err instanceof Error)) return null;
  const errcode = (err as { errcode?: unknown }).errcode;
  if ((err as { code?: unknown }).code !== 'ERR_SQLITE_ERROR' || typeof errcode !== 'number') return null;
  const primary = errcode & 0xff;
  if (primary === SQLITE_FULL) return new StoreUnavailableError('full', 'the disk holding the database is full', err);
  if (primary === SQLITE_IOERR) {
    // SQLITE_IOERR_WRITE, _FSYNC, _TRUNCATE... on a full disk ENOSPC may surface as one of these.
    return new StoreUnavailableError('unreachable', 'the database file could not be read or written (disk I/O error)', err);
  }
  if (primary === SQLITE_BUSY || primary === SQLITE_LOCKED) return new StoreUnavailableError('unreachable', 'the database is locked by another process', err);
  if (primary === SQLITE_NOMEM || primary === SQLITE_READONLY || primary === SQLITE_CANTOPEN || primary === SQLITE_PROTOCOL) {
    return new StoreUnavailableError('unreachable', 'the database file cannot be written', err);
  }
  return null;
}
