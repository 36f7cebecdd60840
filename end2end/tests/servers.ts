import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ServerInfo } from '../global-setup';

export function server(name: string): ServerInfo {
  const all: ServerInfo[] = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '.servers.json'), 'utf8'));
  const s = all.find((x) => x.name === name);
  if (!s) throw new Error(`no server ${name}`);
  return s;
}

export const SCREENSHOTS = path.join(__dirname, '..', 'screenshots');
