// The option grammar: -netdev, -device, -object, -link, -qmp and QMP netdev_add arguments.

export { OptionError, IDENTIFIER_HINT, isIdentifier, type ParseContext } from './errors';
export { parseKeyval, escapeValue, formatKeyval, lastValues, type Keyval, type KeyvalEntry } from './keyval';
export { parseQemuJson, jsonMembers, JsonFloat, type JsonValue } from './json';
export { parseNetdevArg, netdevFromQmp, NETDEV_TYPES, MAX_TAP_QUEUES } from './netdev';
export { parseDeviceArg, deviceFromJson, canonicalMac, VIRTIO_NET_FEATURES, DEVICE_DRIVERS } from './device';
export { parseObjectArg, objectFromJson } from './object';
export { parseLinkArg } from './link';
export { parseQmpArg, type QmpArg } from './qmp-arg';
export * from './types';
export { parseExportArg, parseChardevArg, type ExportArg, type ChardevArg } from './export';
