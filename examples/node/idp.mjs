// idp.mjs -- the identity service of the examples: it owns the Ed25519
// signing key and mints PASETO v4.public tokens with the npm package
// "paseto" (4.x: ES module, composable capabilities; there is no V4 export
// any more).  The database only ever sees the public key.
//
//   node idp.mjs keygen DIR            a key pair: DIR/idp.secret (PASERK
//                                      k4.secret, mode 600); prints the
//                                      toms.trust_key() call for the public key
//   node idp.mjs mint DIR TENANT SUB [SECONDS]
//                                      prints a token for TENANT and end user
//                                      SUB, valid SECONDS (default 900); a
//                                      negative SECONDS mints one that has
//                                      already expired (for the examples'
//                                      error handling)
import { webcrypto } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PublicProtocol } from 'paseto'
import {
  ExportPublicKeyFactory,
  ExportSecretKeyFactory,
  GenerateKeyPairFactory,
  GetPublicKeyFactory,
  ImportSecretKeyFactory,
  SignFactory,
} from 'paseto/v4/public'

// paseto 4 uses the global Web Crypto API, a default from Node 19 on; Node
// 18 (Debian 12's nodejs) has it only as node:crypto's webcrypto.  The
// library reaches it when called, so setting it here is early enough.
if (globalThis.crypto === undefined) globalThis.crypto = webcrypto

// The key id toms looks up: the token's footer {"kid": ...} names the key
// given to toms.trust_key().
export const KEY_ID = 'example-idp-1'

const v4 = new PublicProtocol(
  GenerateKeyPairFactory, ExportSecretKeyFactory, ImportSecretKeyFactory,
  GetPublicKeyFactory, ExportPublicKeyFactory, SignFactory)

const secretFile = (dir) => join(dir, 'idp.secret')

export async function keygen(dir) {
  const { publicKey, secretKey } = await v4.GenerateKeyPair({ extractable: true })
  writeFileSync(secretFile(dir), await v4.ExportSecretKey(secretKey) + '\n', { mode: 0o600 })
  // PASERK k4.public.<base64url of the raw 32-byte key>: toms wants those bytes.
  const paserk = await v4.ExportPublicKey(publicKey)
  const raw = Buffer.from(paserk.slice('k4.public.'.length), 'base64url')
  return `SELECT toms.trust_key('${KEY_ID}', '\\x${raw.toString('hex')}');`
}

export async function mint(dir, tenant, sub, seconds = 900) {
  const secretKey = await v4.ImportSecretKey(readFileSync(secretFile(dir), 'utf8').trim())
  const footer = new TextEncoder().encode(JSON.stringify({ kid: KEY_ID }))
  // toms requires tid, sub and exp (RFC 3339, which the library writes).
  // An expired token: issued far enough in the past that it has run out.
  const lifetime = Math.abs(seconds)
  const now = seconds >= 0 ? new Date() : new Date(Date.now() - (lifetime + 60) * 1000)
  return v4.Sign(secretKey, { tid: tenant, sub }, { footer, expiresIn: lifetime, now })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [cmd, dir, ...rest] = process.argv.slice(2)
  if (cmd === 'keygen' && dir) {
    console.log(await keygen(dir))
  } else if (cmd === 'mint' && dir && rest.length >= 2) {
    console.log(await mint(dir, rest[0], rest[1], rest[2] === undefined ? 900 : Number(rest[2])))
  } else {
    console.error('usage: node idp.mjs keygen DIR | mint DIR TENANT SUB [SECONDS]')
    process.exit(2)
  }
}
