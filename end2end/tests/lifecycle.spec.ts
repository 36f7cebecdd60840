// The whole life of an application and its tokens, driven through the
// console in Chromium, with token calls made from the test over HTTP.
import { test, expect, Page, Browser } from '@playwright/test';
import { server, SCREENSHOTS } from './servers';
import { PASSWORD, signIn as signInAt, tokenFor as tokenAt, me as meAt, setupOwner } from './http';

const s = () => server('life');
const signIn = (page: Page, username = 'alice', password = PASSWORD) => signInAt(page, s().baseURL, username, password);
const tokenFor = (clientId: string, secret: string) => tokenAt(s().baseURL, clientId, secret);
const me = (token: string) => meAt(s().baseURL, token);

async function newApplication(page: Page, name: string) {
  await page.goto(`${s().baseURL}/applications/new`);
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Notes').fill('Nightly invoice export');
  await page.locator('#scope-applications-read').check();
  await page.locator('#scope-tokens-read').check();
  await expect(page.getByLabel('Token lifetime (seconds)')).toHaveValue('3600');
  await expect(page.getByLabel('Valid tokens at most')).toHaveValue('30');
  await page.getByRole('button', { name: 'Create application' }).click();
  await expect(page.getByTestId('application-name')).toHaveText(name);
}

test.describe.configure({ mode: 'serial' });

test('setup owner', async ({ page }) => {
  await setupOwner(page, s().setupURL);
});

test('application and token lifecycle', async ({ browser }) => {
  const context = await browser.newContext();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: s().baseURL });
  const page = await context.newPage();
  await signIn(page, 'alice');
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  await newApplication(page, 'billing-sync');

  // The secret is shown once, with a warning and a working copy button.
  await expect(page.getByText('It is shown only this once')).toBeVisible();
  const secret = await page.getByTestId('new-secret').inputValue();
  const clientId = await page.getByTestId('client-id').inputValue();
  expect(secret).toMatch(/^kgs_[A-Za-z0-9]{43}$/);
  await page.getByRole('button', { name: 'Copy Client secret' }).click();
  await expect(page.getByRole('button', { name: 'Copy Client secret' })).toHaveText('Copied');
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
  await page.screenshot({ path: `${SCREENSHOTS}/application-created.png`, fullPage: true });

  // A token from the token endpoint, used on the API, shows "last used".
  const res = await tokenFor(clientId, secret);
  expect(res.status).toBe(200);
  const endpointToken = (await res.json()).access_token as string;
  expect(await me(endpointToken)).toBe(200);
  // The token endpoint's tokens are summarised, their list one click away.
  await page.reload();
  await expect(page.getByTestId('new-secret')).toHaveCount(0); // gone after reload
  await expect(page.getByTestId('issued-active')).toHaveText('1 (at most 30)');
  await page.getByTestId('issued-link').click();
  const row = page.locator(`tr[data-token="${endpointToken.slice(0, 12)}"]`);
  await expect(async () => {
    await page.reload();
    await expect(row.locator('.last-used')).not.toHaveText('never', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  await expect(row.locator('.last-used time')).toHaveAttribute('title', /UTC$/);
  await page.getByTestId('named-tokens-link').click();
  await expect(page.getByTestId('no-tokens')).toHaveText('No named tokens yet.');

  // Mint a named token, use it, revoke it.
  await page.getByText('New token', { exact: true }).click();
  await page.getByLabel('Token name').fill('deploy pipeline');
  await page.getByLabel('Expires', { exact: true }).selectOption('7');
  await page.getByRole('button', { name: 'Create token' }).click();
  await expect(page.getByTestId('new-token')).toBeVisible();
  const named = await page.getByTestId('new-token').inputValue();
  expect(named).toMatch(/^kgt_/);
  expect(await me(named)).toBe(200);
  const namedRow = page.locator(`tr[data-token="${named.slice(0, 12)}"]`);
  // A 7-day token is not "expiring soon" at birth.
  await expect(namedRow).toContainText('active');
  await expect(namedRow).not.toContainText('expires soon');
  await namedRow.getByText('Revoke', { exact: true }).click();
  await namedRow.getByRole('button', { name: 'Confirm revoking deploy pipeline' }).click();
  // A revoked token leaves the list; the toggle brings it back, saying when.
  await expect(namedRow).toHaveCount(0);
  await page.getByRole('link', { name: 'Show 1 revoked or expired' }).click();
  await expect(namedRow).toContainText('revoked');
  await expect(namedRow.getByTestId('revoked-at')).toContainText(/revoked (just now|\d+ seconds? ago)/);
  expect(await me(named)).toBe(401);

  // Regenerate the secret: the confirmation names the count; old tokens die.
  await page.reload();
  await expect(page.getByTestId('impact')).toContainText('1 active token(s) would be revoked');
  await page.getByLabel('Yes, replace the secret as chosen above').check();
  await page.getByRole('button', { name: 'Regenerate secret' }).click();
  await expect(page.getByTestId('new-secret')).toBeVisible();
  const newSecret = await page.getByTestId('new-secret').inputValue();
  expect(newSecret).not.toBe(secret);
  expect(await me(endpointToken)).toBe(401);
  expect((await tokenFor(clientId, secret)).status).toBe(401);
  expect((await tokenFor(clientId, newSecret)).status).toBe(200);
  await page.reload();
  await page.screenshot({ path: `${SCREENSHOTS}/application-detail.png`, fullPage: true });

  // The audit log tells the story in sentences.
  await page.goto(`${s().baseURL}/audit`);
  await expect(page.getByText('alice regenerated the secret of billing-sync (1 token(s) revoked)')).toBeVisible();
  await expect(page.getByText('alice created the token "deploy pipeline" for billing-sync')).toBeVisible();
  await page.getByLabel('Action').selectOption('token.refused');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page.getByText(/billing-sync used a refused token/).first()).toBeVisible();
  await page.goto(`${s().baseURL}/audit`);
  await page.screenshot({ path: `${SCREENSHOTS}/audit-log.png`, fullPage: true });

  // The list finds it by name and by client ID.
  await page.goto(`${s().baseURL}/applications`);
  await page.getByLabel('Search').fill(clientId.slice(0, 10));
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.getByRole('link', { name: 'billing-sync' })).toBeVisible();
  await page.screenshot({ path: `${SCREENSHOTS}/applications.png`, fullPage: true });
  await page.goto(`${s().baseURL}/scopes`);
  await page.screenshot({ path: `${SCREENSHOTS}/scopes.png`, fullPage: true });

  // The owner adds a viewer.
  await page.goto(`${s().baseURL}/admins`);
  await page.getByLabel('Username').fill('vera');
  await page.getByLabel(/Initial password/).fill(PASSWORD);
  await page.getByLabel('Role', { exact: true }).selectOption('viewer');
  await page.getByRole('button', { name: 'Add administrator' }).click();
  await expect(page.getByRole('cell', { name: 'vera', exact: true })).toBeVisible();
  await page.screenshot({ path: `${SCREENSHOTS}/administrators.png`, fullPage: true });
  await context.close();
});

