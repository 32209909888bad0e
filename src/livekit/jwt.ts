import { errors as joseErrors } from 'jose';
import { TokenVerifier, type ClaimGrants } from 'livekit-server-sdk';

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
 */
export function createLiveKitTokenVerifier(keys: ReadonlyMap<string, string>, clockToleranceSeconds: number): LiveKitTokenVerifier {
  const verifiers = new Map([...keys].map(([key, secret]) => [key, new TokenVerifier(key, secret)]));
  return async (token, opts = {}) => {
    const jwt = readUnverifiedJwt(token);
    if (!jwt) throw new TokenRejected('malformed token');
    if (jwt.header.alg !== LIVEKIT_JWT_ALG) throw new TokenRejected(`unsupported algorithm ${JSON.stringify(String(jwt.header.alg)).slice(0, 40)}`);
    const verifier = typeof jwt.claims.iss === 'string' ? verifiers.get(jwt.claims.iss) : undefined;
    if (!verifier) throw new TokenRejected('unknown API key');

    let claims: VerifiedClaims;
    try {
      claims = await verifier.verify(token, clockToleranceSeconds);
    } catch (err) {
      throw new TokenRejected(describeJoseError(err));
    }
    if (opts.maxLifetimeSeconds !== undefined) {
      const start = claims.nbf ?? claims.iat;
      if (start === undefined) throw new TokenRejected('token has neither nbf nor iat');
      if (claims.exp! - start > opts.maxLifetimeSeconds) throw new TokenRejected(`token lifetime exceeds ${opts.maxLifetimeSeconds / 60} minutes`);
    }
    return claims;
  };
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
