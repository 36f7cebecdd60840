// First run: the setup link creates the owner, who lands on the overview,
// signs out and back in. Once hydrated (JavaScript) and once as plain HTML
// forms (JavaScript disabled).
import { test, expect, Page } from '@playwright/test';
import { server, SCREENSHOTS } from './servers';

const PASSWORD = 'correct horse battery staple';

async function firstRun(page: Page, name: string, js: boolean) {
  const s = server(name);
  // The Content-Security-Policy must not block anything the console needs.
  const violations: string[] = [];
  page.on('console', (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) violations.push(msg.text());
  });
  await page.goto(s.setupURL);
  if (js) await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);

  // A password too short is refused with the reason beside the field.
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill('short');
  await page.getByLabel('Repeat the password').fill('short');
  // Bypass the browser's own minlength check to see the server's answer.
  await page.evaluate(() => document.querySelectorAll('input[minlength]').forEach((i) => i.removeAttribute('minlength')));
  await page.getByRole('button', { name: 'Create owner and sign in' }).click();
  await expect(page.getByText('a password needs at least 12 characters')).toBeVisible();

  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create owner and sign in' }).click();
  await expect(page.getByTestId('signed-in-as')).toHaveText('alice');
  await expect(page.getByTestId('application-count')).toHaveText('0');
  await expect(page.getByTestId('active-token-count')).toHaveText('0');
  await page.screenshot({ path: `${SCREENSHOTS}/overview-${name}.png`, fullPage: true });

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in to Keygate' })).toBeVisible();

  // A wrong password says why; the right one lands on the overview.
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByText('the username or password is wrong')).toBeVisible();
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('signed-in-as')).toHaveText('alice');
  await expect(page.getByText('admin.sign_in_failed')).toBeVisible();
  await page.screenshot({ path: `${SCREENSHOTS}/sign-in-${name}.png` });

  // The setup link is spent, and says so before anyone fills in a form
  // (a post with it is refused too: tests/console_auth.rs).
  await page.goto(s.setupURL);
  await expect(page.getByTestId('setup-link-state')).toContainText('This setup link has been used');
  await expect(page.getByLabel('Repeat the password')).toHaveCount(0);
  expect(violations).toEqual([]);
}

test.describe('with JavaScript', () => {
  test('first-run setup, sign in, overview', async ({ page }) => {
    await firstRun(page, 'js', true);
  });
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });
  test('first-run setup, sign in, overview', async ({ page }) => {
    await firstRun(page, 'nojs', false);
  });
});

test('phone width keeps the overview readable', async ({ browser }) => {
  const s = server('js');
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  await page.goto(`${s.baseURL}/login`);
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('signed-in-as')).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: `${SCREENSHOTS}/overview-phone.png`, fullPage: true });
  await context.close();
});
