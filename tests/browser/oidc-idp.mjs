// A small OpenID Connect provider for the console's sign-in test, on loopback only. It issues
// real RS256 ID tokens (the test key tests/fixtures/identity/rsa1.key.pem, kid rsa-1), checks
// the client secret, the redirect URI and PKCE (S256), and hands each code out once.
//   node oidc-idp.mjs PORT CLIENT_ID CLIENT_SECRET
// People: rita (group sec-analysts: reviewer), vic (helpdesk: viewer), nora (no group).
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [port, clientId, clientSecret] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const ids = path.join(here, '..', 'fixtures', 'identity');
const key = crypto.createPrivateKey(fs.readFileSync(path.join(ids, 'rsa1.key.pem')));
const jwks = fs.readFileSync(path.join(ids, 'jwks.json'));
const issuer = `http://127.0.0.1:${port}`;
const people = {
  rita: { email: 'rita@example.com', groups: ['sec-analysts', 'staff'] },
  vic: { email: 'vic@example.com', groups: ['helpdesk'] },
  nora: { email: 'nora@example.com', groups: ['staff'] },
};
const codes = new Map();
const b64u = (buf) => Buffer.from(buf).toString('base64url');
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function idToken(who, nonce) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64u(JSON.stringify({ alg: 'RS256', kid: 'rsa-1', typ: 'JWT' }));
  const body = b64u(JSON.stringify({
    iss: issuer, sub: `id-${who}`, aud: clientId, iat: now, exp: now + 300, nonce,
    email: people[who].email, groups: people[who].groups,
  }));
  const sig = crypto.sign('RSA-SHA256', Buffer.from(`${head}.${body}`), key);
  return `${head}.${body}.${b64u(sig)}`;
}

function send(res, status, type, body, extra = {}) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...extra });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/.well-known/openid-configuration') {
    return send(res, 200, 'application/json', JSON.stringify({
      issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/jwks`, response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
    }));
  }
  if (url.pathname === '/jwks') return send(res, 200, 'application/json', jwks);
  if (url.pathname === '/authorize') {
    const q = url.searchParams;
    if (q.get('client_id') !== clientId || q.get('response_type') !== 'code'
      || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge') || !q.get('nonce')) {
      return send(res, 400, 'text/plain', 'bad authorization request');
    }
    const hidden = ['redirect_uri', 'state', 'nonce', 'code_challenge']
      .map((k) => `<input type="hidden" name="${k}" value="${esc(q.get(k))}">`).join('');
    const buttons = Object.keys(people)
      .map((p) => `<button name="who" value="${p}" id="as-${p}">${esc(people[p].email)}</button>`).join(' ');
    return send(res, 200, 'text/html',
      `<!doctype html><title>Test IdP</title><h1>Test IdP: who are you?</h1><form method="get" action="/decide">${hidden}${buttons}</form>`);
  }
  if (url.pathname === '/decide') {
    const q = url.searchParams;
    const code = b64u(crypto.randomBytes(24));
    codes.set(code, { who: q.get('who'), nonce: q.get('nonce'), challenge: q.get('code_challenge'),
      redirect: q.get('redirect_uri') });
    const back = new URL(q.get('redirect_uri'));
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.get('state'));
    return send(res, 302, 'text/plain', '', { location: back.toString() });
  }
  if (url.pathname === '/token' && req.method === 'POST') {
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      const f = new URLSearchParams(raw);
      const basic = Buffer.from((req.headers.authorization || '').replace(/^Basic /, ''), 'base64').toString();
      if (basic !== `${clientId}:${clientSecret}`) return send(res, 401, 'application/json', '{"error":"invalid_client"}');
      const grant = codes.get(f.get('code'));
      codes.delete(f.get('code'));
      const verifier = f.get('code_verifier') || '';
      const challenge = b64u(crypto.createHash('sha256').update(verifier).digest());
      if (!grant || grant.redirect !== f.get('redirect_uri') || grant.challenge !== challenge
        || f.get('grant_type') !== 'authorization_code') {
        return send(res, 400, 'application/json', '{"error":"invalid_grant"}');
      }
      send(res, 200, 'application/json', JSON.stringify({
        access_token: b64u(crypto.randomBytes(16)), token_type: 'Bearer', expires_in: 300,
        id_token: idToken(grant.who, grant.nonce),
      }));
    });
    return;
  }
  send(res, 404, 'text/plain', 'not found');
});
server.listen(Number(port), '127.0.0.1', () => console.log(`test IdP on ${issuer}`));
