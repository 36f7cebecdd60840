// Named tokens extended (new expiry, same value) and rotated (new value,
// the old one kept for an overlap or revoked), with JavaScript, and as
// plain form posts at phone width.
import { test, expect, Page } from '@playwright/test';
import { server, SCREENSHOTS } from './servers';
import { PASSWORD, signIn as signInAt, me as meAt, setupOwner } from './http';

const s = () => server('tokens');
const signIn = (page: Page) => signInAt(page, s().baseURL, 'alice', PASSWORD);
const me = (token: string) => meAt(s().baseURL, token);
const rowOf = (page: Page, token: string) => page.locator(`tr[data-token="${token.slice(0, 12)}"]`);

async function extendAndRotate(page: Page, name: string, js: boolean) {
  await signIn(page);
  await page.goto(`${s().baseURL}/applications/new`);
  if (js) await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByRole('button', { name: 'Create application' }).click();
  await expect(page.getByTestId('application-name')).toHaveText(name);

  await page.getByText('New token', { exact: true }).click();
  await page.getByLabel('Token name').fill('deploy pipeline');
  await page.getByLabel('Expires', { exact: true }).selectOption('7');
  await page.getByRole('button', { name: 'Create token' }).click();
  const first = await page.getByTestId('new-token').inputValue();
  expect(await me(first)).toBe(200);
  const firstRow = rowOf(page, first);
  await expect(firstRow).toContainText('in 7 days');

  // Extend: the same value now expires in 90 days.
  await firstRow.getByText('Extend', { exact: true }).click();
  await firstRow.getByLabel('New expiry (same value)').selectOption('90');
  await firstRow.getByRole('button', { name: 'Set the new expiry of deploy pipeline' }).click();
  await expect(rowOf(page, first)).toContainText('in 3 months');
  await expect(page.getByRole('status').filter({ hasText: 'Token extended' })).toBeVisible();
  expect(await me(first)).toBe(200);

  // A date in the past is refused, and the page says why.
  await rowOf(page, first).getByText('Extend', { exact: true }).click();
  await rowOf(page, first).getByLabel('New expiry (same value)').selectOption('custom');
  await rowOf(page, first).getByLabel('Date (for "On a date…")').fill('2020-01-01');
  await rowOf(page, first).getByRole('button', { name: 'Set the new expiry of deploy pipeline' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'the expiry must be in the future' })).toBeVisible();
  expect(page.url()).not.toContain('__err');

  // Rotate, keeping the old value for an hour: a new value shown once.
  await rowOf(page, first).getByText('Rotate', { exact: true }).click();
  await rowOf(page, first).getByLabel('The old value').selectOption('3600');
  await rowOf(page, first).getByRole('button', { name: 'Confirm rotating deploy pipeline' }).click();
  await expect(page.getByText(/Token "deploy pipeline" was rotated\. The previous value keeps working until/)).toBeVisible();
  const second = await page.getByTestId('new-token').inputValue();
  expect(second).not.toBe(first);
  expect(await me(first)).toBe(200);
  expect(await me(second)).toBe(200);
  await expect(rowOf(page, first)).toContainText('in 1 hour');
  await expect(rowOf(page, second)).toContainText('in 3 months');
  // The old value is marked replaced, and only revoking it is offered.
  await expect(rowOf(page, first)).toContainText('replaced');
  await expect(rowOf(page, first).getByText('Rotate', { exact: true })).toHaveCount(0);
  await expect(rowOf(page, first).getByText('Extend', { exact: true })).toHaveCount(0);
  await expect(rowOf(page, first).getByText('Revoke', { exact: true })).toHaveCount(1);
  await page.screenshot({ path: `${SCREENSHOTS}/token-rotated-${name}.png`, fullPage: true });

  // Rotate again, revoking the old value at once.
  await rowOf(page, second).getByText('Rotate', { exact: true }).click();
  await rowOf(page, second).getByLabel('The old value').selectOption('0');
  await rowOf(page, second).getByRole('button', { name: 'Confirm rotating deploy pipeline' }).click();
  await expect(page.getByText(/was rotated\. The previous value no longer works\./)).toBeVisible();
  const third = await page.getByTestId('new-token').inputValue();
  expect(await me(second)).toBe(401);
  expect(await me(third)).toBe(200);
  // The revoked value is hidden until asked for; then it says when and why.
  await expect(rowOf(page, second)).toHaveCount(0);
  await page.getByTestId('toggle-inactive').click();
  await expect(rowOf(page, second)).toContainText('rotated');
  await expect(rowOf(page, second).getByTestId('revoked-at')).toContainText('revoked just now');
  await page.getByRole('link', { name: 'Hide revoked and expired' }).click();
  await expect(rowOf(page, second)).toHaveCount(0);

  await page.goto(`${s().baseURL}/audit?action=token`);
  await expect(page.getByText(`rotated the token "deploy pipeline" of ${name} (the previous value was revoked)`)).toBeVisible();
  await expect(page.getByText(new RegExp(`changed the expiry of the token "deploy pipeline" of ${name} from`))).toBeVisible();
}

test.describe.configure({ mode: 'serial' });

test('setup owner', async ({ page }) => {
  await setupOwner(page, s().setupURL);
});

test('extend and rotate a named token, with JavaScript', async ({ page }) => {
  await extendAndRotate(page, 'tokens-js', true);
});

