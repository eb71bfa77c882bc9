// Signs in through Tessera's hosted pages in headless Chromium, the way a person
// would, for a sample relying party whose callback this script stands in for.
//
// Environment: BASE (Tessera), AUTHORIZE (path and query of the authorization
// request), LOGIN_ID, PASSWORD, and either TOTP_CODE (second step) or ENROLL=1
// (the application forces a factor; ENROLL_CODE_URL gives the code for the shown key),
// or ENROLL=phone with ENROLL_REGION, ENROLL_PHONE and CODE_URL (the texted code).
// Prints the callback URL the browser landed on. Screenshots go to ARTIFACTS. Every
// Tessera page shot is also checked with axe-core against WCAG 2 A and AA; any
// violation fails the run.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const artifacts = env('ARTIFACTS');
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-quic'],
});
try {
  const page = await browser.newPage();
  let callback = null;
  // The sample relying party: its callback page, served here instead of the network.
  await page.route('https://app.example.com/**', async (route) => {
    callback = route.request().url();
    await route.fulfill({ status: 200, contentType: 'text/html', body: '<h1>Sample app: signed in</h1>' });
  });
  const axeSource = readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
  const violations = [];
  const shot = async (name) => {
    await page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
    if (!page.url().startsWith(env('BASE'))) return;
    await page.addScriptTag({ content: axeSource });
    const result = await page.evaluate(() => axe.run(document, { runOnly: ['wcag2a', 'wcag2aa'] }));
    for (const v of result.violations) {
      violations.push(`${name}: ${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    }
  };

  await page.goto(env('BASE') + env('AUTHORIZE'));
  await page.getByLabel('Email or username').fill(env('LOGIN_ID'));
  await page.getByLabel('Password').fill(env('PASSWORD'));
  await shot('1-login');
  await page.getByRole('button', { name: 'Sign in' }).click();

  if (!process.env.ENROLL && (process.env.TOTP_CODE || process.env.CODE_URL)) {
    await page.getByRole('heading', { name: 'Second step' }).waitFor();
    await shot('2-second-step');
    let code = process.env.TOTP_CODE;
    if (process.env.CODE_URL) {
      // A text message: ask for one, then read it where the test's messenger put it.
      await page.getByRole('button', { name: /Text a code to/ }).click();
      await page.getByText('We sent a code.').waitFor();
      await shot('3-code-sent');
      code = await (await fetch(env('CODE_URL'))).text();
      // A wrong code first: the page comes back with every way in still offered.
      const wrong = code.slice(0, -1) + String((Number(code.slice(-1)) + 1) % 10);
      await page.getByLabel(/Code from your authenticator app/).fill(wrong);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByText('That code is not right.').waitFor();
      await page.getByRole('button', { name: /Text a code to/ }).waitFor();
      await shot('4-wrong-code');
    }
    await page.getByLabel(/Code from your authenticator app/).fill(code);
    if (process.env.TRUST) await page.getByLabel('Remember this device').check();
    await page.getByRole('button', { name: 'Continue' }).click();
  } else if (process.env.ENROLL === 'phone') {
    // A phone: pick the country, type the number as dialled there, enter the texted code.
    await page.getByRole('heading', { name: 'Add a second step' }).waitFor();
    await page.getByLabel('Country').selectOption(env('ENROLL_REGION'));
    await page.getByLabel('Phone number').fill(env('ENROLL_PHONE'));
    await page.getByRole('radio', { name: 'Text message' }).check();
    await shot('2-enroll-phone');
    await page.getByRole('button', { name: 'Send a code' }).click();
    await page.getByText('We sent a code.').waitFor();
    await shot('3-enroll-phone-code');
    const code = await (await fetch(env('CODE_URL'))).text();
    await page.getByLabel(/Code sent to/).fill(code);
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
    await shot('4-recovery-codes');
    await page.getByRole('link', { name: 'Continue' }).click();
  } else if (process.env.ENROLL) {
    await page.getByRole('heading', { name: 'Add a second step' }).waitFor();
    await shot('2-enroll');
    // The key as a person would type it from the page (the form does not carry it).
    const key = (await page.locator('figcaption code').innerText()).trim();
    // Ask the test for the code the key makes at the server's time.
    const code = await (await fetch(`${env('ENROLL_CODE_URL')}?key=${key}`)).text();
    await page.getByLabel('Code from the app').fill(code);
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
    await shot('3-recovery-codes');
    await page.getByRole('link', { name: 'Continue' }).click();
  }
  await page.waitForURL('https://app.example.com/**', { timeout: 15000 });
  await shot('9-relying-party');
  if (!callback) throw new Error('never reached the relying party');
  if (violations.length) throw new Error(`accessibility (axe-core, WCAG 2 AA):\n${violations.join('\n')}`);
  console.log(callback);
  if (process.env.TRUST) {
    // A remembered device: signing in again asks for the password only.
    callback = null;
    await page.goto(env('BASE') + env('AUTHORIZE') + '&prompt=login');
    await page.getByLabel('Email or username').fill(env('LOGIN_ID'));
    await page.getByLabel('Password').fill(env('PASSWORD'));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL('https://app.example.com/**', { timeout: 15000 });
    await shot('10-remembered-device');
    if (!callback) throw new Error('the remembered device was asked for a second step');
    console.log(callback);
  }
} finally {
  await browser.close();
}
