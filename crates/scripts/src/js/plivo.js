// `require('plivo')`, used as plivo-node is: `new plivo.Client(authId, authToken)`,
// then `client.messages.create({src, dst, text})` (or positionally). It speaks Plivo's
// REST API (JSON bodies, Basic auth) to the base URL the operator configured.
(function (deps, config) {
  'use strict';
  const { Buffer, fetch, camel } = deps;
  class PlivoRestError extends Error {
    constructor(status, body) {
      super((body && body.error) || `Plivo answered ${status}`);
      this.name = 'PlivoRestError';
      this.status = status;
      this.apiId = body && body.api_id;
    }
  }
  class Client {
    constructor(authId, authToken) {
      if (!authId || !authToken) throw new Error('Please provide authId and authToken');
      const auth = 'Basic ' + Buffer.from(`${authId}:${authToken}`).toString('base64');
      const call = async (path, body) => {
        const r = await fetch(config.api.replace(/\/$/, '') + `/v1/Account/${encodeURIComponent(authId)}${path}`, {
          method: 'POST',
          headers: { authorization: auth, 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify(body),
        });
        const text = await r.text();
        let answer = null;
        try { answer = JSON.parse(text); } catch (e) { answer = { error: text }; }
        if (r.status < 200 || r.status >= 300) throw new PlivoRestError(r.status, answer);
        return camel(answer);
      };
      this.authId = authId;
      this.messages = {
        create: (src, dst, text, options) => {
          const p = typeof src === 'object' && src !== null ? { ...src } : { ...(options || {}), src, dst, text };
          return call('/Message/', p);
        },
      };
      this.calls = {
        create: (from, to, answerUrl, options) => {
          const p = typeof from === 'object' && from !== null
            ? { ...from }
            : { ...(options || {}), from, to, answer_url: answerUrl };
          return call('/Call/', p);
        },
      };
    }
  }
  return { Client, PlivoRestError };
})