test('a viewer finds no way to change anything', async ({ page }) => {
  // The owner chose vera's password: she chooses her own before anything else.
  await signIn(page, 'vera');
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByTestId('must-change')).toBeVisible();
  await page.goto(`${s().baseURL}/applications`);
  await expect(page).toHaveURL(/\/account$/);
  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByLabel(/^New password \(/).fill('veras own password');
  await page.getByLabel('New password again').fill('something else entirely');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByText('the two new passwords differ')).toBeVisible();
  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByLabel(/^New password \(/).fill('veras own password');
  await page.getByLabel('New password again').fill('veras own password');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByTestId('password-changed')).toBeVisible();
  await expect(page.getByTestId('must-change')).toHaveCount(0);
  await page.goto(`${s().baseURL}/applications`);
  await expect(page.getByRole('link', { name: 'billing-sync' })).toBeVisible();
  await expect(page.getByRole('link', { name: 'New application' })).toHaveCount(0);
  await page.getByRole('link', { name: 'billing-sync' }).click();
  await expect(page.getByTestId('application-name')).toHaveText('billing-sync');
  // The only form a viewer can submit is sign-out.
  const buttons = await page.locator('form button[type="submit"]').allTextContents();
  expect(buttons).toEqual(['Sign out']);
  await expect(page.getByText('Revoke', { exact: true })).toHaveCount(0);
  await page.goto(`${s().baseURL}/admins`);
  await expect(page.getByTestId('read-only')).toHaveText('Only owners add, change or remove administrators; you see the list.');
  await expect(page.getByRole('cell', { name: 'alice', exact: true })).toBeVisible();
  expect(await page.locator('form button[type="submit"]').allTextContents()).toEqual(['Sign out']);
  await page.goto(`${s().baseURL}/applications/new`);
  await expect(page.getByText('Viewers cannot create applications.')).toBeVisible();
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });
  test('create an application with plain form posts', async ({ page }) => {
    await signIn(page, 'alice');
    await newApplication(page, 'nojs-export');
    const secret = await page.getByTestId('new-secret').inputValue();
    const clientId = await page.getByTestId('client-id').inputValue();
    expect((await tokenFor(clientId, secret)).status).toBe(200);
    await page.reload();
    await expect(page.getByTestId('new-secret')).toHaveCount(0);
    // A refusal comes back beside the field.
    await page.goto(`${s().baseURL}/applications/new`);
    await page.getByLabel('Name', { exact: true }).fill('nojs-export');
    await page.getByRole('button', { name: 'Create application' }).click();
    await expect(page.getByText('an application named "nojs-export" already exists')).toBeVisible();
  });
});

test('phone width: the detail page fits 390 px', async ({ browser }: { browser: Browser }) => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  await signIn(page, 'alice');
  await page.goto(`${s().baseURL}/applications`);
  await page.getByRole('link', { name: 'billing-sync' }).click();
  await expect(page.getByTestId('application-name')).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: `${SCREENSHOTS}/application-detail-phone.png`, fullPage: true });
  await context.close();
});
