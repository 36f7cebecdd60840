import * as fs from 'node:fs';
import { STATE_FILE, ServerInfo } from './global-setup';

export default async function globalTeardown() {
  if (!fs.existsSync(STATE_FILE)) return;
  const servers: ServerInfo[] = JSON.parse(fs.readFileSync(STATE_FILE, 'utf8'));
  for (const s of servers) {
    try {
      process.kill(s.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    fs.rmSync(s.dataDir, { recursive: true, force: true });
  }
  fs.rmSync(STATE_FILE, { force: true });
}
