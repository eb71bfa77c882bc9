// `require('twilio')`, used as twilio-node is: `require('twilio')(sid, token)` or
// `new (require('twilio').Twilio)(sid, token)`. It speaks Twilio's REST API (form
// bodies, Basic auth, JSON answers with snake_case keys turned camelCase, errors thrown
// as RestException) to the base URLs the operator configured.
(function (deps, config) {
  'use strict';
  const { Buffer, URLSearchParams, fetch, camel } = deps;
  const pascal = (k) => k.charAt(0).toUpperCase() + k.slice(1);

  class RestException extends Error {
    constructor(status, body) {
      super((body && body.message) || `Twilio answered ${status}`);
      this.name = 'RestException';
      this.status = status;
      this.code = body && body.code;
      this.moreInfo = body && body.more_info;
      this.details = body && body.details;
    }
  }

  function Twilio(accountSid, authToken) {
    if (!(this instanceof Twilio)) return new Twilio(accountSid, authToken);
    if (!accountSid || !authToken) throw new Error('username is required');
    const auth = 'Basic ' + Buffer.from(`${accountSid}:${authToken}`).toString('base64');
    const call = async (base, path, params) => {
      const form = new URLSearchParams();
      for (const [k, v] of Object.entries(params || {})) {
        if (v === undefined || v === null) continue;
        const name = pascal(k);
        if (Array.isArray(v)) v.forEach((x) => form.append(name, typeof x === 'object' ? JSON.stringify(x) : x));
        else form.append(name, typeof v === 'object' ? JSON.stringify(v) : v);
      }
      const r = await fetch(base.replace(/\/$/, '') + path, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
      });
      const text = await r.text();
      let body = null;
      try { body = JSON.parse(text); } catch (e) { body = { message: text }; }
      if (r.status < 200 || r.status >= 300) throw new RestException(r.status, body);
      return camel(body);
    };
    const account = `/2010-04-01/Accounts/${encodeURIComponent(accountSid)}`;
    this.accountSid = accountSid;
    this.messages = { create: (p) => call(config.api, `${account}/Messages.json`, p) };
    this.calls = { create: (p) => call(config.api, `${account}/Calls.json`, p) };
    const service = (sid) => {
      const at = `/v2/Services/${encodeURIComponent(sid)}`;
      // A phone number as the id keeps its `+`, as Twilio's own clients send it.
      const verifications = (id) => ({
        update: (p) => call(config.verify, `${at}/Verifications/${encodeURIComponent(id).replace(/%2B/g, '+')}`, p),
      });
      verifications.create = (p) => call(config.verify, `${at}/Verifications`, p);
      return { verifications, verificationChecks: { create: (p) => call(config.verify, `${at}/VerificationCheck`, p) } };
    };
    this.verify = { v2: { services: service } };
  }
  Twilio.Twilio = Twilio;
  Twilio.RestException = RestException;
  return Twilio;
})
