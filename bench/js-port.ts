// placeholder, filled below
import type { Options } from './run';
export async function runJsPort(_o: Options): Promise<void> {
  console.log('js-port: not written yet');
}
