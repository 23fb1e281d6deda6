// app.mjs -- a Node.js application on toms, the way the docs recommend:
//   - one pool (node-postgres) to PgBouncer in transaction mode;
//   - every unit of work is one transaction that first enters the tenant
//     with the end user's PASETO v4.public token, transaction-local
//     (toms.enter_tenant($1, true)), so no pooled server connection ever
//     carries a tenant into the next client's transaction;
//   - every value, the token included, is a bound parameter;
//   - the sensitive column is sealed and opened in SQL (toms.seal($n),
//     toms.unseal(col)) under the tenant's key;
//   - refusals are told apart by SQLSTATE and message: no tenant context
//     (a bug in the application: it forgot to enter), a token refused (the
//     user must authenticate again).
// Connection settings come from the usual PG* variables; TOMS_IDP_DIR is
// the identity service's key directory (idp.mjs).
import pg from 'pg'
import { mint } from './idp.mjs'

const IDP = process.env.TOMS_IDP_DIR
const AUTHOR = process.env.EXAMPLE_AUTHOR || 'node-example'
const pool = new pg.Pool({ max: 4, application_name: 'toms-example-node' })
const say = (s) => console.log(`node: ${s}`)

// Runs work(client) in one transaction inside the token's tenant.
async function inTenant(token, work) {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT toms.enter_tenant($1, true)', [token])
    const result = await work(client)
    await client.query('COMMIT')
    return result
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

// What the application makes of a refusal.
function classify(err) {
  if (err.code === '42501' && err.message === 'no tenant context') {
    return 'bug: the query ran outside a tenant'
  }
  if (/^token (expired|not yet valid|signature invalid|malformed|claims invalid)$|^unknown key$/.test(err.message)) {
    return 'the user must sign in again'
  }
  return 'unexpected'
}
const refusal = (err) => `refused, SQLSTATE ${err.code} "${err.message}" -> ${classify(err)}`

async function main() {
  const acme = await mint(IDP, 'acme', 'alice@acme.example', 900)
  const globex = await mint(IDP, 'globex', 'hedy@globex.example', 900)
  const expired = await mint(IDP, 'acme', 'alice@acme.example', -60)

  // Write: bound parameters, the secret sealed in the database.
  const inserted = await inTenant(acme, async (c) => {
    const r = await c.query(
      'INSERT INTO notes_app.notes (author, body, secret) VALUES ($1, $2, toms.seal($3)) RETURNING tenant_id',
      [AUTHOR, 'Phishing drill on Monday', 'door code 4711'])
    return r.rows[0].tenant_id
  })
  say(`acme: inserted a note (tenant_id filled in by toms: ${inserted})`)

  // Read it back, several transactions at once over the pool.
  const reads = await Promise.all([1, 2, 3].map(() => inTenant(acme, async (c) => {
    const r = await c.query(
      `SELECT toms.current_tenant() AS tenant, toms.current_actor() AS actor, body,
              toms.unseal(secret) AS secret, secret::text LIKE 'sealed:v1:%' AS stored_sealed
         FROM notes_app.notes WHERE author = $1`, [AUTHOR])
    return r.rows
  })))
  for (const row of reads[0]) {
    say(`acme: ${reads[0].length} note(s) as ${row.actor} in ${row.tenant}: "${row.body}", secret "${row.secret}" (stored ${row.stored_sealed ? 'sealed' : 'IN PLAINTEXT'})`)
  }
  say(`acme: ${reads.length} concurrent transactions read the same ${reads.every((r) => r.length === reads[0].length) ? 'rows' : 'DIFFERENT rows'}`)

  const other = await inTenant(globex, async (c) =>
    (await c.query('SELECT count(*)::int AS n FROM notes_app.notes WHERE author = $1', [AUTHOR])).rows[0].n)
  say(`globex: sees ${other} of acme's notes`)

  // Outside a tenant: the pool's next transaction carries no context.
  const after = (await pool.query('SELECT toms.current_tenant(true) AS t')).rows[0].t
  say(`after COMMIT the pooled connection has tenant ${after === null ? 'none' : after}`)
  try {
    await pool.query('SELECT count(*) FROM notes_app.notes WHERE author = $1', [AUTHOR])
    say('no tenant context: NOT REFUSED')
  } catch (err) {
    say(`no tenant context: ${refusal(err)}`)
  }

  try {
    await inTenant(expired, async (c) => c.query('SELECT count(*) FROM notes_app.notes'))
    say('expired token: NOT REFUSED')
  } catch (err) {
    say(`expired token: ${refusal(err)}`)
  }
}

try {
  await main()
} catch (err) {
  console.error(`node: failed: ${err.code || ''} ${err.message}`)
  process.exitCode = 1
} finally {
  await pool.end()
}
