// Activity charts: drawn on the server, readable without JavaScript, a
// bar's figures on hover and on keyboard focus, and at phone width.
import { test, expect, Page } from '@playwright/test';
import { server, SCREENSHOTS } from './servers';
import { PASSWORD, signIn as signInAt, tokenFor as tokenAt, me as meAt, setupOwner } from './http';

const s = () => server('activity');
const signIn = (page: Page) => signInAt(page, s().baseURL, 'alice', PASSWORD);
let appPath = '';

test.describe.configure({ mode: 'serial' });

test('setup owner and traffic', async ({ page }) => {
  await setupOwner(page, s().setupURL);
  await page.goto(`${s().baseURL}/applications/new`);
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  await page.getByLabel('Name', { exact: true }).fill('charted');
  // A double click sends the form once.
  await page.getByRole('button', { name: 'Create application' }).dblclick();
  const clientId = await page.getByTestId('client-id').inputValue();
  const secret = await page.getByTestId('new-secret').inputValue();
  appPath = new URL(page.url()).pathname;
  await page.goto(`${s().baseURL}/applications?q=charted`);
  await expect(page.getByRole('link', { name: 'charted', exact: true })).toHaveCount(1);
  // 2 tokens, 3 uses, 2 wrong secrets, 1 unknown-token use (no application).
  const token = (await (await tokenAt(s().baseURL, clientId, secret)).json()).access_token as string;
  expect((await tokenAt(s().baseURL, clientId, secret)).status).toBe(200);
  for (let i = 0; i < 3; i++) expect(await meAt(s().baseURL, token)).toBe(200);
  for (let i = 0; i < 2; i++) expect((await tokenAt(s().baseURL, clientId, 'kgs_wrong')).status).toBe(401);
});

async function charts(page: Page, js: boolean) {
  await signIn(page);
  // Counts reach the database with the next flush (every 2 s).
  await expect(async () => {
    await page.goto(`${s().baseURL}${appPath}`);
    await expect(page.getByTestId('activity-summary')).toHaveText(
      'In the last 24 hours: tokens issued 2, successful uses 3, refusals 2.', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  if (js) await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  const uses = page.getByTestId('chart-uses');
  await expect(uses.locator('figcaption')).toHaveText('Tokens issued and successful uses, per hour (UTC)');
  await expect(uses.locator('svg text.axis')).toContainText(['0']);
  // The last bar holds everything: focus it with the keyboard, its figures show.
  const bar = uses.locator('g.bar').last();
  await bar.focus();
  await expect(bar.locator('.tip')).toBeVisible();
  await expect(bar.locator('.tip')).toContainText('successful uses 3, tokens issued 2');
  const refusals = page.getByTestId('chart-refusals').locator('g.bar').last();
  await refusals.hover();
  await expect(refusals.locator('.tip')).toBeVisible();
  await expect(refusals.locator('.tip')).toContainText('wrong secret 2');
  // The table for screen readers holds the same figures.
  await expect(page.getByTestId('activity-table').locator('tbody tr')).toHaveCount(24);
  await expect(page.getByTestId('recent-refusals')).toContainText('wrong_secret');
  await page.screenshot({ path: `${SCREENSHOTS}/activity-${js ? 'js' : 'nojs'}.png`, fullPage: true });
  // Another range is a plain link.
  await page.getByRole('link', { name: 'last 7 days' }).click();
  await expect(page.getByTestId('chart-refusals').locator('figcaption')).toHaveText('Refusals by reason, per 6 hours (UTC)');
  await expect(page.getByRole('link', { name: 'last 7 days' })).toHaveAttribute('aria-current', 'page');
  // The refusal list leads to the audit log, filtered.
  await page.getByRole('link', { name: /Every refusal of this application/ }).click();
  await expect(page.locator('body')).toContainText('client.authentication_failed');
  // The overview shows all applications.
  await page.goto(`${s().baseURL}/`);
  await expect(page.getByTestId('busiest')).toContainText('charted');
  await expect(page.getByTestId('most-refused')).toContainText('charted');
}

test('charts with JavaScript', async ({ page }) => {
  await charts(page, true);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });
  test('charts as plain HTML and SVG', async ({ page }) => {
    await charts(page, false);
  });
});

test('charts fit 390 px', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await signIn(page);
  await page.goto(`${s().baseURL}${appPath}#activity`);
  const chart = page.getByTestId('chart-uses');
  const box = await chart.boundingBox();
  expect(box!.width).toBeLessThanOrEqual(390);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: `${SCREENSHOTS}/activity-390.png`, fullPage: true });
  await page.goto(`${s().baseURL}/`);
  const overviewOverflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overviewOverflow).toBeLessThanOrEqual(0);
});
