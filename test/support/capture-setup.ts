// Vitest setup file (every test file): loads the leak-check capture (leak-capture-hook.mjs)
// into the worker and labels what it captures with the test file, so a leak report names the
// test that produced the output. Child processes inherit the label through the environment.
import { relative } from 'node:path';
import { beforeAll, expect } from 'vitest';
import './leak-capture-hook.mjs';
import { ROOT } from './ingot-process.js';

beforeAll(() => {
  const testPath = expect.getState().testPath;
  if (testPath) process.env.INGOT_TEST_CAPTURE_LABEL = relative(ROOT, testPath);
});
