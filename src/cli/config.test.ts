import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configPath, readConfigFile, resolveConfig, saveConfig } from './config.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ingot-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('CLI config', () => {
  it('lives at $INGOT_CONFIG, else under XDG_CONFIG_HOME or ~/.config', () => {
    expect(configPath({ INGOT_CONFIG: '/x/c.json' })).toBe('/x/c.json');
    expect(configPath({ XDG_CONFIG_HOME: '/xdg' })).toBe('/xdg/ingot/config.json');
  });

  it('is saved owner-only and read back', () => {
    const path = join(dir, 'sub', 'config.json');
    saveConfig(path, { server: 'http://127.0.0.1:7385', token: 'ingot_t' });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readConfigFile(path)).toEqual({ server: 'http://127.0.0.1:7385', token: 'ingot_t' });
  });

  it('lets INGOT_SERVER and INGOT_TOKEN win over the file', () => {
    const path = join(dir, 'config.json');
    saveConfig(path, { server: 'http://saved:1', token: 'ingot_saved' });
    expect(resolveConfig({ INGOT_CONFIG: path })).toMatchObject({ server: 'http://saved:1', token: 'ingot_saved' });
    expect(resolveConfig({ INGOT_CONFIG: path, INGOT_SERVER: 'http://env:2', INGOT_TOKEN: 'ingot_env' })).toMatchObject({ server: 'http://env:2', token: 'ingot_env' });
    expect(resolveConfig({ INGOT_CONFIG: path, INGOT_TOKEN: 'ingot_env' })).toMatchObject({ server: 'http://saved:1', token: 'ingot_env' });
  });

  it('never sends the saved token to a different server', () => {
    const path = join(dir, 'config.json');
    saveConfig(path, { server: 'http://saved:1/', token: 'ingot_saved' });
    expect(resolveConfig({ INGOT_CONFIG: path, INGOT_SERVER: 'http://other:9' }).token).toBeUndefined();
    expect(resolveConfig({ INGOT_CONFIG: path, INGOT_SERVER: 'http://saved:1' }).token).toBe('ingot_saved');
  });

  it('says how to recover from a broken file', () => {
    const path = join(dir, 'config.json');
    writeFileSync(path, '{not json');
    expect(() => readConfigFile(path)).toThrow(`the config file ${path} is not valid JSON; remove it and run \`ingot login\` again`);
  });
});
