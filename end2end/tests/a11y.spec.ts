// axe-core on every console page, light and dark, at 1280 and 390 px:
// no serious or critical violation.
import { test, expect, Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { server } from './servers';
import { PASSWORD, signIn as signInAt, tokenFor, setupOwner } from './http';

const s = () => server('a11y');
const pages: { name: string; path: string }[] = [];

async function audit(page: Page, label: string) {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const report = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n` +
    v.nodes.slice(0, 5).map((n) => `    ${n.target.join(' ')} — ${n.failureSummary?.split('\n').slice(1).join('; ')}`).join('\n'));
  expect(report, `${label}\n${report.join('\n')}`).toEqual([]);
}

// Every action in a table row names its object: no two controls of the
// page's tables share an accessible name ("Remove alice", not "Remove").
async function rowActionsNamed(page: Page, label: string) {
  const names = await page.locator('tbody').evaluateAll((bodies) =>
    bodies.flatMap((b) => Array.from(b.querySelectorAll('button, summary')))
      .filter((el) => (el as HTMLElement).offsetParent !== null || el.closest('details') !== null)
      .map((el) => (el.getAttribute('aria-label') || el.textContent || '').replace(/\s+/g, ' ').trim()));
  const repeated = names.filter((n, i) => names.indexOf(n) !== i);
  expect(repeated, `${label}: row actions that do not name their object`).toEqual([]);
}

test.describe.configure({ mode: 'serial' });

test('the setup page, then content on every page', async ({ page }) => {
  await page.goto(s().setupURL);
  await audit(page, 'setup');
  await setupOwner(page, s().setupURL);
  await page.goto(`${s().baseURL}/applications/new`);
  await page.getByLabel('Name', { exact: true }).fill('billing-sync');
  await page.getByRole('button', { name: 'Create application' }).click();
  await expect(page.getByTestId('application-name')).toHaveText('billing-sync');
  const clientId = await page.getByTestId('client-id').inputValue();
  const secret = await page.getByTestId('new-secret').inputValue();
  const appPath = new URL(page.url()).pathname;
  expect((await tokenFor(s().baseURL, clientId, secret)).status).toBe(200);
  expect((await tokenFor(s().baseURL, clientId, 'kgs_wrong')).status).toBe(401);
  await page.getByText('New token', { exact: true }).click();
  await page.getByLabel('Token name').fill('deploy pipeline');
  await page.getByRole('button', { name: 'Create token' }).click();
  await expect(page.getByTestId('new-token')).toBeVisible();
  // A second row in each table, so an action that does not name its object shows.
  await page.getByText('New token', { exact: true }).click();
  await page.getByLabel('Token name').fill('nightly backup');
  await page.getByRole('button', { name: 'Create token' }).click();
  await expect(page.getByTestId('new-token')).toBeVisible();
  await page.goto(`${s().baseURL}/admins`);
  await page.getByLabel('Username').fill('vera');
  await page.getByLabel(/Initial password/).fill(PASSWORD);
  await page.getByRole('button', { name: 'Add administrator' }).click();
  await expect(page.getByRole('cell', { name: 'vera', exact: true })).toBeVisible();
  for (const [name, description] of [['billing:read', 'Read invoices'], ['billing:write', 'Write invoices']]) {
    await page.goto(`${s().baseURL}/scopes`);
    await page.locator('#scope-name').fill(name);
    await page.locator('#scope-description').fill(description);
    await page.getByRole('button', { name: 'Add scope' }).click();
    await expect(page.getByRole('cell', { name, exact: true })).toBeVisible();
  }
  await page.goto(`${s().baseURL}/webhooks`);
  await page.getByLabel('URL').fill('http://127.0.0.1:9/hook');
  await page.getByRole('button', { name: 'Add webhook' }).click();
  await expect(page.getByTestId('webhook-url')).toBeVisible();
  const webhookPath = new URL(page.url()).pathname;
  pages.push(
    { name: 'overview', path: '/' },
    { name: 'applications', path: '/applications' },
    { name: 'new application', path: '/applications/new' },
    { name: 'application', path: appPath },
    { name: "the token endpoint's tokens", path: `${appPath}?tokens=issued&inactive=1` },
    { name: 'applications, filtered', path: '/applications?status=never_used&sort=last_used&per=50' },
    { name: 'audit log', path: '/audit' },
    { name: 'scopes', path: '/scopes' },
    { name: 'webhooks', path: '/webhooks' },
    { name: 'webhook', path: webhookPath },
    { name: 'administrators', path: '/admins' },
    { name: 'account', path: '/account' },
  );
});

for (const scheme of ['light', 'dark'] as const) {
  for (const width of [1280, 390]) {
    test.describe(`${scheme}, ${width} px`, () => {
      test.use({ colorScheme: scheme, viewport: { width, height: 900 } });
      test('every page', async ({ page }) => {
        await page.goto(`${s().baseURL}/login`);
        await audit(page, `sign-in page, ${scheme}, ${width}`);
        await signInAt(page, s().baseURL, 'alice', PASSWORD);
        for (const p of pages) {
          await page.goto(`${s().baseURL}${p.path}`);
          await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
          await audit(page, `${p.name} (${p.path}), ${scheme}, ${width}`);
          await rowActionsNamed(page, `${p.name} (${p.path})`);
        }
      });
    });
  }
}

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });
  test('own titles, the current section marked, a skip link, a favicon', async ({ page }) => {
    await page.goto(`${s().baseURL}/login`);
    await expect(page).toHaveTitle('Sign in · Keygate');
    await signInAt(page, s().baseURL, 'alice', PASSWORD);
    await expect(page).toHaveTitle('Overview · Keygate');
    const titles: Record<string, string> = {
      'applications': 'Applications · Keygate',
      'new application': 'New application · Applications · Keygate',
      'application': 'billing-sync · Applications · Keygate',
      "the token endpoint's tokens": 'billing-sync · Applications · Keygate',
      'applications, filtered': 'Applications · Keygate',
      'audit log': 'Audit log · Keygate',
      'scopes': 'Scopes · Keygate',
      'webhooks': 'Webhooks · Keygate',
      'webhook': 'http://127.0.0.1:9/hook · Webhooks · Keygate',
      'administrators': 'Administrators · Keygate',
    };
    // (Your account is reached by your name, outside the main navigation.)
    for (const p of pages.filter((p) => p.name !== 'overview' && p.name !== 'account')) {
      await page.goto(`${s().baseURL}${p.path}`);
      await expect(page).toHaveTitle(titles[p.name]);
      const current = page.getByRole('navigation', { name: 'Main' }).locator('a[aria-current="page"]');
      await expect(current).toHaveCount(1);
      expect(titles[p.name]).toContain(await current.innerText());
    }
    // The skip link is the first stop of the keyboard and leads to the content.
    await page.keyboard.press('Tab');
    const skip = page.getByRole('link', { name: 'Skip to content' });
    await expect(skip).toBeFocused();
    await expect(skip).toBeVisible();
    await expect(skip).toHaveAttribute('href', '#main');
    await expect(page.locator('main#main')).toHaveCount(1);
    const icon = await page.request.get(`${s().baseURL}/favicon.svg`);
    expect(icon.status()).toBe(200);
    expect(icon.headers()['content-type']).toContain('image/svg+xml');
    await expect(page.locator('link[rel="icon"]')).toHaveAttribute('href', '/favicon.svg');
  });
});

test('signing in from a deep link returns to that page; a used setup link says so', async ({ page }) => {
  await page.goto(`${s().baseURL}/audit?action=token`);
  await expect(page).toHaveURL(/\/login\?next=%2Faudit%3Faction%3Dtoken$/);
  await expect(page.getByTestId('return-to')).toHaveText('After signing in you return to /audit?action=token.');
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(`${s().baseURL}/audit?action=token`);
  await expect(page.getByTestId('signed-in-as')).toHaveText('alice');
  await page.goto(s().setupURL);
  await expect(page.getByTestId('setup-link-state')).toContainText('This setup link has been used');
  await expect(page.getByRole('button', { name: 'Create owner and sign in' })).toHaveCount(0);
});
