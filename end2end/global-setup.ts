// Starts fresh Keygate servers (each on its own empty SQLite database) and
// records their one-time setup links for the tests.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const STATE_FILE = path.join(__dirname, '.servers.json');
const ROOT = path.resolve(__dirname, '..');
const BINARY = process.env.KEYGATE_BIN || path.join(ROOT, 'target', 'release', 'keygate');

export interface ServerInfo {
  name: string;
  baseURL: string;
  setupURL: string;
  pid: number;
  dataDir: string;
}

function start(name: string, port: number): Promise<ServerInfo> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `keygate-e2e-${name}-`));
  const child = spawn(
    BINARY,
    [
      'serve',
      '--addr',
      `127.0.0.1:${port}`,
      '--database-url',
      `sqlite:${path.join(dataDir, 'keygate.db')}`,
      '--key-file',
      path.join(dataDir, 'keygate.key'),
    ],
    {
      cwd: ROOT,
      env: { ...process.env, LEPTOS_SITE_ROOT: path.join(ROOT, 'target', 'site'), KEYGATE_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: false,
    },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name}: no setup link within 20 s:\n${out}`)), 20_000);
    child.on('exit', (code) => reject(new Error(`${name}: keygate exited early (${code}):\n${out}`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const link = out.match(/(http:\/\/\S+\/setup\?code=\S+)/);
      if (link && out.includes('listening')) {
        clearTimeout(timer);
        resolve({ name, baseURL: `http://127.0.0.1:${port}`, setupURL: link[1], pid: child.pid!, dataDir });
      }
    });
  });
}

export default async function globalSetup() {
  const servers = [
    await start('js', 3187),
    await start('nojs', 3188),
    await start('life', 3189),
    await start('rotate', 3190),
    await start('activity', 3191),
    await start('tokens', 3192),
    await start('a11y', 3193),
  ];
  fs.writeFileSync(STATE_FILE, JSON.stringify(servers, null, 2));
}
