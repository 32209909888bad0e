import { errors as joseErrors } from 'jose';
import { TokenVerifier, type ClaimGrants } from 'livekit-server-sdk';
import { LRUCache } from 'lru-cache';

/** LiveKit issues HS256 only; the SDK's verifier alone would also take HS384/HS512. */
const LIVEKIT_JWT_ALG = 'HS256';

export class TokenRejected extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'TokenRejected';
  }
}

export type VerifiedClaims = ClaimGrants & { iss?: string; exp?: number; nbf?: number; iat?: number };

export type LiveKitTokenVerifier = (token: string, opts?: { maxLifetimeSeconds?: number }) => Promise<VerifiedClaims>;

/**
 * Verifies LiveKit JWTs with the SDK's TokenVerifier (signature, issuer, exp, nbf), after choosing
 * the secret by the token's `iss` among the configured keys and refusing any algorithm but HS256.
 *
 * With `cacheSize` > 0, the claims of up to that many verified tokens are remembered, keyed by the whole
 * token string (signature included), until they expire: 10,000 browser tabs reusing a few tokens pay
 * the signature check once per token. Time-bound checks (exp, nbf) and the lifetime limit still run on
 * every use; failures are never cached.
 */
export function createLiveKitTokenVerifier(
  keys: ReadonlyMap<string, string>,
  clockToleranceSeconds: number,
  { cacheSize = 0 }: { cacheSize?: number } = {},
): LiveKitTokenVerifier {
  const verifiers = new Map([...keys].map(([key, secret]) => [key, new TokenVerifier(key, secret)]));
  const verified = cacheSize > 0 ? new LRUCache<string, VerifiedClaims>({ max: cacheSize }) : undefined;
  const verifySignature = async (token: string): Promise<VerifiedClaims> => {
    const cached = verified?.get(token);
    if (cached) {
      checkTimes(cached, clockToleranceSeconds);
      return cached;
    }
    const claims = await verifyUncached(token);
    // Only tokens that expire are remembered (the least recently used go first). One rule for expiry, checked on
    // every use above: an entry outliving its token is refused like the token.
    if (verified && typeof claims.exp === 'number') verified.set(token, Object.freeze(claims));
    return claims;
  };
  const verifyUncached = async (token: string): Promise<VerifiedClaims> => {
    const jwt = readUnverifiedJwt(token);
    if (!jwt) throw new TokenRejected('malformed token');
    if (jwt.header.alg !== LIVEKIT_JWT_ALG) throw new TokenRejected(`unsupported algorithm ${JSON.stringify(String(jwt.header.alg)).slice(0, 40)}`);
    const verifier = typeof jwt.claims.iss === 'string' ? verifiers.get(jwt.claims.iss) : undefined;
    if (!verifier) throw new TokenRejected('unknown API key');

    try {
      return await verifier.verify(token, clockToleranceSeconds);
    } catch (err) {
      throw new TokenRejected(describeJoseError(err));
    }
  };
  return async (token, opts = {}) => {
    const claims = await verifySignature(token);
    if (opts.maxLifetimeSeconds !== undefined) {
      const start = claims.nbf ?? claims.iat;
      if (start === undefined) throw new TokenRejected('token has neither nbf nor iat');
      if (claims.exp! - start > opts.maxLifetimeSeconds) throw new TokenRejected(`token lifetime exceeds ${opts.maxLifetimeSeconds / 60} minutes`);
    }
    return claims;
  };
}

/** exp and nbf against the clock, as jose checks them, for a token whose signature was verified earlier. */
function checkTimes(claims: VerifiedClaims, clockToleranceSeconds: number): void {
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp === 'number' && claims.exp <= now - clockToleranceSeconds) throw new TokenRejected('token expired');
  if (typeof claims.nbf === 'number' && claims.nbf > now + clockToleranceSeconds) throw new TokenRejected('token not yet valid');
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'token not yet valid';
    // jose reports a missing and a malformed exp alike; only "missing" means no expiry.
    if (err.claim === 'exp') return err.reason === 'missing' ? 'token has no expiry' : 'invalid exp claim';
    if (err.claim === 'iss') return 'unknown API key';
    return `invalid ${err.claim} claim`;
  }
  return 'malformed token';
}

/** Reads a JWT's header and claims without verifying them: only to choose how to verify. */
function readUnverifiedJwt(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[2]) return undefined;
  const header = decodePart(parts[0]!);
  const claims = decodePart(parts[1]!);
  return header && claims ? { header, claims } : undefined;
}

function decodePart(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