test.describe('without JavaScript, at phone width', () => {
  test.use({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
  test('extend and rotate a named token, as form posts', async ({ page }) => {
    await extendAndRotate(page, 'tokens-nojs', false);
  });
});

// Outcomes in place: a refusal beside the form (never in the URL), then
// after a later success a confirmation instead; a namesake flagged as it is
// typed (with JavaScript) or in the panel after minting (without); exact
// times on keyboard focus.
async function confirmationsAndNames(page: Page, suffix: string, js: boolean) {
  await signIn(page);
  for (const name of [`taken-${suffix}`, `settings-${suffix}`]) {
    await page.goto(`${s().baseURL}/applications/new`);
    await page.getByLabel('Name', { exact: true }).fill(name);
    await page.getByRole('button', { name: 'Create application' }).click();
    await expect(page.getByTestId('application-name')).toHaveText(name);
  }
  if (js) await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  const nameField = page.locator('#name');
  await nameField.fill(`taken-${suffix}`);
  await page.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.getByRole('alert').filter({ hasText: `an application named "taken-${suffix}" already exists` })).toBeVisible();
  expect(page.url()).not.toContain('__err');
  await expect(page.getByRole('status').filter({ hasText: 'Settings saved.' })).toHaveCount(0);
  await page.locator('#name').fill(`renamed-${suffix}`);
  await page.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.getByTestId('application-name')).toHaveText(`renamed-${suffix}`);
  await expect(page.getByRole('status').filter({ hasText: 'Settings saved.' })).toBeVisible();
  await expect(page.getByRole('alert').filter({ hasText: 'already exists' })).toHaveCount(0);
  await page.reload();
  await expect(page.getByRole('status').filter({ hasText: 'Settings saved.' })).toHaveCount(0);

  // The exact time unfolds on keyboard focus, and is in the text throughout.
  const created = page.locator('dd time.reltime').first();
  await expect(created.locator('.exact')).toContainText(/\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)/);
  expect((await created.locator('.exact').boundingBox())!.width).toBeLessThan(2);
  await created.focus();
  expect((await created.locator('.exact').boundingBox())!.width).toBeGreaterThan(50);

  // A namesake.
  await page.getByText('New token', { exact: true }).click();
  await page.getByLabel('Token name').fill('deploy');
  await page.getByRole('button', { name: 'Create token' }).click();
  await expect(page.getByTestId('new-token')).toBeVisible();
  await page.getByText('New token', { exact: true }).click();
  const warning = page.locator('[data-namesake-for="token-name"]');
  await page.getByLabel('Token name').fill('Deploy');
  if (js) {
    await expect(warning).toHaveText(/An active token already has this name/);
    await page.getByLabel('Token name').fill('Deploy 2');
    await expect(warning).toBeEmpty();
    await page.getByLabel('Token name').fill('Deploy');
    await expect(warning).toHaveText(/An active token already has this name/);
  } else {
    await expect(warning).toBeEmpty();
  }
  await page.getByRole('button', { name: 'Create token' }).click();
  await expect(page.getByText(/1 other active token\(s\) of this application are also called "Deploy"/)).toBeVisible();
  await page.screenshot({ path: `${SCREENSHOTS}/confirmations-${suffix}.png`, fullPage: true });
}

test('confirmations, namesakes and exact times, with JavaScript', async ({ page }) => {
  await confirmationsAndNames(page, 'js', true);
});

test.describe('confirmations without JavaScript, at phone width', () => {
  test.use({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
  test('confirmations, namesakes and exact times, as form posts', async ({ page }) => {
    await confirmationsAndNames(page, 'nojs', false);
  });
});

test.describe('the applications list, without JavaScript, at phone width', () => {
  test.use({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
  test('natural order, filters that stay labelled, page numbers', async ({ page }) => {
    await signIn(page);
    for (const name of ['list-job-10', 'list-job-2', 'list-job-1']) {
      await page.goto(`${s().baseURL}/applications/new`);
      await page.getByLabel('Name', { exact: true }).fill(name);
      await page.getByRole('button', { name: 'Create application' }).click();
      await expect(page.getByTestId('application-name')).toHaveText(name);
    }
    await page.goto(`${s().baseURL}/applications`);
    await page.getByLabel('Search').fill('list-job');
    await page.getByLabel('Sort').selectOption('name');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(page.locator('tbody tr td:first-child a')).toHaveText(['list-job-1', 'list-job-2', 'list-job-10']);
    // Each label sits on the line of its input, at 390 px too.
    for (const label of ['Search', 'Show', 'Sort', 'Per page']) {
      const l = (await page.locator('label', { hasText: new RegExp(`^${label}$`) }).boundingBox())!;
      const i = (await page.getByLabel(label, { exact: true }).boundingBox())!;
      expect(Math.abs((l.y + l.height / 2) - (i.y + i.height / 2)), label).toBeLessThan(i.height / 2);
    }
    await page.getByLabel('Show').selectOption('disabled');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(page).toHaveURL(/status=disabled/);
    await expect(page.getByText('No applications match.')).toBeVisible();
    await page.getByLabel('Show').selectOption('never_used');
    await page.getByLabel('Sort').selectOption('newest');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(page.locator('tbody tr td:first-child a')).toHaveText(['list-job-1', 'list-job-2', 'list-job-10']);
    await expect(page.getByRole('link', { name: 'Page 1 of 1' })).toHaveAttribute('aria-current', 'page');
    // A page past the end shows the last page.
    await page.goto(`${s().baseURL}/applications?q=list-job&page=30`);
    await expect(page.locator('tbody tr')).toHaveCount(3);
    await page.screenshot({ path: `${SCREENSHOTS}/applications-filtered-390.png`, fullPage: true });
  });
});
