import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../lib/native';

test('addon loads', () => {
  assert.equal(typeof native(), 'object');
});
