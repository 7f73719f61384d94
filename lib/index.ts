// Public API of netplane.
export { NetplaneError } from './errors';
export type { NetplaneErrorCode } from './errors';
export { Tap, TunFeature, TunOffload } from './tap';
export type { TapOpenOptions, TapOffloads, VnetHdrMode } from './tap';
