// api.redirect.encodeToken and validateToken: HS256 tokens bound to the sign-in's
// `state`, as Auth0 makes them. Loaded on first use.
(function (host, load) {
  'use strict';
  const { Buffer } = load('buffer');
  const { crypto } = load('crypto');
  // The sign-in's own time when the engine was given it (core passes `now`), so a
  // token's age is judged by the same clock as the rest of the sign-in.
  const seconds = (data) => Math.floor((typeof data.now === 'number' ? data.now : Date.now()) / 1000);
  const b64url = (text) => Buffer.from(text).toString('base64url');
  const sign = (secret, body) => crypto.createHmac('sha256', String(secret)).update(body).digest('base64url');
  const encodeToken = (event, data, { secret, payload, expiresInSeconds } = {}) => {
    if (!secret) throw new TypeError('encodeToken needs a secret');
    const now = seconds(data);
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
  const validateToken = (event, data, { secret, tokenParameterName } = {}) => {
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
    if (typeof claims.exp !== 'number' || claims.exp <= seconds(data)) throw new Error('The token expired');
    if (claims.state !== data.state) throw new Error('The token was not issued for this sign-in');
    return claims;
  };
  return { encodeToken, validateToken };
})
