// Regenerating a secret: the impact preview before confirming, and the
// three choices (revoke now, keep tokens, overlap), with JavaScript and
// as plain form posts.
import { test, expect, Page } from '@playwright/test';
import { server, SCREENSHOTS } from './servers';
import { PASSWORD, signIn as signInAt, tokenFor as tokenAt, me as meAt, setupOwner } from './http';

const s = () => server('rotate');
const signIn = (page: Page, username = 'alice', password = PASSWORD) => signInAt(page, s().baseURL, username, password);
const tokenFor = (clientId: string, secret: string) => tokenAt(s().baseURL, clientId, secret);
const me = (token: string) => meAt(s().baseURL, token);

async function rotation(page: Page, name: string, js: boolean) {
  await signIn(page);
  if (js) await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  await page.goto(`${s().baseURL}/applications/new`);
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByRole('button', { name: 'Create application' }).click();
  await expect(page.getByTestId('application-name')).toHaveText(name);
  const first = await page.getByTestId('new-secret').inputValue();
  const clientId = await page.getByTestId('client-id').inputValue();

  // A token, used: the preview names it with its last use and address.
  const res = await tokenFor(clientId, first);
  expect(res.status).toBe(200);
  const token = (await res.json()).access_token as string;
  expect(await me(token)).toBe(200);
  const impact = page.getByTestId('impact');
  await expect(async () => {
    await page.reload();
    await expect(impact).toContainText('1 active token(s) would be revoked', { timeout: 1000 });
    await expect(impact).toContainText('127.0.0.1', { timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  await expect(impact).toContainText('The current secret was last used');
  await expect(page.getByLabel(/Replace now and revoke every token \(1 active token/)).toBeChecked();
  await page.screenshot({ path: `${SCREENSHOTS}/regenerate-impact-${name}.png`, fullPage: true });

  // Without ticking the box nothing happens, and the page says why.
  if (!js) {
    await page.evaluate(() => document.querySelectorAll('input[required]').forEach((i) => i.removeAttribute('required')));
    await page.getByRole('button', { name: 'Regenerate secret' }).click();
    await expect(page.getByText('tick the box to confirm that every token of this application will stop working')).toBeVisible();
    expect((await tokenFor(clientId, first)).status).toBe(200);
  }

  // An overlap: both secrets work, the token too.
  await page.getByLabel(/Keep the previous secret working for a while/).check();
  await page.getByLabel('Previous secret keeps working for').selectOption('3600');
  await page.getByLabel('Yes, replace the secret as chosen above').check();
  await page.getByRole('button', { name: 'Regenerate secret' }).click();
  await expect(page.getByText(/The previous secret keeps working until/)).toBeVisible();
  const second = await page.getByTestId('new-secret').inputValue();
  expect(second).not.toBe(first);
  expect((await tokenFor(clientId, first)).status).toBe(200);
  expect((await tokenFor(clientId, second)).status).toBe(200);
  expect(await me(token)).toBe(200);
  const previous = page.locator('tr[data-secret="previous"]');
  await expect(previous).toContainText('overlap ends');
  await expect(previous).toContainText(/in (59 minutes|1 hour)/);
  await page.screenshot({ path: `${SCREENSHOTS}/secrets-overlap-${name}.png`, fullPage: true });

  // End it early: the old secret stops working at once.
  await previous.getByText('End overlap now').click();
  await previous.getByRole('button', { name: 'Confirm: previous secret stops working' }).click();
  await expect(page.locator('tr[data-secret="previous"]')).toHaveCount(0);
  expect((await tokenFor(clientId, first)).status).toBe(401);
  expect((await tokenFor(clientId, second)).status).toBe(200);

  // Replace now but keep the tokens.
  await page.getByLabel(/Replace now, but let existing tokens run to their expiry/).check();
  await page.getByLabel('Yes, replace the secret as chosen above').check();
  await page.getByRole('button', { name: 'Regenerate secret' }).click();
  await expect(page.getByText(/The previous secret no longer works; existing tokens run to their expiry/)).toBeVisible();
  const third = await page.getByTestId('new-secret').inputValue();
  expect((await tokenFor(clientId, second)).status).toBe(401);
  expect((await tokenFor(clientId, third)).status).toBe(200);
  expect(await me(token)).toBe(200);

  // The default: everything dies at once.
  await page.reload();
  await page.getByLabel('Yes, replace the secret as chosen above').check();
  await page.getByRole('button', { name: 'Regenerate secret' }).click();
  await expect(page.getByText(/token\(s\) were revoked/)).toBeVisible();
  expect(await me(token)).toBe(401);
  expect((await tokenFor(clientId, third)).status).toBe(401);
}

test.describe.configure({ mode: 'serial' });

test('setup owner', async ({ page }) => {
  await setupOwner(page, s().setupURL);
});

test('regeneration choices and impact preview, with JavaScript', async ({ page }) => {
  await rotation(page, 'rotate-js', true);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });
  test('regeneration choices and impact preview, as form posts', async ({ page }) => {
    await rotation(page, 'rotate-nojs', false);
  });
});

test('webhooks page: add one, see its secret once, send a test event', async ({ page }) => {
  await signIn(page);
  await page.goto(`${s().baseURL}/webhooks`);
  await page.getByLabel('URL').fill('http://127.0.0.1:9/hook');
  await page.getByLabel('Description').fill('ops channel');
  await page.getByRole('button', { name: 'Add webhook' }).click();
  await expect(page.getByTestId('webhook-url')).toHaveText('http://127.0.0.1:9/hook');
  const secret = await page.getByTestId('new-webhook-secret').inputValue();
  expect(secret).toMatch(/^whsec_/);
  await page.getByRole('button', { name: 'Send a test event' }).click();
  const row = page.locator('tr[data-delivery]').first();
  await expect(async () => {
    await page.reload();
    await expect(row).toContainText('webhook.test', { timeout: 1000 });
    await expect(row).toContainText('could not connect', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  await expect(page.getByTestId('new-webhook-secret')).toHaveCount(0);
  await page.screenshot({ path: `${SCREENSHOTS}/webhook-detail.png`, fullPage: true });
  await page.goto(`${s().baseURL}/`);
  await expect(page.getByTestId('attention')).toBeVisible();
});
