// Calls the tests make over HTTP, as a client application would.
import { expect, Page } from '@playwright/test';

export const PASSWORD = 'correct horse battery staple';

export async function signIn(page: Page, base: string, username: string, password = PASSWORD) {
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('signed-in-as')).toHaveText(username);
}

// Creates the owner alice with a server's one-time setup link; she is
// signed in afterwards.
export async function setupOwner(page: Page, setupURL: string) {
  await page.goto(setupURL);
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Repeat the password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create owner and sign in' }).click();
  await expect(page.getByTestId('signed-in-as')).toHaveText('alice');
}

export async function tokenFor(base: string, clientId: string, secret: string): Promise<Response> {
  return fetch(`${base}/oauth2/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: 'Basic ' + Buffer.from(`${clientId}:${secret}`).toString('base64'),
    },
    body: 'grant_type=client_credentials',
  });
}

export async function me(base: string, token: string): Promise<number> {
  const r = await fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
  return r.status;
}
