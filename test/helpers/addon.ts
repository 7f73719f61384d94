// Tests that need the native addon: skip with the reason when it is not built (never under
// CI=true, where a missing addon is a failure).
import { NativeDataPlane } from '../../lib/dataplane/native-dataplane';

/** Why the native data plane cannot be made here, or undefined when it can. */
export function addonMissing(): string | undefined {
  try {
    new NativeDataPlane().close();
    return undefined;
  } catch (e) {
    return `the native addon is not built (${(e as Error).message.split('\n')[0]})`;
  }
}

/** Options for test()/describe(): skip when the addon is missing, except under CI. */
export function needsAddon(): { skip?: string } {
  const why = addonMissing();
  return why === undefined || process.env.CI === 'true' ? {} : { skip: why };
}
