// Public API of netplane.
export { NetplaneError } from './errors';
export type { NetplaneErrorCode } from './errors';
