// The `api` of a post-login action (Auth0's PostLoginAPI). Every method is recorded,
// in order, for core to act on once the action finishes; the few that answer
// something (`canRedirect`, `encodeToken`, `validateToken`, `cache.get`) answer from
// what the engine was given. Methods return `api`, so calls chain as in Auth0.
(function (event, data, record, tools) {
  'use strict';
  const { Buffer, crypto } = tools;
  const api = {};
  const rec = (name) => (...args) => { record(name, args); return api; };

  const b64url = (text) => Buffer.from(text).toString('base64url');
  const sign = (secret, body) => crypto.createHmac('sha256', String(secret)).update(body).digest('base64url');
  const encodeToken = ({ secret, payload, expiresInSeconds } = {}) => {
    if (!secret) throw new TypeError('encodeToken needs a secret');
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      ...(payload || {}),
      sub: event.user && event.user.user_id,
      iss: data.issuer,
      iat: now,
      exp: now + (Number(expiresInSeconds) || 900),
      ip: event.request && event.request.ip,
      state: data.state,
    };
    const body = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' })) + '.' + b64url(JSON.stringify(claims));
    return body + '.' + sign(secret, body);
  };
  const validateToken = ({ secret, tokenParameterName } = {}) => {
    const name = tokenParameterName || 'session_token';
    const request = event.request || {};
    const token = (request.body && request.body[name]) || (request.query && request.query[name]);
    if (!token || typeof token !== 'string') throw new Error(`The ${name} parameter is missing`);
    const parts = token.split('.');
    if (parts.length !== 3) throw new Error('The token is malformed');
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    if (header.alg !== 'HS256') throw new Error('The token is not signed with HS256');
    const expected = sign(secret, parts[0] + '.' + parts[1]);
    if (expected.length !== parts[2].length || !crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(parts[2]))) {
      throw new Error('The token signature is invalid');
    }
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    if (typeof claims.exp !== 'number' || claims.exp <= Math.floor(Date.now() / 1000)) throw new Error('The token expired');
    if (claims.state !== data.state) throw new Error('The token was not issued for this sign-in');
    return claims;
  };

  const cached = { ...(data.cache || {}) };
  const cacheSet = (key, value, options) => {
    const o = options || {};
    const limit = Date.now() + 24 * 3600 * 1000;
    let at = Date.now() + 15 * 60 * 1000;
    if (o.ttl !== undefined) at = Date.now() + Number(o.ttl);
    if (o.expires_at !== undefined) at = Math.min(at, Number(o.expires_at));
    at = Math.min(at, limit);
    cached[key] = { value: String(value), expires_at: at };
    record('cache.set', [String(key), String(value), at]);
    return { type: 'success' };
  };

  event.transaction = event.transaction || {};
  event.transaction.metadata = event.transaction.metadata || {};

  Object.assign(api, {
    access: { deny: rec('access.deny') },
    accessToken: {
      setCustomClaim: rec('accessToken.setCustomClaim'),
      addScope: rec('accessToken.addScope'),
      removeScope: rec('accessToken.removeScope'),
    },
    idToken: { setCustomClaim: rec('idToken.setCustomClaim') },
    authentication: {
      challengeWith: rec('authentication.challengeWith'),
      challengeWithAny: rec('authentication.challengeWithAny'),
      enrollWith: rec('authentication.enrollWith'),
      enrollWithAny: rec('authentication.enrollWithAny'),
      recordMethod: rec('authentication.recordMethod'),
    },
    multifactor: { enable: rec('multifactor.enable') },
    redirect: {
      canRedirect: () => data.canRedirect === true,
      sendUserTo: rec('redirect.sendUserTo'),
      encodeToken,
      validateToken,
    },
    user: {
      setAppMetadata: rec('user.setAppMetadata'),
      setUserMetadata: rec('user.setUserMetadata'),
    },
    transaction: {
      setMetadata: (key, value) => {
        event.transaction.metadata[key] = value;
        record('transaction.setMetadata', [key, value]);
        return api;
      },
    },
    cache: {
      get: (key) => {
        const e = cached[key];
        return e && e.expires_at > Date.now() ? { value: e.value, expires_at: e.expires_at } : undefined;
      },
      set: cacheSet,
      delete: (key) => {
        delete cached[key];
        record('cache.delete', [String(key)]);
        return { type: 'success' };
      },
    },
  });
  return api;
})
