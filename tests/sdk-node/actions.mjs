// Auth0's own ManagementClient (npm `auth0`) managing Tessera's actions: create with a
// secret, deploy, bind, test, change and deploy again, roll back, refuse bad code and a
// bound delete. Its calls go to `https://tessera.test/api/v2/…`, which the custom fetch
// sends to the Tessera under test (BASE). Prints what it saw as JSON.
import { ManagementClient } from 'auth0';

const base = process.env.BASE;
const client = new ManagementClient({
  domain: 'tessera.test',
  token: process.env.API_KEY,
  fetch: (url, init) => fetch(String(url).replace('https://tessera.test', base), init),
});

const code = (claim) => `exports.onExecutePostLogin = async (event, api) => {
  console.log('signing in', event.user.email, 'with', event.secrets.PARTNER_KEY);
  api.idToken.setCustomClaim('https://example.com/claim', '${claim}');
};`;

const failure = async (promise) => {
  try {
    await promise;
    return null;
  } catch (e) {
    return { status: e.statusCode, body: e.body };
  }
};

const created = await client.actions.create({
  name: 'add-claim',
  supported_triggers: [{ id: 'post-login', version: 'v3' }],
  code: code('first'),
  runtime: 'node22',
  dependencies: [],
  secrets: [{ name: 'PARTNER_KEY', value: 'pk_live_123' }],
});
const first = await client.actions.deploy(created.id);
await client.actions.triggers.bindings.updateMany('post-login', {
  bindings: [{ ref: { type: 'action_id', value: created.id }, display_name: 'Add claim' }],
});
const tested = await client.actions.test(created.id, {
  payload: { user: { user_id: 'u1', email: 'ann@example.com' } },
});
await client.actions.update(created.id, { code: code('second') });
const second = await client.actions.deploy(created.id);
const versions = await client.actions.versions.list(created.id);
const rolledBack = await client.actions.versions.deploy(created.id, first.id);
const afterRollBack = await client.actions.get(created.id);
const bindings = await client.actions.triggers.bindings.list('post-login');
const listed = await client.actions.list({ triggerId: 'post-login' });

const broken = await client.actions.create({
  name: 'broken',
  supported_triggers: [{ id: 'post-login', version: 'v3' }],
  code: 'exports.onExecutePostLogin = async (event, api) => {\n  api.access.deny(;\n};',
});
const badDeploy = await failure(client.actions.deploy(broken.id));
const boundDelete = await failure(client.actions.delete(created.id));
const duplicate = await failure(
  client.actions.create({ name: 'add-claim', supported_triggers: [{ id: 'post-login', version: 'v3' }], code: '' }),
);
await client.actions.delete(broken.id);

console.log(JSON.stringify({
  created: { id: created.id, secrets: created.secrets, deployed: created.deployed_version ?? null },
  first: { id: first.id, number: first.number },
  tested: tested.payload,
  second: { id: second.id, number: second.number },
  versions: versions.data.map((v) => ({ id: v.id, number: v.number, deployed: v.deployed })),
  rolledBack: { number: rolledBack.number, code: rolledBack.code },
  afterRollBack: { code: afterRollBack.code, all_changes_deployed: afterRollBack.all_changes_deployed,
                   deployed: afterRollBack.deployed_version.number },
  bindings: bindings.data.map((b) => ({ display_name: b.display_name, action: b.action.id })),
  listed: listed.data.map((a) => a.name),
  badDeploy, boundDelete, duplicate,
}));
